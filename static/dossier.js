// The dossier page: zoom and rotate the photos, fill the reply from a canned reply.
function turn(img) {
  const zoom = img.classList.contains("zoomed") ? " scale(2.2)" : "";
  img.style.transform = "rotate(" + (img.dataset.rotation || 0) + "deg)" + zoom;
}
document.querySelectorAll(".thumbs img").forEach(img => img.addEventListener("click", () => {
  img.classList.toggle("zoomed"); turn(img);
}));
document.querySelectorAll(".thumbs button.rotate").forEach(button => button.addEventListener("click", () => {
  const img = button.closest("figure").querySelector("img");
  if (!img) return;
  img.dataset.rotation = (Number(img.dataset.rotation || 0) + 90) % 360; turn(img);
}));
const canned = document.getElementById("canned");
if (canned) canned.addEventListener("change", () => {
  if (canned.value) { document.getElementById("reply-text").value = canned.value; canned.selectedIndex = 0; }
});
