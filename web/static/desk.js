// The ticket desk: filtered list, detail with the timeline, the allowed moves as buttons, a map inset.
import { getJSON, postJSON, esc, timeText, STATE_NAMES, CARD_NAMES, CARD_COLOURS, moveName } from "/static/common.js";
import { shifter, shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const shift = shifter(crs);
const PAGE = 20;
const ROLES = { district: "区指挥中心", town: "镇街", village: "村社区", department: "职能部门", grid_worker: "网格员", city: "市级" };
// Move names: common.js (数字城管 terms, GB/T 30428 series; 核实 before dispatch, 核查 after 办结).
// What each move needs in its payload, read from the parameter box (lists: comma separated).
const NEEDS = { grab: ["assignee", "镇街编码"], dispatch: ["assignee", "承办单位（镇街编码或部门）"], split: ["villages", "村社区编码，逗号分隔"],
  join: ["units", "联办部门，逗号分隔"], revisit: ["satisfaction", "满意度 1-5"], extend: ["until", "延期至（ISO 时间）"],
  check: ["verified", "核实属实 true/false"], verify_fix: ["fixed", "核查已解决 true/false"] };
const CLOCKS = { dispatch: "派遣时限", sign: "签收时限", complete: "办结时限" };
const state = { offset: 0, ticket: null, role: "district", names: {}, towns: {}, depts: {}, deptKinds: {}, categories: [],
  view: "all", mapMode: null, intakePoint: null, demo: Boolean(document.getElementById("demo-banner")) };
const CHANNELS = { hotline: "12345 热线", wechat: "微信", app: "APP", patrol: "网格员巡查", camera: "视频监控", sensor: "物联感知" };
const SEVERITIES = { general: "一般", important: "重要", urgent: "紧急" };
// A town, village or department by name (12-digit codes and department codes are for machines).
function nameOf(code) { return code ? (state.names[code] || state.depts[code] || code) : "—"; }
// Refusals in Chinese: the API explains in English; the desk says what it means for the operator.
const REASONS = [
  [/placing a ticket is the command centre's work/, "定位未定位工单是区、市指挥中心的工作，当前角色不能定位"],
  [/outside every grid/, "该位置不在任何网格内，请在网格范围内重新点选"],
  [/already placed/, "该工单已经定位"],
  [/attachment type .* not accepted/, "只接受 JPEG、PNG 或 WebP 格式的照片"],
  [/attachment is \d+ bytes/, "照片超过 5 MB，请压缩后再上传"],
  [/attachment is empty/, "照片文件是空的"],
  [/is not a .* file/, "文件内容与照片格式不符"],
  [/unknown category/, "事件类别无效，请从列表中选择"],
  [/needs a location/, "请填写地址，或在地图上点选事件位置"],
  [/not allowed|cannot|may not|is not the/, null],
];
const FIELD_NAMES = { description: "事件描述", category: "事件类别", channel: "来源渠道", severity: "紧急程度", address: "地址",
  reporter_name: "来电人", reporter_phone: "联系电话", lon: "经度", lat: "纬度", file: "照片" };
function zhError(err) {
  const status = err.status || 0;
  const detail = err.body && err.body.detail;
  if (Array.isArray(detail)) {  // 422: which fields are wrong
    return "请检查：" + detail.map((d) => FIELD_NAMES[(d.loc || []).slice(-1)[0]] || (d.loc || []).slice(-1)[0]).join("、");
  }
  const text = typeof detail === "string" ? detail : err.message;
  for (const [re, zh] of REASONS) if (re.test(text) && zh) return zh;
  const head = { 400: "输入有误", 403: "无权操作", 404: "未找到（可能不在本辖区）", 409: "当前状态不允许此操作", 413: "文件过大", 429: "操作过于频繁，请稍后再试" }[status] || "操作失败";
  return `${head}：${text}`;
}

// The deadline that runs for a list row's state, and how far past it the ticket is now.
function due(t) {
  if (["received", "returned"].includes(t.state)) return t.dispatch_due;
  if (t.state === "dispatched") return t.sign_due;
  if (["signed", "handling"].includes(t.state)) return t.complete_due;
  return null;
}
function overdueText(iso) {
  if (!iso) return "";
  const ms = Date.now() - new Date(iso).getTime();
  if (ms <= 0) return "";
  const h = Math.floor(ms / 3600000), d = Math.floor(h / 24);
  return d ? `${d} 天 ${h % 24} 小时` : `${h} 小时 ${Math.floor(ms / 60000) % 60} 分`;
}

const map = L.map("map", { attributionControl: false, zoomControl: false }).setView([36.88, 118.8], 10);
if (body.dataset.tileUrl) L.tileLayer(body.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
const gridLayer = L.geoJSON(null, { style: { color: "#ffd166", weight: 2, fillOpacity: 0.12 } }).addTo(map);
const pointLayer = L.layerGroup().addTo(map);

function filters() {
  const data = new FormData(document.getElementById("filters"));
  const out = { limit: PAGE, offset: state.offset };
  for (const [k, v] of data) if (v) out[k] = v;
  if (state.view === "unplaced") out.unplaced = "true";
  return out;
}

async function loadList() {
  const res = await getJSON("/tickets?" + new URLSearchParams(filters()));
  document.getElementById("total").textContent = `共 ${res.total} 件`;
  const tbody = document.querySelector("#tickets tbody");
  // the order is the server's (sort=urgency: red, yellow, then the running deadline over all pages)
  const items = res.items;
  tbody.innerHTML = items.map((t) => `<tr data-id="${t.id}"><td>#${t.id}</td><td>${esc(t.category_name)}</td>
    <td>${esc(STATE_NAMES[t.state] || t.state)}</td><td class="card-${t.card}">${esc(CARD_NAMES[t.card])}</td>
    <td>${t.unplaced ? '<b class="card-yellow">未定位</b>' : esc(nameOf(t.town_code))}</td><td class="unit">${esc(nameOf(t.assignee || t.department))}</td><td>${timeText(t.created_at)}</td>
    <td class="due">${due(t) ? timeText(due(t)) : "—"}</td><td class="overdue">${esc(overdueText(due(t)) || "—")}</td></tr>`).join("")
    || `<tr><td colspan="9" class="muted">${state.view === "unplaced" ? "没有待定位的工单" : "没有符合条件的工单"}</td></tr>`;
  tbody.querySelectorAll("tr[data-id]").forEach((tr) => tr.addEventListener("click", () => openTicket(Number(tr.dataset.id))));
  document.getElementById("prev").disabled = state.offset === 0;
  document.getElementById("next").disabled = state.offset + PAGE >= res.total;
  body.dataset.listed = res.items.length;
}

async function openTicket(id) {
  const t = await getJSON("/tickets/" + id);
  state.ticket = t;
  location.hash = String(id);
  document.querySelectorAll("#tickets tr").forEach((tr) => tr.classList.toggle("on", tr.dataset.id === String(id)));
  renderDetail(t);
  pointLayer.clearLayers(); gridLayer.clearLayers();
  setMapMode(t.unplaced ? "place" : null);
  if (t.lat != null) {
    L.circleMarker(shift([t.lat, t.lon]), { radius: 8, color: "#fff", weight: 2, fillColor: CARD_COLOURS[t.card] || CARD_COLOURS.ok, fillOpacity: 1 }).addTo(pointLayer);
    map.setView(shift([t.lat, t.lon]), 15);
  }
  if (t.grid_code) getJSON("/grids/" + t.grid_code).then((g) => gridLayer.addData(shiftGeoJSON(g, crs)));
}

// System actors are machine names ("system:sla", "system:camera"); say who they are in Chinese.
const SYSTEM_ACTORS = { sla: "时限督办", camera: "视频告警", sensor: "传感器告警", intake: "自动受理", dedupe: "重复件合并", api: "接口" };
function actorText(actor) {
  if (actor === "api") return "接口";
  const m = /^(?:system|onemap)(?::(.*))?$/.exec(actor || "");
  return m ? "系统" + (m[1] ? "·" + (SYSTEM_ACTORS[m[1]] || m[1]) : "") : actor;
}

function renderDetail(t) {
  // signed in: the server knows the caller's workflow role (contract 1) and says which moves it has
  const moves = state.demo ? ((t.allowed && t.allowed[state.role]) || [])
    : (t.my_moves || (t.actor_role && t.allowed && t.allowed[t.actor_role]) || []);
  const timeline = t.timeline.map((e) => `<li><time>${timeText(e.at)}</time><b>${esc(moveName(e.move))}</b>
    ${esc(e.role === "system" ? "系统" : ROLES[e.role] || e.role)} ${esc(actorText(e.actor))} → ${esc(STATE_NAMES[e.to_state] || e.to_state)}${eventWhat(e)}${e.note ? "<br><span class='muted'>" + esc(e.note) + "</span>" : ""}</li>`).join("");
  document.getElementById("detail").innerHTML = `<h2>工单 #${t.id} <small>${esc(t.category_major)} / ${esc(t.category_name)}</small></h2>
    <dl class="facts"><dt>状态</dt><dd>${esc(STATE_NAMES[t.state] || t.state)}</dd><dt>督办</dt><dd class="card-${t.card}">${esc(CARD_NAMES[t.card])}${t.live_card !== t.card ? ` <span class="muted">（按当前时间将为${esc(CARD_NAMES[t.live_card])}）</span>` : ""}</dd>
    <dt>属地</dt><dd>${t.unplaced ? '<b class="card-yellow">未定位</b>' : `${esc(nameOf(t.town_code))} · ${esc(nameOf(t.village_code))} · 网格 ${esc(t.grid_code)}`}</dd><dt>地址</dt><dd>${esc(t.address)}</dd>
    <dt>承办</dt><dd class="unit">${esc(nameOf(t.assignee || t.department))}${t.assignee && t.department && t.assignee !== t.department ? ` <span class="muted">（主管部门：${esc(nameOf(t.department))}）</span>` : ""}</dd><dt>时限</dt><dd>${t.running_due ? `${esc(CLOCKS[t.running_clock] || "")} ${timeText(t.running_due)}${overdueText(t.running_due) ? ` <b class="card-red">已超时 ${esc(overdueText(t.running_due))}</b>` : ""}` : "—"}</dd>
    <dt>描述</dt><dd>${esc(t.description)}</dd>${t.reporter_name || t.reporter_phone ? `<dt>来电人</dt><dd>${esc(t.reporter_name)} ${esc(t.reporter_phone || "")}</dd>` : ""}</dl>
    ${t.unplaced ? `<div class="message bad place-hint" id="place-hint">此工单未定位（${esc(unplacedText(t.unplaced_reason))}）：请在右侧地图上点击事件位置进行定位。</div>` : ""}
    <h3>现场照片 <small class="muted">${t.attachments.length} 张</small></h3>
    <div class="photos">${t.attachments.map((a) => `<a href="/tickets/${t.id}/attachments/${a.id}" target="_blank" title="${esc(a.filename)}"><img src="/tickets/${t.id}/attachments/${a.id}" alt="${esc(a.filename)}" loading="lazy"></a>`).join("") || "<span class='muted'>暂无照片</span>"}</div>
    <form id="upload" class="form-row"><label class="file-pick">上传照片<input id="photo" name="file" type="file" accept="image/jpeg,image/png,image/webp"><span class="file-row"><span class="file-button">选择照片</span><span class="file-name" data-empty="未选择照片">未选择照片</span></span></label><button type="submit">上传</button></form>
    <div id="upload-result"></div>
    <h3>办理流程</h3><ol class="timeline" data-events="${t.timeline.length}">${timeline}</ol>
    <h3>可执行操作 ${state.demo ? `<label class="muted">演示角色 <select id="role">${Object.entries(ROLES).map(([k, v]) => `<option value="${k}" ${k === state.role ? "selected" : ""}>${v}</option>`).join("")}</select></label>`
      : `<span class="muted">${esc(ROLES[t.actor_role] || "")}</span>`}</h3>
    <div class="form-row"><label>经办人</label><input id="actor" type="text" value="值班员"></div>
    ${moves.some((m) => m === "dispatch" || m === "grab") ? `<div class="form-row"><label for="assignee">派遣至</label><select id="assignee">${unitOptions(t)}</select></div>
      <div id="nearest" class="muted">正在查找附近的网格员…</div>` : ""}
    <div class="form-row"><label>参数</label><input id="param" type="text" placeholder="分单填村社区编码；联单填部门"></div>
    <div class="form-row"><label>备注</label><input id="note" type="text"></div>
    <div class="moves">${moves.map((m) => `<button data-move="${m}" title="${esc((NEEDS[m] || [])[1] || "")}">${esc(moveName(m))}</button>`).join("") || "<span class='muted'>此角色当前无可执行操作</span>"}</div>
    <div id="move-result"></div>`;
  const role = document.getElementById("role");
  if (role) role.addEventListener("change", (e) => { state.role = e.target.value; renderDetail(state.ticket); });
  document.querySelectorAll("[data-move]").forEach((b) => b.addEventListener("click", () => move(b.dataset.move)));
  if (document.getElementById("nearest")) nearest(t);
  document.getElementById("upload").addEventListener("submit", (e) => { e.preventDefault(); upload(t); });
}

// Why a report has no place, in Chinese (the resolver's reasons are English).
function unplacedText(reason) {
  if (!reason) return "未给出位置";
  if (/^address unmatched/.test(reason)) return "地址未能匹配到标准地址";
  if (/outside every grid|outside/.test(reason)) return "位置不在任何网格内";
  if (/geocod/.test(reason)) return "地址解析不可用";
  return "无法自动定位";
}

// Towns/streets first (the usual 派遣), then departments and utilities; the ticket's own town (or,
// for a department's category, its department) is preselected.
function unitOptions(t) {
  const pick = t.town_code && t.needs_town !== false ? t.town_code : (t.department || t.town_code);
  const opt = (code, name) => `<option value="${esc(code)}" ${code === pick ? "selected" : ""}>${esc(name)}</option>`;
  const kind = (k) => Object.entries(state.depts).filter(([c]) => state.deptKinds[c] === k).map(([c, n]) => opt(c, n)).join("");
  return `<optgroup label="镇街">${Object.entries(state.towns).map(([c, n]) => opt(c, n)).join("")}</optgroup>
    <optgroup label="职能部门">${kind("department")}</optgroup><optgroup label="公用企业">${kind("utility")}</optgroup>`;
}

// What a timeline event did, by name: dispatched to whom, split to which villages, placed in which grid.
function eventWhat(e) {
  const p = e.payload || {};
  const parts = [];
  if (p.assignee) parts.push("承办：" + nameOf(p.assignee));
  if (Array.isArray(p.villages) && p.villages.length) parts.push("分至：" + p.villages.map(nameOf).join("、"));
  if (Array.isArray(p.units) && p.units.length) parts.push("联办：" + p.units.map(nameOf).join("、"));
  if (e.move === "place" && p.grid_code) parts.push("网格 " + p.grid_code);
  if (e.move === "attach" && p.filename) parts.push("照片 " + p.filename);
  return parts.length ? ` <span class="what">（${esc(parts.join("；"))}）</span>` : "";
}

async function upload(t) {
  const input = document.getElementById("photo");
  const box = document.getElementById("upload-result");
  if (!input.files.length) { box.innerHTML = `<div class="message bad">请先选择一张照片</div>`; return; }
  const form = new FormData();
  form.append("file", input.files[0]);
  form.append("uploaded_by", document.getElementById("actor").value.trim() || "值班员");
  try {
    await getJSON(`/tickets/${t.id}/attachments`, { method: "POST", body: form });
    await openTicket(t.id);
    document.getElementById("upload-result").innerHTML = `<div class="message ok">照片已上传</div>`;
  } catch (err) { box.innerHTML = `<div class="message bad">${esc(zhError(err))}</div>`; }
}

async function nearest(t) {
  const box = document.getElementById("nearest");
  if (t.unplaced) { box.textContent = "附近网格员：工单定位后可查"; return; }
  try {
    const rows = await getJSON(`/tickets/${t.id}/nearest-workers?k=5`);
    box.innerHTML = rows.length ? "附近在岗网格员：" + rows.map((w) => `<a href="#" data-worker="${esc(w.worker_id)}" data-grid="${esc(w.grid_code)}">${esc(w.name)}
      （${(w.distance_m / 1000).toFixed(1)} km）</a>`).join("、") : "附近没有在岗网格员";
    box.querySelectorAll("[data-worker]").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault();
      const town = (a.dataset.grid || "").slice(0, 9) + "000";
      if (state.towns[town]) document.getElementById("assignee").value = town;
      document.getElementById("note").value = `请网格员 ${a.textContent.trim()} 就近处置`;
    }));
  } catch (err) { box.textContent = "附近网格员：" + (err.status === 404 ? "无" : zhError(err)); }
}

