// The grid worker's phone (网格员移动端). Plain JS over the ordinary API.
// Every write (GPS fix, report, move, check-in) goes through the outbox: an IndexedDB store that keeps
// it until the server has answered, retried with backoff; each carries a client-made key so a retry
// after a lost answer never makes a second ticket (Idempotency-Key; fixes are unique per worker+time).
"use strict";

const params = new URLSearchParams(location.search);
const INTERVAL_S = Math.max(1, Number(params.get("interval")) || 15);
const STATES = { received: "已受理", dispatched: "已派单", signed: "已签收", handling: "处置中", completed: "已办结",
  reviewed: "已审核", revisited: "已回访", closed: "已结案", returned: "已返单", signed_off: "已销号" };
const MOVES = { sign: "签收", start: "开始处置", complete: "办结" };
const $ = (id) => document.getElementById(id);
const me = { auth: document.body.dataset.auth === "on", username: null, worker: null, grids: [] };
let lastFix = null;

// ------------------------------------------------------------------ the outbox (IndexedDB)

const db = new Promise((resolve, reject) => {
  const open = indexedDB.open("onemap-field", 1);
  open.onupgradeneeded = () => {
    open.result.createObjectStore("outbox", { keyPath: "id", autoIncrement: true });
    open.result.createObjectStore("done", { keyPath: "id", autoIncrement: true });
  };
  open.onsuccess = () => resolve(open.result);
  open.onerror = () => reject(open.error);
});

function store(name, mode, fn) {
  return db.then((d) => new Promise((resolve, reject) => {
    const tx = d.transaction(name, mode);
    const out = fn(tx.objectStore(name));
    tx.oncomplete = () => resolve(out && "result" in out ? out.result : undefined);
    tx.onerror = () => reject(tx.error);
  }));
}
const all = (name) => store(name, "readonly", (s) => s.getAll());
const put = (name, item) => store(name, "readwrite", (s) => s.put(item));
const drop = (name, id) => store(name, "readwrite", (s) => s.delete(id));

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function enqueue(item) {
  await put("outbox", { ...item, key: item.key || uuid(), attempts: 0, next_at: 0, created: Date.now() });
  await showQueue();
  flush();
}

async function showQueue() {
  const items = await all("outbox");
  $("queue-count").textContent = items.length;
  $("pending").innerHTML = "";
  for (const i of items.filter((x) => x.kind !== "fix")) {  // GPS fixes are counted, not listed
    const li = document.createElement("li");
    li.textContent = `${i.title || i.kind}${i.attempts ? `（已重试 ${i.attempts} 次）` : ""}`;
    $("pending").append(li);
  }
  const done = await all("done");
  $("delivered").innerHTML = "";
  $("failed").innerHTML = "";
  for (const d of done.reverse()) {
    const li = document.createElement("li");
    li.textContent = d.text;
    $(d.ok ? "delivered" : "failed").append(li);
  }
}

