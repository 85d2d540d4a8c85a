// The ticket desk: filtered list, detail with the timeline, the allowed moves as buttons, a map inset.
import { getJSON, postJSON, esc, timeText, STATE_NAMES, CARD_NAMES, CARD_COLOURS } from "/static/common.js";
import { shifter, shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const shift = shifter(crs);
const PAGE = 20;
const ROLES = { district: "区指挥中心", town: "镇街", village: "村社区", department: "职能部门", grid_worker: "网格员", city: "市级" };
// 数字城管 terms (GB/T 30428 series; the flow itself is GB/T 30428.8): 核实 is the check of a report
// before it is filed and dispatched (派遣); 核查 is the on-site check of the result after 处置/办结.
const MOVE_NAMES = { receive: "受理", create: "受理", check: "核实", reject: "不予立案", grab: "抢单", dispatch: "派遣", split: "分单", join: "联单", return: "返单",
  sign: "签收", start: "开始处置", complete: "办结", verify_fix: "核查", review_pass: "审核通过", review_fail: "审核退回",
  revisit: "回访", close: "结案", sign_off: "销号", extend: "延期", card: "督办", place: "定位", attach: "上传照片" };
// What each move needs in its payload, read from the parameter box (lists: comma separated).
const NEEDS = { grab: ["assignee", "镇街编码"], dispatch: ["assignee", "承办单位（镇街编码或部门）"], split: ["villages", "村社区编码，逗号分隔"],
  join: ["units", "联办部门，逗号分隔"], revisit: ["satisfaction", "满意度 1-5"], extend: ["until", "延期至（ISO 时间）"],
  check: ["verified", "核实属实 true/false"], verify_fix: ["fixed", "核查已解决 true/false"] };
const CLOCKS = { dispatch: "派遣时限", sign: "签收时限", complete: "办结时限" };
const state = { offset: 0, ticket: null, role: "district", names: {}, demo: Boolean(document.getElementById("demo-banner")) };

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
const CARD_RANK = { red: 0, yellow: 1, ok: 2 };

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
  // most urgent first on the page: red, yellow, then the nearest (or longest-passed) deadline
  const items = res.items.slice().sort((a, b) => (CARD_RANK[a.card] - CARD_RANK[b.card])
    || ((due(a) ? new Date(due(a)) : Infinity) - (due(b) ? new Date(due(b)) : Infinity)));
  tbody.innerHTML = items.map((t) => `<tr data-id="${t.id}"><td>#${t.id}</td><td>${esc(t.category_name)}</td>
    <td>${esc(STATE_NAMES[t.state] || t.state)}</td><td class="card-${t.card}">${esc(CARD_NAMES[t.card])}</td>
    <td>${esc(state.names[t.town_code] || t.town_code)}</td><td>${timeText(t.created_at)}</td>
    <td class="due">${due(t) ? timeText(due(t)) : "—"}</td><td class="overdue">${esc(overdueText(due(t)) || "—")}</td></tr>`).join("")
    || `<tr><td colspan="8" class="muted">没有符合条件的工单</td></tr>`;
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
    L.circleMarker(shift([t.lat, t.lon]), { radius: 8, color: "#fff", weight: 2, fillColor: CARD_COLOURS[t.card] || CARD_COLOURS.ok, fillOpacity: 1 }).addTo(pointLayer);
    map.setView(shift([t.lat, t.lon]), 15);
  }
  if (t.grid_code) getJSON("/grids/" + t.grid_code).then((g) => gridLayer.addData(shiftGeoJSON(g, crs)));
}

// System actors are machine names ("system:sla", "system:camera"); say who they are in Chinese.
const SYSTEM_ACTORS = { sla: "时限督办", camera: "视频告警", sensor: "传感器告警", intake: "自动受理", dedupe: "重复件合并", api: "接口" };
function actorText(actor) {
  const m = /^(?:system|onemap)(?::(.*))?$/.exec(actor || "");
  return m ? "系统" + (m[1] ? "·" + (SYSTEM_ACTORS[m[1]] || m[1]) : "") : actor;
}