function payloadFor(name) {
  const need = NEEDS[name];
  const picked = document.getElementById("assignee");
  if ((name === "dispatch" || name === "grab") && picked) return { assignee: picked.value };
  const raw = document.getElementById("param").value.trim();
  if (!need || !raw) return {};
  const [key] = need;
  if (key === "villages" || key === "units") return { [key]: raw.split(/[,，\s]+/).filter(Boolean) };
  if (key === "verified" || key === "fixed") return { [key]: raw === "true" || raw === "是" };
  if (key === "satisfaction") return { [key]: Number(raw) };
  return { [key]: raw };
}

async function move(name) {
  const t = state.ticket;
  const note = document.getElementById("note").value.trim() || null;
  try {
    await postJSON(`/tickets/${t.id}/${name}`, { actor: document.getElementById("actor").value.trim() || "值班员",
      ...(state.demo ? { role: state.role } : {}), note, payload: payloadFor(name) });
    await openTicket(t.id);
    loadList();
  } catch (err) {
    document.getElementById("move-result").innerHTML = `<div class="message bad">${esc(zhError(err))}</div>`;
  }
}

// ------------------------------------------------------------------ views: list, unplaced queue, intake
function showView(view) {
  state.view = view;
  document.querySelectorAll("[data-view]").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  body.dataset.view = view;
  if (view === "intake") { renderIntake(); return; }
  state.offset = 0;
  setMapMode(null);
  loadList();
}