class Permanent extends Error {}   // the server refused it for good (shown under 未能送达, kept)
class SignedOut extends Error {}   // sign in again; the outbox waits

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { credentials: "same-origin", ...options });
  } catch (e) {
    setNet(false);  // the server could not be reached
    throw e;
  }
  setNet(true);
  if (response.status === 401) throw new SignedOut("请重新登录");
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status >= 500 || response.status === 429 || response.status === 408) {
    throw new Error(`服务器暂不可用 (${response.status})`);
  }
  if (!response.ok) {
    const err = new Permanent((body && (body.detail || body.error)) || `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

const json = (method, body, headers = {}) => ({ method, headers: { "Content-Type": "application/json", ...headers },
  body: JSON.stringify(body) });

async function sendPhoto(ticketId, blob, key) {
  const form = new FormData();
  form.append("file", blob, "photo.jpg");
  form.append("uploaded_by", me.username);
  return api(`/tickets/${ticketId}/attachments`, { method: "POST", body: form, headers: { "Idempotency-Key": key } });
}

// One handler per kind; each is safe to run again after a lost answer.
const SENDERS = {
  async fixes(batch) {
    const lines = batch.map((f) => JSON.stringify({ worker_id: f.worker_id, ts: f.ts, lon: f.lon, lat: f.lat,
      accuracy: f.accuracy })).join("\n");
    const out = await api("/workers/positions", { method: "POST", body: lines,
      headers: { "Content-Type": "application/x-ndjson" } });
    return out;
  },
  async report(item) {
    if (!item.ticket_id) {
      const t = await api("/tickets", json("POST", item.body, { "Idempotency-Key": item.key }));
      item.ticket_id = t.id;
      await put("outbox", item); // the ticket exists: a retry only sends what is left
    }
    if (item.photo) await sendPhoto(item.ticket_id, item.photo, `${item.key}-photo`);
    return `#${item.ticket_id} ${item.title}`;
  },
  async move(item) {
    if (item.photo && !item.photo_sent) {
      await sendPhoto(item.ticket_id, item.photo, `${item.key}-photo`);
      item.photo_sent = true;
      await put("outbox", item);
    }
    try {
      await api(`/tickets/${item.ticket_id}/${item.move}`, json("POST",
        { actor: me.username, role: "grid_worker", note: item.note || null }));
    } catch (e) {
      // a retry of a move the server already made answers 409: done if the ticket is past it
      if (!(e instanceof Permanent) || e.status !== 409) throw e;
      const t = await api(`/tickets/${item.ticket_id}`);
      const after = { sign: ["signed", "handling", "completed"], start: ["handling", "completed"], complete: ["completed"] };
      if (!(after[item.move] || []).includes(t.state) && !["reviewed", "revisited", "closed"].includes(t.state)) throw e;
    }
    return `#${item.ticket_id} ${MOVES[item.move]}`;
  },
  async checkin(item) {
    const out = await api("/field/checkins", json("POST", { ...item.body, client_id: item.key, worker: demoWorker() }));
    return `签到 ${out.site || ""} ${out.grid_name || out.grid_code || ""}${out.distance_m != null ? ` 距工单 ${Math.round(out.distance_m)} 米` : ""}`;
  },
};

let flushing = false;
async function flush() {
  if (flushing || !me.username) return;
  flushing = true;
  try {
    const now = Date.now();
    const items = (await all("outbox")).filter((i) => i.next_at <= now);
    const fixes = items.filter((i) => i.kind === "fix");
    if (fixes.length) await attempt(fixes, () => SENDERS.fixes(fixes), (out) => `位置 ${fixes.length - (out.rejected || []).length} 条`);
    for (const item of items.filter((i) => i.kind !== "fix")) {
      await attempt([item], () => SENDERS[item.kind](item), (text) => text);
    }
  } finally {
    flushing = false;
    await showQueue();
  }
}

async function attempt(items, send, describe) {
  try {
    const out = await send();
    for (const i of items) await drop("outbox", i.id);
    if (items[0].kind !== "fix") await put("done", { ok: true, text: `${describe(out)} 已送达`, at: Date.now() });
    if (items[0].kind === "fix" && out.rejected && out.rejected.length) {
      await put("done", { ok: false, text: `位置 ${out.rejected.length} 条被拒：${out.rejected[0].reason}`, at: Date.now() });
    }
    setNet(true);
  } catch (e) {
    if (e instanceof SignedOut) { showSignIn("登录已过期，请重新登录（未发送的数据已保存）"); return; }
    if (e instanceof Permanent) {
      for (const i of items) {
        await drop("outbox", i.id);
        await put("done", { ok: false, text: `${i.title || i.kind}：${e.message}`, at: Date.now(), item: { ...i, photo: null } });
      }
      return;
    }
    for (const i of items) {  // backoff: 2, 4, 8 … 60 s, with jitter
      i.attempts += 1;
      i.next_at = Date.now() + Math.min(60000, 1000 * 2 ** i.attempts) * (0.75 + Math.random() / 2);
      i.last_error = String(e.message || e);
      await put("outbox", i);
    }
  }
}

