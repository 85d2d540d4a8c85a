// The planners' grid editor: draw, reshape, split by a line, merge; server validation drawn before saving.
import { MVTLayer } from "/static/mvt.js";
import { getJSON, postJSON, esc, timeText } from "/static/common.js";
import { shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const sendCrs = crs === "gcj02" ? "gcj02" : "EPSG:4326"; // drawn coordinates are in the base map's CRS
const map = L.map("map", { attributionControl: false, zoomSnap: 0.25, maxZoom: 19 });
if (body.dataset.tileUrl) L.tileLayer(body.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
map.pm.setLang("zh");
map.pm.setGlobalOptions({ snappable: true, snapDistance: 12, allowSelfIntersection: false });

const state = { selected: new Map(), op: null, drawn: null, editing: [] };
const selectedLayer = L.geoJSON(null, { style: { color: "#ffd166", weight: 3, fillColor: "#ffd166", fillOpacity: 0.18 }, pmIgnore: true }).addTo(map);
const problemLayer = L.geoJSON(null, { pmIgnore: true, style: (f) => ({ color: f.properties.severity === "warning" ? "#ffd166" : "#ff4d5e",
  weight: 2, fillColor: "#ff4d5e", fillOpacity: 0.55, dashArray: "4 3" }),
  pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 8, color: "#ff4d5e" }) }).addTo(map);
const previewLayer = L.geoJSON(null, { pmIgnore: true, interactive: false,
  style: (f) => ({ color: ["#3ddc97", "#ff9f1c", "#c77dff", "#4cc9f0"][(f.properties.index || 0) % 4], weight: 3, fillOpacity: 0.35 }) }).addTo(map);
const historyLayer = L.geoJSON(null, { pmIgnore: true, interactive: false,
  style: (f) => ({ color: f.properties.valid_to ? "#9aa7b4" : "#3ddc97", weight: 2, dashArray: f.properties.valid_to ? "6 4" : null, fill: false }) }).addTo(map);

const tiles = new MVTLayer("all", { crs, order: ["grids", "villages", "towns"], clickable: ["grids"], style: (p, z, name) => {
  if (name === "grids") return { fill: "rgba(36,110,180,0.18)", stroke: "rgba(120,190,255,0.8)", width: z >= 14 ? 1.2 : 0.6 };
  if (name === "villages") return z >= 11 ? { stroke: "rgba(150,210,255,0.9)", width: 1.6, dash: [5, 4] } : null;
  if (name === "towns") return { stroke: "#ffc94d", width: 2.5 };
  return null;
} });
tiles.hidden.add("tickets");
tiles.addTo(map);

// ------------------------------------------------------------------ selection
async function select(code, add) {
  if (!add) state.selected.clear();
  if (state.selected.has(code) && add) state.selected.delete(code);
  else state.selected.set(code, shiftGeoJSON(await getJSON("/grids/" + code), crs));
  selectedLayer.clearLayers();
  for (const f of state.selected.values()) selectedLayer.addData(f);
  const names = [...state.selected.values()].map((f) => `${f.properties.name}（${f.properties.code}）`);
  document.getElementById("selection").innerHTML = names.length ? "已选：" + names.map(esc).join("、") : "未选中网格";
  body.dataset.selected = [...state.selected.keys()].join(",");
  if (state.selected.size === 1) loadHistory(code);
}

map.on("click", (e) => {
  if (state.op && state.op !== "merge") return; // drawing or editing
  const hit = tiles.hit(e.latlng);
  if (hit) select(hit.props.code, e.originalEvent.shiftKey || state.op === "merge");
});

async function loadHistory(code) {
  const versions = await getJSON("/grids/" + code + "/history");
  historyLayer.clearLayers().addData(shiftGeoJSON(versions, crs));
  document.getElementById("history").innerHTML = versions.features.slice().reverse().map((f) => {
    const p = f.properties;
    return `<li class="${p.valid_to ? "old" : "current"}"><b>${timeText(p.valid_from)}</b> ${p.valid_to ? "至 " + timeText(p.valid_to) : "（现行）"}<br>
      ${esc(p.who)}：${esc(p.why)} <span class="muted">#${p.edit_id}</span></li>`;
  }).join("");
  document.getElementById("history").dataset.versions = versions.features.length;
}

// ------------------------------------------------------------------ tools
function reset() {
  map.pm.disableDraw();
  for (const l of state.editing) { l.pm.disable(); map.removeLayer(l); }
  state.editing = [];
  if (state.drawn) map.removeLayer(state.drawn);
  state.drawn = null; state.op = null;
  problemLayer.clearLayers(); previewLayer.clearLayers();
  document.getElementById("problems").innerHTML = "";
  document.querySelectorAll(".tools button").forEach((b) => b.classList.remove("on"));
  setReady(false);
}