// The inset map answers clicks in two modes: picking an intake's place, placing an unplaced ticket.
const pickLayer = L.layerGroup().addTo(map);
function setMapMode(mode) {
  state.mapMode = mode;
  document.getElementById("map").classList.toggle("picking", Boolean(mode));
  const hint = document.getElementById("map-hint");
  hint.hidden = !mode;
  hint.textContent = mode === "intake" ? "点击地图选择事件位置" : mode === "place" ? "点击地图为未定位工单定位" : "";
}

function mapClick(e) {
  if (!state.mapMode) return;
  // on a GCJ-02 base map the clicked point is GCJ-02: sent as such, the server converts it exactly
  const point = { lon: Number(e.latlng.lng.toFixed(7)), lat: Number(e.latlng.lat.toFixed(7)), crs: crs === "gcj02" ? "gcj02" : "EPSG:4326" };
  pickLayer.clearLayers();
  L.circleMarker(e.latlng, { radius: 9, color: "#fff", weight: 2, fillColor: "#39a0ff", fillOpacity: 1 }).addTo(pickLayer);
  if (state.mapMode === "intake") {
    state.intakePoint = point;
    document.getElementById("intake-where").textContent = `已在地图上选点：${point.lon.toFixed(5)}, ${point.lat.toFixed(5)}`;
  } else if (state.mapMode === "place") placeTicket(point);
}