// The badge follows what the network does, not only navigator.onLine (which says "online" on a Wi-Fi
// without internet, and in a page reopened from the cache): a request that cannot reach the server
// means offline, any answer means online.
let netUp = navigator.onLine;
function setNet(online) {
  const back = online && !netUp;
  netUp = online;
  $("net").textContent = online ? "在线" : "离线";
  $("net").className = online ? "online" : "offline";
  if (back) dueNow();
  if (back && me.worker && !$("tab-report").hidden) locate();  // the grid of the place, now resolvable
}
async function dueNow() {  // back online: everything is due now
  for (const i of await all("outbox")) { i.next_at = 0; await put("outbox", i); }
  flush();
}
window.addEventListener("online", () => setNet(true));
window.addEventListener("offline", () => setNet(false));
setInterval(flush, 2000);

// ------------------------------------------------------------------ sign-in and who am I

function demoWorker() { return me.auth ? null : me.username; }

function showSignIn(message) {
  $("signin").hidden = false;
  $("app").hidden = true;
  $("tabs").hidden = true;
  $("signin-msg").textContent = message || "";
  if (!me.auth) {
    $("pass-label").hidden = true;
    $("user-label").firstChild.textContent = "演示模式：输入工号（如 W0001）";
  }
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  try {
    if (me.auth) {
      await api("/auth/token", { method: "POST", body: new URLSearchParams(form) });
    } else {
      localStorage.setItem("onemap-demo-worker", form.get("username"));
    }
    await start();
  } catch (e) {
    $("signin-msg").textContent = e instanceof SignedOut ? "账号或密码错误" : `登录失败：${e.message}`;
  }
});

async function start() {
  const query = me.auth ? "" : `?worker=${encodeURIComponent(localStorage.getItem("onemap-demo-worker") || "")}`;
  let who;
  try {
    who = await api(`/field/me${query}`);
    localStorage.setItem("onemap-me", JSON.stringify(who));
  } catch (e) {
    if (e instanceof SignedOut || e instanceof Permanent) { showSignIn(e instanceof Permanent ? e.message : ""); return; }
    who = JSON.parse(localStorage.getItem("onemap-me") || "null");  // offline: the last known
    if (!who) { showSignIn("离线：首次登录需要网络"); return; }
  }
  me.username = who.username === "anonymous-demo" ? who.worker.id : who.username;
  me.worker = who.worker;
  me.grids = who.grids;
  $("who").textContent = `${who.worker.name} · ${who.worker.id}`;
  $("grids").textContent = "我的网格：" + who.grids.map((g) => `${g.name}（${g.village_name || ""}）`).join("、");
  $("signin").hidden = true;
  $("app").hidden = false;
  $("tabs").hidden = false;
  loadCategories();
  loadTasks();
  locate();
  showQueue();
  flush();
}

$("signout").addEventListener("click", async () => {
  stopPatrol();
  try { await api("/auth/logout", { method: "POST" }); } catch (e) { /* offline: the cookie expires anyway */ }
  localStorage.removeItem("onemap-me");
  me.username = null;
  showSignIn("已退出");
});

// ------------------------------------------------------------------ tabs

for (const button of document.querySelectorAll("#tabs button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b === button);
    for (const name of ["tasks", "report", "patrol"]) $(`tab-${name}`).hidden = name !== button.dataset.tab;
    if (button.dataset.tab === "report") locate();
  });
}

// ------------------------------------------------------------------ position and place

function position() {
  return new Promise((resolve, reject) => navigator.geolocation.getCurrentPosition(
    (p) => resolve({ lon: p.coords.longitude, lat: p.coords.latitude, accuracy: p.coords.accuracy,
      ts: new Date(p.timestamp || Date.now()).toISOString() }),
    (e) => reject(new Error(e.message || "定位失败")), { enableHighAccuracy: true, timeout: 15000, maximumAge: 5000 }));
}