function setReady(on) {
  document.getElementById("validate").disabled = !on;
  document.getElementById("save").disabled = !on;
}

function message(kind, html) {
  document.getElementById("result").innerHTML = `<div class="message ${kind}">${html}</div>`;
}

function startTool(tool) {
  reset();
  state.op = tool;
  document.querySelector(`[data-tool=${tool}]`).classList.add("on");
  if (tool === "add") { map.pm.enableDraw("Polygon", { snappable: true }); message("ok", "在地图上依次点击画出网格，点击第一个点闭合。"); }
  if (tool === "split") {
    if (state.selected.size !== 1) return message("bad", "先选中一个要拆分的网格");
    map.pm.enableDraw("Line", { snappable: false }); message("ok", "画一条穿过网格的线，再次点击最后一个点结束。");
  }
  if (tool === "reshape") {
    if (!state.selected.size) return message("bad", "先选中要修整的网格（相邻网格一起选中，共用边界一起移动）");
    for (const f of state.selected.values()) {
      const layer = L.geoJSON(f, { style: { color: "#ff9f1c", weight: 2, fillOpacity: 0.1 } }).getLayers()[0];
      layer.feature = f; layer.addTo(map); layer.pm.enable({ snappable: true });
      state.editing.push(layer);
    }
    selectedLayer.clearLayers(); setReady(true); message("ok", "拖动顶点修整边界，然后校验、保存。");
  }
  if (tool === "merge") {
    if (state.selected.size < 2) return message("bad", "先按住 Shift 选中两个以上相邻网格");
    setReady(true); message("ok", `合并 ${state.selected.size} 个网格为一个新编码网格。`);
  }
}

map.on("pm:create", (e) => {
  state.drawn = e.layer;
  e.layer.options.pmIgnore = true;
  setReady(true);
  message("ok", state.op === "split" ? "拆分线已画好：正在预览拆分结果…" : "网格已画好，可以校验或保存。");
  if (state.op === "split") send(true);
});

// ------------------------------------------------------------------ requests
const who = () => document.getElementById("who").value.trim();
const why = () => document.getElementById("why").value.trim();

function request(dryRun) {
  const base = { who: who() || "（未填写）", why: why() || "（未填写）", dry_run: dryRun };
  if (state.op === "add") {
    const fc = { type: "FeatureCollection", features: [state.drawn.toGeoJSON(false)], crs: sendCrs };
    return dryRun ? ["/grids/validate", fc] : ["/grids/edits/add", { ...base, grids: fc }];
  }
  if (state.op === "reshape") {
    // full precision (toGeoJSON() would round to 6 decimals); the server snaps back onto the stored
    // vertices and carries a dragged shared vertex into the neighbour, so validate through the same route
    const features = state.editing.map((l) => ({ ...l.toGeoJSON(false), properties: { code: l.feature.properties.code } }));
    const fc = { type: "FeatureCollection", features, crs: sendCrs };
    return ["/grids/edits/reshape", { ...base, grids: fc }];
  }
  if (state.op === "split") {
    return ["/grids/edits/split", { ...base, code: [...state.selected.keys()][0], line: state.drawn.toGeoJSON(false).geometry, crs: sendCrs }];
  }
  return ["/grids/edits/merge", { ...base, codes: [...state.selected.keys()] }];
}

function showProblems(problems) {
  problemLayer.clearLayers();
  const features = (problems && problems.features) || [];
  problemLayer.addData(shiftGeoJSON(JSON.parse(JSON.stringify({ type: "FeatureCollection", features: features.filter((f) => f.geometry) })), crs));
  const names = { overlap: "重叠", gap: "缝隙", outside_parent: "超出村界", invalid: "图形无效", sliver: "细碎面", bad_code: "编码错误",
    duplicate_code: "编码重复", missing_parent: "无上级", empty: "空图形", wrong_type: "类型错误" };
  document.getElementById("problems").innerHTML = features.map((f) =>
    `<li class="${f.properties.severity}"><b>${esc(names[f.properties.kind] || f.properties.kind)}</b> ${f.properties.area_m2 != null ? f.properties.area_m2.toFixed(1) + " m² · " : ""}${esc(f.properties.message)}</li>`).join("");
  document.getElementById("problems").dataset.count = features.filter((f) => f.properties.severity !== "warning").length;
  if (problemLayer.getLayers().length) map.fitBounds(problemLayer.getBounds().pad(0.5), { maxZoom: map.getZoom() });
}