// Placing is the command centre's work (city or district); other roles are told so before anything is sent.
async function placeTicket(point) {
  const t = state.ticket;
  const role = state.demo ? state.role : t.actor_role;
  const box = document.getElementById("move-result");
  if (!["city", "district"].includes(role)) {
    box.innerHTML = `<div class="message bad">定位未定位工单是区、市指挥中心的工作，当前角色（${esc(ROLES[role] || "无")}）不能定位。</div>`;
    pickLayer.clearLayers();
    return;
  }
  try {
    await postJSON(`/tickets/${t.id}/place`, { ...point, actor: document.getElementById("actor").value.trim() || "值班员",
      ...(state.demo ? { role } : {}) });
    pickLayer.clearLayers();
    await openTicket(t.id);
    document.getElementById("move-result").innerHTML = `<div class="message ok">已定位到 ${esc(nameOf(state.ticket.town_code))} · ${esc(nameOf(state.ticket.village_code))} · 网格 ${esc(state.ticket.grid_code)}</div>`;
    loadList();
  } catch (err) { box.innerHTML = `<div class="message bad">${esc(zhError(err))}</div>`; }
}

// 受理登记: what a hotline operator types while the caller is on the line.
function renderIntake() {
  state.ticket = null;
  location.hash = "";
  pointLayer.clearLayers(); gridLayer.clearLayers(); pickLayer.clearLayers();
  state.intakePoint = null;
  const groups = {};
  for (const c of state.categories) (groups[c.major_code] ||= { name: c.major_name, items: [] }).items.push(c);
  const catOptions = Object.values(groups).map((g) => `<optgroup label="${esc(g.name)}">${g.items
    .map((c) => `<option value="${esc(c.code)}">${esc(c.name)}</option>`).join("")}</optgroup>`).join("");
  document.getElementById("detail").innerHTML = `<h2>受理登记 <small class="muted">热线来电登记</small></h2>
    <form id="intake">
      <div class="form-row"><label for="in-channel">来源渠道</label><select id="in-channel" name="channel">${["hotline", "wechat", "app", "patrol"]
        .map((c) => `<option value="${c}">${CHANNELS[c]}</option>`).join("")}</select></div>
      <div class="form-row"><label for="in-category">事件类别</label><select id="in-category" name="category"><option value="">请选择（按大类分组）</option>${catOptions}</select></div>
      <div class="muted" id="in-condition"></div>
      <div class="form-row"><label for="in-severity">紧急程度</label><select id="in-severity" name="severity">${Object.entries(SEVERITIES)
        .map(([k, v]) => `<option value="${k}">${v}</option>`).join("")}</select></div>
      <div class="form-row"><label for="in-description">事件描述</label><textarea id="in-description" name="description" rows="3" maxlength="4000" placeholder="来电人反映的情况"></textarea></div>
      <div class="form-row"><label for="in-address">地址</label><input id="in-address" name="address" type="text" maxlength="500" placeholder="标准地址，自动匹配网格；或在地图上点选"></div>
      <div class="muted" id="intake-where">未在地图上选点</div>
      <div class="form-row"><label for="in-name">来电人</label><input id="in-name" name="reporter_name" type="text" maxlength="50"></div>
      <div class="form-row"><label for="in-phone">联系电话</label><input id="in-phone" name="reporter_phone" type="tel" maxlength="30"></div>
      <div class="moves"><button type="submit" id="in-submit">登记受理</button><button type="button" id="in-clear">清空</button></div>
      <div id="intake-result"></div>
    </form>`;
  setMapMode("intake");
  const form = document.getElementById("intake");
  document.getElementById("in-category").addEventListener("change", (e) => {
    const c = state.categories.find((x) => x.code === e.target.value);
    document.getElementById("in-condition").textContent = c ? `立案条件：${c.acceptance_condition}；主管：${nameOf(c.department)}` : "";
  });
  document.getElementById("in-clear").addEventListener("click", () => renderIntake());
  form.addEventListener("submit", (e) => { e.preventDefault(); submitIntake(); });
  form.addEventListener("input", () => { document.getElementById("intake-result").innerHTML = ""; });
}