async function locate() {
  $("place").textContent = "正在定位…";
  try {
    lastFix = await position();
  } catch (e) {
    $("place").textContent = `无法定位：${e.message}`;
    return;
  }
  $("place").dataset.lon = lastFix.lon;
  $("place").dataset.lat = lastFix.lat;
  try {
    const r = await api(`/resolve?lon=${lastFix.lon}&lat=${lastFix.lat}`);
    $("place").textContent = r.grid_code
      ? `${r.town_name || ""} ${r.village_name || ""} · ${r.grid_name || r.grid_code}`
      : "不在任何网格内（仍可上报，由指挥中心定位）";
    $("place").dataset.grid = r.grid_code || "";
  } catch (e) {
    $("place").textContent = `已定位 ${lastFix.lon.toFixed(5)}, ${lastFix.lat.toFixed(5)}（离线，网格待联网后确定）`;
  }
}

// ------------------------------------------------------------------ patrol: a fix every N seconds

let patrolTimer = null;
$("interval").textContent = INTERVAL_S;

async function takeFix() {
  try {
    const p = await position();
    lastFix = p;
    await enqueue({ kind: "fix", worker_id: me.worker.id, ts: p.ts, lon: p.lon, lat: p.lat, accuracy: p.accuracy });
    $("patrol-state").textContent = `巡查中 · 最近定位 ${new Date(p.ts).toLocaleTimeString("zh-CN")}`;
  } catch (e) {
    $("patrol-state").textContent = `巡查中 · 定位失败：${e.message}`;
  }
}

function stopPatrol() {
  clearInterval(patrolTimer);
  patrolTimer = null;
  $("patrol").textContent = "开始巡查";
  $("patrol").classList.remove("on");
  $("patrol-state").textContent = "未在巡查";
}

$("patrol").addEventListener("click", () => {
  if (patrolTimer) { stopPatrol(); return; }
  $("patrol").textContent = "结束巡查";
  $("patrol").classList.add("on");
  takeFix();
  patrolTimer = setInterval(takeFix, INTERVAL_S * 1000);
});

$("checkin").addEventListener("click", () => checkIn(null, $("site").value.trim(), "checkin-msg"));
$("task-checkin").addEventListener("click", () => checkIn(currentTask && currentTask.id,
  currentTask ? `工单 #${currentTask.id}` : "", "task-msg"));

async function checkIn(ticketId, site, messageId) {
  let p;
  try { p = await position(); } catch (e) { $(messageId).textContent = `无法定位：${e.message}`; return; }
  await enqueue({ kind: "checkin", title: `签到 ${site}`,
    body: { lon: p.lon, lat: p.lat, accuracy_m: p.accuracy, site, ticket_id: ticketId, at: p.ts } });
  $(messageId).textContent = `已签到（${new Date(p.ts).toLocaleTimeString("zh-CN")}）`;
}

// ------------------------------------------------------------------ snap and report

async function loadCategories() {
  let cats = JSON.parse(localStorage.getItem("onemap-categories") || "null");
  try {
    cats = await api("/public/categories");
    localStorage.setItem("onemap-categories", JSON.stringify(cats));
  } catch (e) { if (!cats) return; }
  const select = $("category");
  select.innerHTML = '<option value="">请选择</option>';
  const groups = {};
  for (const c of cats) (groups[c.major_name] = groups[c.major_name] || []).push(c);
  for (const [major, items] of Object.entries(groups)) {
    const group = document.createElement("optgroup");
    group.label = major;
    for (const c of items) group.append(new Option(`${c.name}`, c.code));
    select.append(group);
  }
}

// A phone camera's photo is several MB: send it as a JPEG of at most 1600 px.
async function shrink(file) {
  if (!file) return null;
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 1600 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  } catch (e) {
    return file;  // the server checks the type
  }
}

$("photo").addEventListener("change", () => {
  const file = $("photo").files[0];
  $("photo-preview").hidden = !file;
  if (file) $("photo-preview").src = URL.createObjectURL(file);
});

