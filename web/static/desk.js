// The ticket desk: filtered list, detail with the timeline, the allowed moves as buttons, a map inset.
import { getJSON, postJSON, esc, timeText, STATE_NAMES, CARD_NAMES } from "/static/common.js";
import { shifter, shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const shift = shifter(crs);
const PAGE = 20;
const ROLES = { district: "区指挥中心", town: "镇街", village: "村社区", department: "职能部门", grid_worker: "网格员", city: "市级" };
const MOVE_NAMES = { receive: "受理", check: "核查", reject: "不予立案", grab: "抢单", dispatch: "派单", split: "分单", join: "联单", return: "返单",
  sign: "签收", start: "开始处置", complete: "办结", verify_fix: "核实", review_pass: "审核通过", review_fail: "审核退回",
  revisit: "回访", close: "结案", sign_off: "销号", extend: "延期" };
// What each move needs in its payload, read from the parameter box (lists: comma separated).
const NEEDS = { grab: ["assignee", "镇街编码"], dispatch: ["assignee", "承办单位（镇街编码或部门）"], split: ["villages", "村社区编码，逗号分隔"],
  join: ["units", "联办部门，逗号分隔"], revisit: ["satisfaction", "满意度 1-5"], extend: ["until", "延期至（ISO 时间）"],
  check: ["verified", "属实 true/false"], verify_fix: ["fixed", "已解决 true/false"] };
const state = { offset: 0, ticket: null, role: "district", names: {} };

const map = L.map("map", { attributionControl: false, zoomControl: false }).setView([36.88, 118.8], 10);
if (body.dataset.tileUrl) L.tileLayer(body.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
const gridLayer = L.geoJSON(null, { style: { color: "#ffd166", weight: 2, fillOpacity: 0.12 } }).addTo(map);
const pointLayer = L.layerGroup().addTo(map);

function filters() {
  const data = new FormData(document.getElementById("filters"));
  const out = { limit: PAGE, offset: state.offset };
  for (const [k, v] of data) if (v) out[k] = v;
  return out;
}

async function loadList() {
  const res = await getJSON("/tickets?" + new URLSearchParams(filters()));
  document.getElementById("total").textContent = `共 ${res.total} 件`;
  const tbody = document.querySelector("#tickets tbody");
  tbody.innerHTML = res.items.map((t) => `<tr data-id="${t.id}"><td>#${t.id}</td><td>${esc(t.category_name)}</td>
    <td>${esc(STATE_NAMES[t.state] || t.state)}</td><td class="card-${t.card}">${esc(CARD_NAMES[t.card])}</td>
    <td>${esc(state.names[t.town_code] || t.town_code)}</td><td>${timeText(t.created_at)}</td></tr>`).join("")
    || `<tr><td colspan="6" class="muted">没有符合条件的工单</td></tr>`;
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
  if (t.lat != null) {
    L.circleMarker(shift([t.lat, t.lon]), { radius: 8, color: "#fff", weight: 2, fillColor: t.card === "red" ? "#ff4d5e" : "#ffd166", fillOpacity: 1 }).addTo(pointLayer);
    map.setView(shift([t.lat, t.lon]), 15);
  }
  if (t.grid_code) getJSON("/grids/" + t.grid_code).then((g) => gridLayer.addData(shiftGeoJSON(g, crs)));
}

function renderDetail(t) {
  const moves = (t.allowed && t.allowed[state.role]) || [];
  const timeline = t.timeline.map((e) => `<li><time>${timeText(e.at)}</time><b>${esc(MOVE_NAMES[e.move] || e.move)}</b>
    ${esc(e.role === "system" ? "系统" : ROLES[e.role] || e.role)} ${esc(e.actor)} → ${esc(STATE_NAMES[e.to_state] || e.to_state)}${e.note ? "<br><span class='muted'>" + esc(e.note) + "</span>" : ""}</li>`).join("");
  document.getElementById("detail").innerHTML = `<h2>工单 #${t.id} <small>${esc(t.category_major)} / ${esc(t.category_name)}</small></h2>
    <dl class="facts"><dt>状态</dt><dd>${esc(STATE_NAMES[t.state] || t.state)}</dd><dt>督办</dt><dd class="card-${t.live_card}">${esc(CARD_NAMES[t.live_card])}</dd>
    <dt>属地</dt><dd>${esc(state.names[t.town_code] || t.town_code)} · 网格 ${esc(t.grid_code)}</dd><dt>地址</dt><dd>${esc(t.address)}</dd>
    <dt>承办</dt><dd>${esc(t.assignee || t.department)}</dd><dt>时限</dt><dd>${t.running_due ? timeText(t.running_due) : "—"}</dd>
    <dt>描述</dt><dd>${esc(t.description)}</dd></dl>
    <h3>办理流程</h3><ol class="timeline" data-events="${t.timeline.length}">${timeline}</ol>
    <h3>可执行操作 <select id="role">${Object.entries(ROLES).map(([k, v]) => `<option value="${k}" ${k === state.role ? "selected" : ""}>${v}</option>`).join("")}</select></h3>
    <div class="form-row"><label>经办人</label><input id="actor" type="text" value="值班员"></div>
    <div class="form-row"><label>参数</label><input id="param" type="text" placeholder="派单填承办单位编码；分单填村社区编码"></div>
    <div class="form-row"><label>备注</label><input id="note" type="text"></div>
    <div class="moves">${moves.map((m) => `<button data-move="${m}" title="${esc((NEEDS[m] || [])[1] || "")}">${esc(MOVE_NAMES[m] || m)}</button>`).join("") || "<span class='muted'>此角色当前无可执行操作</span>"}</div>
    <div id="move-result"></div>`;
  document.getElementById("role").addEventListener("change", (e) => { state.role = e.target.value; renderDetail(state.ticket); });
  document.querySelectorAll("[data-move]").forEach((b) => b.addEventListener("click", () => move(b.dataset.move)));
}

function payloadFor(name) {
  const need = NEEDS[name];
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
      role: state.role, note, payload: payloadFor(name) });
    await openTicket(t.id);
    loadList();
  } catch (err) {
    document.getElementById("move-result").innerHTML = `<div class="message bad">${esc(err.message)}</div>`;
  }
}

async function start() {
  const select = document.querySelector("[name=state]");
  for (const [k, v] of Object.entries(STATE_NAMES)) select.add(new Option(v, k));
  const towns = await getJSON("/areas?level=town");
  for (const f of towns.features) {
    state.names[f.properties.code] = f.properties.name;
    document.querySelector("[name=town]").add(new Option(f.properties.name, f.properties.code));
  }
  L.geoJSON(shiftGeoJSON(towns, crs), { style: { color: "#ffc94d", weight: 1.5, fill: false }, interactive: false }).addTo(map);
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; loadList(); });
  document.getElementById("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadList(); });
  document.getElementById("next").addEventListener("click", () => { state.offset += PAGE; loadList(); });
  await loadList();
  const id = Number(location.hash.slice(1));
  if (id) await openTicket(id);
  body.dataset.ready = "true";
}
start().catch((err) => { document.getElementById("detail").innerHTML = `<h2>加载失败</h2><p>${esc(err.message)}</p>`; });