async function submitIntake() {
  const box = document.getElementById("intake-result");
  const val = (id) => document.getElementById(id).value.trim();
  const missing = [];
  if (!val("in-category")) missing.push("事件类别");
  if (!val("in-description")) missing.push("事件描述");
  if (!val("in-address") && !state.intakePoint) missing.push("地址或地图选点");
  if (val("in-phone") && !/^[0-9+\-\s]{5,30}$/.test(val("in-phone"))) missing.push("正确的联系电话");
  if (missing.length) { box.innerHTML = `<div class="message bad">请填写：${esc(missing.join("、"))}</div>`; return; }
  const report = { channel: val("in-channel"), category: val("in-category"), severity: val("in-severity"),
    description: val("in-description"), address: val("in-address") || null,
    reporter_name: val("in-name") || null, reporter_phone: val("in-phone") || null,
    actor: document.getElementById("actor") ? document.getElementById("actor").value : "值班员",
    ...(state.intakePoint || {}) };
  document.getElementById("in-submit").disabled = true;
  try {
    const t = await postJSON("/tickets", report);
    pickLayer.clearLayers();
    state.view = "all";
    document.querySelectorAll("[data-view]").forEach((b) => b.classList.toggle("on", b.dataset.view === "all"));
    await openTicket(t.id);
    const where = t.unplaced ? "地址未能匹配到网格，已进入“未定位”队列，请在地图上定位" : `属地 ${nameOf(t.town_code)} · ${nameOf(t.village_code)}`;
    document.getElementById("move-result").innerHTML = `<div class="message ${t.unplaced ? "bad" : "ok"}">已受理，工单 #${t.id}；${esc(where)}</div>`;
    loadList();
  } catch (err) {
    box.innerHTML = `<div class="message bad">${esc(zhError(err))}</div>`;
    document.getElementById("in-submit").disabled = false;
  }
}