$("report-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const category = $("category").value;
  const description = $("description").value.trim();
  if (!category || !description) { $("report-msg").textContent = "请选择类别并填写描述"; return; }
  if (!lastFix) { $("report-msg").textContent = "尚未定位，请稍候再试"; return; }
  const photo = await shrink($("photo").files[0]);
  const name = $("category").selectedOptions[0].textContent;
  await enqueue({ kind: "report", title: `${name}：${description.slice(0, 20)}`, photo,
    body: { channel: "patrol", category, description, lon: lastFix.lon, lat: lastFix.lat,
      reporter_name: me.worker.name, source_ref: me.worker.id, actor: me.username } });
  $("report-msg").textContent = netUp ? "已提交，正在发送…" : "离线：已保存在手机上，联网后自动发送";
  ev.target.reset();
  $("photo-preview").hidden = true;
  locate();
});

// ------------------------------------------------------------------ tasks

let currentTask = null;

async function loadTasks() {
  let data;
  try {
    data = await api(`/field/tasks${me.auth ? "" : `?worker=${encodeURIComponent(me.username)}`}`);
    localStorage.setItem("onemap-tasks", JSON.stringify(data));
  } catch (e) {
    data = JSON.parse(localStorage.getItem("onemap-tasks") || '{"items": []}');
  }
  const list = $("tasks");
  list.innerHTML = "";
  if (!data.items.length) list.innerHTML = '<li class="empty">我的网格内暂无待办工单</li>';
  for (const t of data.items) {
    const li = document.createElement("li");
    li.className = `card ${t.mine ? "mine" : ""} ${t.card}`;
    li.dataset.id = t.id;
    li.innerHTML = `<b></b><span class="state"></span><p></p><small></small>`;
    li.querySelector("b").textContent = `#${t.id} ${t.category_name}`;
    li.querySelector(".state").textContent = (t.mine ? "待我处理 · " : "") + t.state_name;
    li.querySelector("p").textContent = t.description;
    li.querySelector("small").textContent = `${t.grid_name || t.grid_code}${t.complete_due ? ` · 期限 ${new Date(t.complete_due).toLocaleString("zh-CN")}` : ""}`;
    li.addEventListener("click", () => openTask(t));
    list.append(li);
  }
}
$("reload-tasks").addEventListener("click", loadTasks);

function openTask(t) {
  currentTask = t;
  $("tasks").hidden = true;
  $("task").hidden = false;
  $("task-title").textContent = `#${t.id} ${t.category_name}`;
  $("task-meta").textContent = `${STATES[t.state] || t.state} · ${t.grid_name || t.grid_code}`;
  $("task-desc").textContent = t.description;
  $("task-msg").textContent = "";
  const moves = $("task-moves");
  moves.innerHTML = "";
  const completing = t.my_moves.includes("complete");
  $("task-note-label").hidden = !completing;
  $("task-photo-label").hidden = !completing;
  for (const m of t.my_moves.filter((x) => MOVES[x])) {
    const b = document.createElement("button");
    b.textContent = MOVES[m];
    b.dataset.move = m;
    b.addEventListener("click", () => doMove(t, m));
    moves.append(b);
  }
  if (!t.mine) moves.innerHTML = '<p class="hint">此工单未派给本村/社区，仅供了解；可到场签到。</p>';
}

$("task-back").addEventListener("click", () => { $("task").hidden = true; $("tasks").hidden = false; loadTasks(); });

async function doMove(t, move) {
  const note = move === "complete" ? $("task-note").value.trim() : null;
  if (move === "complete" && !note) { $("task-msg").textContent = "办结需要填写说明"; return; }
  const photo = move === "complete" ? await shrink($("task-photo").files[0]) : null;
  await enqueue({ kind: "move", title: `#${t.id} ${MOVES[move]}`, ticket_id: t.id, move, note, photo });
  const next = { sign: "signed", start: "handling", complete: "completed" }[move];
  t.state = next;
  t.state_name = STATES[next];
  t.my_moves = { signed: ["start"], handling: ["complete"] }[next] || [];
  openTask(t);
  $("task-msg").textContent = `${MOVES[move]}已提交${netUp ? "" : "（离线，联网后发送）"}`;
}

// ------------------------------------------------------------------ start

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/mobile-sw.js", { scope: "/mobile" }).catch((e) => { window.swError = String(e); });
}
setNet(netUp);
if (me.auth || localStorage.getItem("onemap-demo-worker")) start(); else showSignIn();
