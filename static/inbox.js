// The inbox refreshes by itself when a dossier arrives or moves (the stamp changes).
const stamp = JSON.parse(document.getElementById("inbox-stamp").textContent);
async function check() {
  try {
    const r = await fetch("/admin/stamp", {credentials: "same-origin"});
    if (r.ok && (await r.json()).stamp !== stamp) {
      document.getElementById("refresh").hidden = false; location.reload(); return;
    }
  } catch (e) {}
  setTimeout(check, 5000);
}
setTimeout(check, 5000);