function renderDetail(t) {
  // signed in: the server knows the caller's workflow role (contract 1) and says which moves it has
  const moves = state.demo ? ((t.allowed && t.allowed[state.role]) || [])
    : (t.my_moves || (t.actor_role && t.allowed && t.allowed[t.actor_role]) || []);
  const timeline = t.timeline.map((e) => `<li><time>${timeText(e.at)}</time><b>${esc(MOVE_NAMES[e.move] || e.move)}</b>
    ${esc(e.role === "system" ? "系统" : ROLES[e.role] || e.role)} ${esc(actorText(e.actor))} → ${esc(STATE_NAMES[e.to_state] || e.to_state)}${e.note ? "<br><span class='muted'>" + esc(e.note) + "</span>" : ""}</li>`).join("");
  document.getElementById("detail").innerHTML = `<h2>工单 #${t.id} <small>${esc(t.category_major)} / ${esc(t.category_name)}</small></h2>
    <dl class="facts"><dt>状态</dt><dd>${esc(STATE_NAMES[t.state] || t.state)}</dd><dt>督办</dt><dd class="card-${t.card}">${esc(CARD_NAMES[t.card])}${t.live_card !== t.card ? ` <span class="muted">（按当前时间将为${esc(CARD_NAMES[t.live_card])}）</span>` : ""}</dd>
    <dt>属地</dt><dd>${esc(state.names[t.town_code] || t.town_code)} · 网格 ${esc(t.grid_code)}</dd><dt>地址</dt><dd>${esc(t.address)}</dd>
    <dt>承办</dt><dd>${esc(state.names[t.assignee] || t.assignee || t.department)}</dd><dt>时限</dt><dd>${t.running_due ? `${esc(CLOCKS[t.running_clock] || "")} ${timeText(t.running_due)}${overdueText(t.running_due) ? ` <b class="card-red">已超时 ${esc(overdueText(t.running_due))}</b>` : ""}` : "—"}</dd>
    <dt>描述</dt><dd>${esc(t.description)}</dd></dl>
    <h3>办理流程</h3><ol class="timeline" data-events="${t.timeline.length}">${timeline}</ol>
    <h3>可执行操作 ${state.demo ? `<label class="muted">演示角色 <select id="role">${Object.entries(ROLES).map(([k, v]) => `<option value="${k}" ${k === state.role ? "selected" : ""}>${v}</option>`).join("")}</select></label>`
      : `<span class="muted">${esc(ROLES[t.actor_role] || "")}</span>`}</h3>
    <div class="form-row"><label>经办人</label><input id="actor" type="text" value="值班员"></div>
    ${moves.some((m) => m === "dispatch" || m === "grab") ? `<div class="form-row"><label for="assignee">派遣至</label><select id="assignee">${Object.entries(state.names)
      .map(([code, name]) => `<option value="${code}" ${code === t.town_code ? "selected" : ""}>${esc(name)}</option>`).join("")}</select></div>
      <div id="nearest" class="muted">正在查找附近的网格员…</div>` : ""}
    <div class="form-row"><label>参数</label><input id="param" type="text" placeholder="分单填村社区编码；联单填部门"></div>
    <div class="form-row"><label>备注</label><input id="note" type="text"></div>
    <div class="moves">${moves.map((m) => `<button data-move="${m}" title="${esc((NEEDS[m] || [])[1] || "")}">${esc(MOVE_NAMES[m] || m)}</button>`).join("") || "<span class='muted'>此角色当前无可执行操作</span>"}</div>
    <div id="move-result"></div>`;
  const role = document.getElementById("role");
  if (role) role.addEventListener("change", (e) => { state.role = e.target.value; renderDetail(state.ticket); });
  document.querySelectorAll("[data-move]").forEach((b) => b.addEventListener("click", () => move(b.dataset.move)));
  if (document.getElementById("nearest")) nearest(t);
}

async function nearest(t) {
  const box = document.getElementById("nearest");
  try {
    const rows = await getJSON(`/tickets/${t.id}/nearest-workers?k=5`);
    box.innerHTML = rows.length ? "附近在岗网格员：" + rows.map((w) => `<a href="#" data-worker="${esc(w.worker_id)}" data-grid="${esc(w.grid_code)}">${esc(w.name)}
      （${(w.distance_m / 1000).toFixed(1)} km）</a>`).join("、") : "附近没有在岗网格员";
    box.querySelectorAll("[data-worker]").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault();
      const town = (a.dataset.grid || "").slice(0, 9) + "000";
      if (state.names[town]) document.getElementById("assignee").value = town;
      document.getElementById("note").value = `请网格员 ${a.textContent.trim()} 就近处置`;
    }));
  } catch (err) { box.textContent = "附近网格员：" + (err.status === 404 ? "无" : esc(err.message)); }
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