async function start() {
  const select = document.querySelector("[name=state]");
  for (const [k, v] of Object.entries(STATE_NAMES)) select.add(new Option(v, k));
  const [towns, villages, depts, cats] = await Promise.all([getJSON("/areas?level=town"),
    getJSON("/areas?level=village").catch(() => ({ features: [] })), getJSON("/tickets/departments"), getJSON("/tickets/categories")]);
  for (const f of towns.features) {
    state.names[f.properties.code] = state.towns[f.properties.code] = f.properties.name;
    document.querySelector("[name=town]").add(new Option(f.properties.name, f.properties.code));
  }
  for (const f of villages.features) state.names[f.properties.code] = f.properties.name;
  for (const d of depts) { state.depts[d.code] = d.name; state.deptKinds[d.code] = d.kind; }
  state.categories = cats;
  const deptSelect = document.querySelector("[name=department]");
  for (const d of depts) deptSelect.add(new Option(d.name, d.code));
  L.geoJSON(shiftGeoJSON(towns, crs), { style: { color: "#ffc94d", weight: 1.5, fill: false }, interactive: false }).addTo(map);
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; loadList(); });
  document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadList(); });
  document.getElementById("next").addEventListener("click", () => { state.offset += PAGE; loadList(); });
  document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => showView(b.dataset.view)));
  map.on("click", mapClick);
  // the big screen's cards link here: /desk?ticket=ID opens that ticket, /desk?grid=CODE lists that grid's
  const params = new URLSearchParams(location.search);
  const grid = params.get("grid");
  if (grid && /^\d{15}$/.test(grid)) {
    const form = document.getElementById("filters");
    form.insertAdjacentHTML("beforeend", `<input type="hidden" name="grid" value="${grid}">
      <span class="chip" id="grid-chip">网格 ${esc(state.names[grid] || grid)} <a href="/desk" title="清除">×</a></span>`);
  }
  await loadList();
  const id = Number(params.get("ticket") || location.hash.slice(1));
  if (id) await openTicket(id);
  body.dataset.ready = "true";
}
start().catch((err) => { document.getElementById("detail").innerHTML = `<h2>加载失败</h2><p>${esc(err.message)}</p>`; });
