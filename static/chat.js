// The web chat page (templates/web/chat.html): its texts and settings come in #chat-config.
const config = JSON.parse(document.getElementById("chat-config").textContent);
const texts = config.texts;
const log = document.getElementById("log"), status = document.getElementById("status");
const fill = (text, values) => Object.entries(values).reduce((t, [k, v]) => t.replace("{" + k + "}", v), text);
// Icons come from static/icons.svg, never from an emoji font (a kiosk may have none).
function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "icon"); svg.setAttribute("aria-hidden", "true"); svg.setAttribute("focusable", "false");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", "/static/icons.svg#" + name);
  svg.appendChild(use);
  return svg;
}
function bubble(text, who, image) {
  const div = document.createElement("div");
  div.className = "msg " + who; div.textContent = text;
  if (image) { const img = document.createElement("img"); img.src = image; img.alt = "QR"; div.appendChild(img); }
  log.appendChild(div); log.scrollTop = log.scrollHeight;
  return div;
}
function button(label, iconName) {
  const el = document.createElement("button"); el.type = "button";
  if (iconName) el.appendChild(icon(iconName));
  el.appendChild(document.createTextNode(label));
  return el;
}
function buttons(rows, askLocation) {
  if (!rows.length && !askLocation) return;
  const box = document.createElement("div"); box.className = "buttons";
  const done = () => box.querySelectorAll("button").forEach(x => x.disabled = true);
  rows.flat().forEach(b => {
    const el = button(b.label, b.icon);
    el.dataset.action = b.data;
    el.addEventListener("click", () => { done(); bubble(b.label, "me"); send({button: b.data}); });
    box.appendChild(el);
  });
  if (askLocation && navigator.geolocation) {  // the dialogue lists the nearest centres first
    const el = button(texts.location, "pin");
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
// One POST by XMLHttpRequest: unlike fetch, it reports the upload's progress.
function post(data, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/chat/api/send");
    xhr.responseType = "json";
    if (progress) xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) progress(e.loaded / e.total); });
    xhr.onload = () => resolve({status: xhr.status, body: xhr.response || {}});
    xhr.onerror = () => reject(new Error("network"));
    xhr.send(data);
  });
}
// Each send carries an id; when its answer does not arrive (network, or the server restarted after
// saving the turn) it is sent again with the same id, and the server answers from what it saved.
// `upload` (a send with files) follows the progress and hears of a refusal.
async function send(fields, files, upload) {
  const data = new FormData();
  for (const [k, v] of Object.entries(fields)) data.append(k, v);
  (files || []).forEach(f => data.append("files", f, f.name));
  data.append("turn", turnId());
  status.textContent = files && files.length ? fill(texts.uploading, {n: files.length}) : texts.sending;
  for (const wait of [1000, 3000, 8000, 0]) {
    try {
      const answer = await post(data, upload && upload.progress);
      if (answer.status >= 200 && answer.status < 300) {
        if (upload) upload.sent();
        answer.body.replies.forEach(r => { bubble(r.text, "bot", r.image); buttons(r.buttons, r.ask_location); });
        status.textContent = "";
        return;
      }
      if (answer.status < 500) {  // refused: sending it again cannot help; say why
        status.textContent = answer.body.message || texts.error;
        if (upload) upload.failed(status.textContent);
        return;
      }
    } catch (e) { /* no answer: try again below */ }
    if (!wait) break;
    await new Promise(resolve => setTimeout(resolve, wait));
  }
  status.textContent = texts.error;
  if (upload) upload.failed(texts.error);
}
document.getElementById("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("text"), text = input.value.trim();
  if (!text) return;
  bubble(text, "me"); input.value = ""; send({text});
});
// A phone photo (12 MP, ~7 MB) is shrunk before it is sent: longest side PHOTO_LONGEST_SIDE, JPEG,
// as Telegram does. PDFs, and photos already small enough, go as they are.
async function shrink(file) {
  if (!file.type.startsWith("image/") || file.type === "image/gif") return file;
  let picture;
  try { picture = await createImageBitmap(file, {imageOrientation: "from-image"}); } catch (e) { return file; }
  const scale = Math.min(1, config.photo_longest_side / Math.max(picture.width, picture.height));
  if (scale === 1 && file.type === "image/jpeg") { picture.close(); return file; }
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(picture.width * scale); canvas.height = Math.round(picture.height * scale);
  const pen = canvas.getContext("2d");
  pen.fillStyle = "#fff"; pen.fillRect(0, 0, canvas.width, canvas.height);  // a transparent PNG
  pen.drawImage(picture, 0, 0, canvas.width, canvas.height);
  picture.close();
  const blob = await new Promise(resolve => canvas.toBlob(resolve, "image/jpeg", config.photo_quality));
  if (!blob || (scale === 1 && blob.size >= file.size)) return file;
  return new File([blob], file.name.replace(/\.[^.]*$/, "") + ".jpg", {type: "image/jpeg"});
}
// The files of one send as a bubble: a numbered row per file (the dialogue names a refused file by
// its number), each with its progress bar and, when it fails, why.
function uploadBubble(files) {
  const div = bubble("", "me upload"), list = document.createElement("ol");
  div.appendChild(icon("clip")); div.appendChild(list);
  const rows = files.map(f => {
    const row = document.createElement("li"), name = document.createElement("span");
    name.className = "file-name"; name.textContent = f.name;
    const bar = document.createElement("progress"); bar.max = 100; bar.value = 0;
    bar.setAttribute("aria-label", f.name);
    const note = document.createElement("span"); note.className = "file-note";
    row.append(name, bar, note); list.appendChild(row);
    return {row, bar, note};
  });
  const fail = (number, reason) => { rows[number].row.classList.add("failed"); rows[number].note.textContent = reason; };
  return {
    fail,
    start(sending) {  // the files actually sent, by row number
      const total = sending.reduce((sum, [, f]) => sum + f.size, 0) || 1;
      return {
        progress(fraction) {
          let before = 0;
          sending.forEach(([number, f]) => {
            const done = Math.min(Math.max(fraction * total - before, 0), f.size);
            rows[number].bar.value = Math.round(100 * done / (f.size || 1)); before += f.size;
          });
        },
        sent() { sending.forEach(([number]) => { rows[number].bar.value = 100; rows[number].row.classList.add("sent"); }); },
        failed(reason) { sending.forEach(([number]) => fail(number, reason)); },
      };
    },
  };
}
document.getElementById("files").addEventListener("change", async (event) => {
  const picked = Array.from(event.target.files);
  event.target.value = "";
  if (!picked.length) return;
  if (picked.length > config.max_files) { status.textContent = texts.too_many_files; return; }
  const upload = uploadBubble(picked);
  status.textContent = fill(texts.uploading, {n: picked.length});
  const files = await Promise.all(picked.map(shrink));
  // What the server would refuse, said per file before anything is sent (the server checks again).
  const sending = [];
  files.forEach((f, number) => {
    if (f.size > config.max_file_bytes) upload.fail(number, fill(texts.file_failed, {name: picked[number].name, reason: texts.file_too_large}));
    else sending.push([number, f]);
  });
  if (!sending.length) { status.textContent = texts.file_too_large; return; }
  if (sending.reduce((sum, [, f]) => sum + f.size, 0) > config.max_send_bytes) {
    sending.forEach(([number]) => upload.fail(number, texts.send_too_large));
    status.textContent = texts.send_too_large; return;
  }
  send({}, sending.map(([, f]) => f), upload.start(sending));
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
// A kiosk left alone starts over for the next person; its last seconds are counted down on the
// screen, and any touch (or "I'm still here") keeps the session.
if (config.kiosk_idle) {
  const idle = document.getElementById("idle"), idleText = document.getElementById("idle-text");
  let deadline = 0;
  const rearm = () => { deadline = Date.now() + config.kiosk_idle * 1000; idle.hidden = true; };
  ["click", "keydown", "touchstart", "change"].forEach(e => document.addEventListener(e, rearm));
  const ticker = setInterval(() => {
    const left = Math.ceil((deadline - Date.now()) / 1000);
    if (left <= 0) { clearInterval(ticker); endSession(); return; }
    if (left > config.kiosk_warning) return;
    idleText.textContent = fill(texts.idle_warning, {seconds: left});
    if (idle.hidden) { idle.hidden = false; status.textContent = idleText.textContent; }
  }, 1000);
  rearm();
}
