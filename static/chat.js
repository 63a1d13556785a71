// The web chat page (templates/web/chat.html): its texts and settings come in #chat-config.
const config = JSON.parse(document.getElementById("chat-config").textContent);
const texts = config.texts;
const log = document.getElementById("log"), status = document.getElementById("status");
function bubble(text, who, image) {
  const div = document.createElement("div");
  div.className = "msg " + who; div.textContent = text;
  if (image) { const img = document.createElement("img"); img.src = image; img.alt = "QR"; div.appendChild(img); }
  log.appendChild(div); log.scrollTop = log.scrollHeight;
}
function buttons(rows, askLocation) {
  if (!rows.length && !askLocation) return;
  const box = document.createElement("div"); box.className = "buttons";
  const done = () => box.querySelectorAll("button").forEach(x => x.disabled = true);
  rows.flat().forEach(b => {
    const el = document.createElement("button"); el.type = "button"; el.textContent = b.label;
    el.dataset.action = b.data;
    el.addEventListener("click", () => { done(); bubble(b.label, "me"); send({button: b.data}); });
    box.appendChild(el);
  });
  if (askLocation && navigator.geolocation) {  // the dialogue lists the nearest centres first
    const el = document.createElement("button"); el.type = "button"; el.textContent = texts.location;
    el.className = "share-location";
    el.addEventListener("click", () => navigator.geolocation.getCurrentPosition(
      (at) => { done(); bubble(texts.location, "me");
                send({latitude: at.coords.latitude, longitude: at.coords.longitude}); },
      () => { status.textContent = texts.noLocation; }, {timeout: 15000}));
    box.appendChild(el);
  }
  log.appendChild(box); log.scrollTop = log.scrollHeight;
}
function turnId() {  // crypto.randomUUID needs https; a kiosk may be on plain http
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), b => b.toString(16).padStart(2, "0")).join("");
}
// What the server would refuse, said before anything is sent (the server checks it again).
function filesProblem(files) {
  if (files.length > config.max_files) return texts.too_many_files;
  if (files.some(f => f.size > config.max_file_bytes)) return texts.file_too_large;
  if (files.reduce((total, f) => total + f.size, 0) > config.max_send_bytes) return texts.send_too_large;
  return null;
}
// Each send carries an id; when its answer does not arrive (network, or the server restarted after
// saving the turn) it is sent again with the same id, and the server answers from what it saved.
async function send(fields, files) {
  const data = new FormData();
  for (const [k, v] of Object.entries(fields)) data.append(k, v);
  (files || []).forEach(f => data.append("files", f));
  data.append("turn", turnId());
  status.textContent = files && files.length ? texts.uploading.replace("{n}", files.length) : texts.sending;
  for (const wait of [1000, 3000, 8000, 0]) {
    try {
      const response = await fetch("/chat/api/send", {method: "POST", body: data, credentials: "same-origin"});
      if (response.ok) {
        const body = await response.json();
        body.replies.forEach(r => { bubble(r.text, "bot", r.image); buttons(r.buttons, r.ask_location); });
        status.textContent = "";
        return;
      }
      if (response.status < 500) {  // refused: sending it again cannot help; say why
        const body = await response.json().catch(() => ({}));
        status.textContent = body.message || texts.error;
        return;
      }
    } catch (e) { /* no answer: try again below */ }
    if (!wait) break;
    await new Promise(resolve => setTimeout(resolve, wait));
  }
  status.textContent = texts.error;
}
document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("text"), text = input.value.trim();
  if (!text) return;
  bubble(text, "me"); input.value = ""; send({text});
});
document.getElementById("files").addEventListener("change", (event) => {
  const files = Array.from(event.target.files);
  event.target.value = "";
  if (!files.length) return;
  const problem = filesProblem(files);
  if (problem) { status.textContent = problem; return; }
  bubble("📎 " + files.map(f => f.name).join(", "), "me"); send({}, files);
});
send(config.first);
// Status pushes (accepted, supplement needed, result ready…) arrive in this chat: poll for them.
let lastPush = Number(localStorage.getItem("hcc_chat_last_push") || 0);
async function poll() {
  try {
    const response = await fetch("/chat/api/updates?after=" + lastPush, {credentials: "same-origin"});
    if (response.ok) {
      const body = await response.json();
      body.messages.forEach(m => { bubble(m.text, "bot push", m.image); buttons(m.buttons); lastPush = m.id; });
      localStorage.setItem("hcc_chat_last_push", String(lastPush));
    }
  } catch (e) { /* offline for a moment: the next poll catches up */ }
  setTimeout(poll, document.hidden ? 30000 : 5000);
}
setTimeout(poll, 1000);
// "Finish": a shared device (kiosk, a relative's phone) starts over with a new, empty session.
async function endSession() {
  await fetch("/chat/api/end", {method: "POST", credentials: "same-origin"});
  localStorage.removeItem("hcc_chat_last_push");
  location.reload();
}
document.getElementById("end").addEventListener("click", () => { if (confirm(texts.end_confirm)) endSession(); });
if (config.kiosk_idle) {
  let idleTimer;
  const rearm = () => { clearTimeout(idleTimer); idleTimer = setTimeout(endSession, config.kiosk_idle * 1000); };
  ["click", "keydown", "touchstart", "change"].forEach(e => document.addEventListener(e, rearm));
  rearm();
}
