// The dossier page: zoom and rotate the photos, fill the reply from a canned reply, confirm an
// extension into another year (2062 typed for 2026).
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
const extend = document.querySelector("form[data-due-year]");
if (extend) extend.addEventListener("submit", (event) => {
  const year = (extend.elements.new_date.value || "").slice(0, 4);
  if (year && year !== extend.dataset.dueYear && !confirm(extend.dataset.confirmYear.replaceAll("{year}", year))) {
    event.preventDefault();
  }
});