const ASSET_NAMES = { sensors: "监测点", cameras: "摄像头", workers: "网格员责任网格", users: "网格员账号", successors: "继任网格" };

function movedList(followed) {
  const items = [];
  for (const [kind, rows] of Object.entries(followed || {})) {
    if (!Array.isArray(rows) || !rows.length) continue;
    const lines = rows.slice(0, 20).map((r) => r.id !== undefined ? `${esc(r.id)}：${esc(r.old_grid)} → ${esc(r.new_grid)}`
      : r.worker_id !== undefined ? `${esc(r.worker_id)}：${esc([].concat(r.old).join("、"))} → ${esc([].concat(r.new).join("、"))}` : esc(JSON.stringify(r)));
    items.push(`<li><b>${esc(ASSET_NAMES[kind] || kind)} ${rows.length} 个</b><br>${lines.join("<br>")}</li>`);
  }
  return items.length ? `<ul class="moved">${items.join("")}</ul>` : "<p class='muted'>没有监测点、摄像头或网格员需要随之调整。</p>";
}

// Server messages are English; the kinds the editor meets most get a Chinese line first.
function chinese(err) {
  const text = err.message || "";
  if (err.status === 422 && err.body && err.body.report) return `拓扑校验未通过（${err.body.report.errors} 处问题，已在地图上标出）`;
  if (err.status === 409) return "无法撤销：之后的编辑已改动这些网格" + (text ? `（${esc(text)}）` : "");
  if (err.status === 404) return "找不到该网格或编辑记录";
  if (err.status === 403) return "没有编辑此区域网格的权限";
  if (/does not cut/.test(text)) return "拆分线没有把网格切成两块：请画一条完整穿过网格的线";
  if (/do not touch/.test(text)) return "所选网格互不相邻，不能合并";
  if (/different villages/.test(text)) return "不同村/社区的网格不能合并";
  if (/only added grids/.test(text)) return "该次编辑只是新增网格，没有可恢复的旧网格";
  return "请求失败" + (text ? `：${esc(text)}` : "");
}

function busy(on, label) {
  for (const id of ["validate", "save", "undo"]) document.getElementById(id).disabled = on || (id !== "undo" && !state.op);
  document.getElementById("progress").hidden = !on;
  document.getElementById("progress-label").textContent = label || "";
  body.dataset.busy = on ? "true" : "false";
}

function previewSplit(res) {
  previewLayer.clearLayers();
  if (!res || !res.pieces) return;
  previewLayer.addData(shiftGeoJSON(JSON.parse(JSON.stringify(res.pieces)), crs));
}

async function send(dryRun) {
  const [url, data] = request(dryRun);
  if (!dryRun && (!who() || !why())) return message("bad", "保存前请填写修改人和原因（记入版本历史）");
  busy(true, dryRun ? "正在校验…" : "正在保存并迁移关联数据…");
  try {
    const res = await postJSON(url, data);
    body.dataset.lastStatus = 200;
    const ok = res.ok !== undefined ? res.ok : true;
    showProblems(res.problems);
    if (dryRun) {
      previewSplit(res);
      const also = res.neighbours && res.neighbours.length ? `；共用顶点的相邻网格 ${res.neighbours.map(esc).join("、")} 将一起调整` : "";
      const pieces = state.op === "split" && res.opened ? `；将拆为 ${res.opened.length} 块：${res.opened.map(esc).join("、")}` : "";
      return message(ok ? "ok" : "bad", ok ? `校验通过：无重叠、无缝隙${pieces}${also}。` : `校验未通过：${res.report.errors} 处问题已在地图上标出。`);
    }
    state.lastEdit = res.edit_id;
    const also = res.neighbours && res.neighbours.length ? `；相邻网格 ${res.neighbours.map(esc).join("、")} 随共用顶点一起调整` : "";
    message("ok", `已保存为新版本 #${res.edit_id}：新增 ${res.opened.map(esc).join("、")}${res.closed.length ? "；停用 " + res.closed.map(esc).join("、") : ""}${also}
      <h3>随之迁移</h3>${movedList(res.followed)}`);
    const opened = res.opened[0];
    const keep = document.getElementById("result").innerHTML;
    reset(); tiles.refresh();
    document.getElementById("result").innerHTML = keep;
    if (opened) select(opened, false);
  } catch (err) {
    body.dataset.lastStatus = err.status || 0;
    if (err.body && err.body.problems && err.body.problems.type === "FeatureCollection") showProblems(err.body.problems);
    message("bad", (dryRun ? "校验未通过：" : "保存被拒绝：") + chinese(err));
  } finally {
    busy(false);
    setReady(Boolean(state.op) && state.op !== "add" || Boolean(state.drawn));
  }
}

async function undo() {
  const last = state.lastEdit || ((await getJSON("/grids/edits/recent?limit=1"))[0] || {}).id;
  if (!last) return message("bad", "还没有可撤销的编辑");
  if (!who()) return message("bad", "撤销前请填写修改人（记入版本历史）");
  busy(true, `正在撤销编辑 #${last}…`);
  try {
    const res = await postJSON(`/grids/edits/${last}/revert`, { who: who(), why: why() || "撤销上次编辑" });
    body.dataset.lastStatus = 200;
    state.lastEdit = null;
    message("ok", `已撤销编辑 #${last}，保存为新版本 #${res.edit_id}：恢复 ${res.opened.map(esc).join("、")}；停用 ${res.closed.map(esc).join("、")}
      <h3>随之迁移</h3>${movedList(res.followed)}`);
    const keep = document.getElementById("result").innerHTML;
    reset(); tiles.refresh();
    document.getElementById("result").innerHTML = keep;
    if (res.opened[0]) select(res.opened[0], false);
  } catch (err) {
    body.dataset.lastStatus = err.status || 0;
    message("bad", "撤销失败：" + chinese(err));
  } finally { busy(false); }
}

// ------------------------------------------------------------------ search and labels
async function search(q) {
  const list = document.getElementById("search-results");
  if (!q.trim()) { list.innerHTML = ""; return; }
  const rows = await getJSON("/grids/edits/find?" + new URLSearchParams({ q: q.trim(), limit: 12 }));
  list.innerHTML = rows.map((r) => `<li data-code="${esc(r.code)}"><b>${esc(r.name)}</b> <span class="muted">${esc(r.code)} · ${esc(r.town_name)} ${esc(r.village_name)}</span></li>`).join("")
    || "<li class='muted'>没有找到匹配的网格</li>";
  list.dataset.count = rows.length;
  list.querySelectorAll("li[data-code]").forEach((li) => li.addEventListener("click", async () => {
    await select(li.dataset.code, false);
    map.fitBounds(selectedLayer.getBounds(), { padding: [60, 60] });
  }));
}

const labelLayer = L.layerGroup().addTo(map);
let labelTimer = null;
async function drawLabels() {
  labelLayer.clearLayers();
  if (map.getZoom() < 12.5) return;
  const b = map.getBounds();
  const centre = map.getCenter();
  const towns = state.selected.size ? null : await getJSON("/reverse?" + new URLSearchParams({ lon: centre.lng, lat: centre.lat, crs: crs === "gcj02" ? "gcj02" : "EPSG:4326" })).catch(() => null);
  const first = [...state.selected.values()][0];
  const village = first ? first.properties.village_code : towns && (towns.village_code || (towns.grid_code || "").slice(0, 12));
  if (!village) return;
  const fc = await getJSON("/grids?village=" + village).catch(() => null);
  if (!fc) return;
  for (const f of shiftGeoJSON(fc, crs).features) {
    const c = L.geoJSON(f).getBounds().getCenter();
    if (!b.contains(c)) continue;
    L.marker(c, { interactive: false, keyboard: false, icon: L.divIcon({ className: "grid-label", html: `<span>${esc(f.properties.name)}</span>`, iconSize: null }) }).addTo(labelLayer);
  }
  body.dataset.labels = labelLayer.getLayers().length;
}
map.on("moveend", () => { clearTimeout(labelTimer); labelTimer = setTimeout(() => drawLabels().catch(() => {}), 250); });

document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => startTool(b.dataset.tool)));
document.getElementById("tool-clear").addEventListener("click", () => { reset(); document.getElementById("result").innerHTML = ""; });
document.getElementById("validate").addEventListener("click", () => send(true));
document.getElementById("save").addEventListener("click", () => send(false));
document.getElementById("undo").addEventListener("click", () => undo());
let searchTimer = null;
document.getElementById("search").addEventListener("input", (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => search(e.target.value).catch(() => {}), 200); });

// ------------------------------------------------------------------ start: whole city, or #<grid code>
async function start() {
  const info = await getJSON("/tiles");
  const b = info.bounds || [118.5, 36.6, 119.1, 37.2];
  map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  const code = location.hash.slice(1);
  if (/^\d{15}$/.test(code)) {
    await select(code, false);
    map.fitBounds(selectedLayer.getBounds(), { padding: [60, 60] });
  }
  body.dataset.ready = "true";
}
window.onemap = { map, state, tiles, drawLabels };
start().catch((err) => message("bad", esc(err.message)));
