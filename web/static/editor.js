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
  problemLayer.clearLayers();
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
  message("ok", state.op === "split" ? "拆分线已画好，可以校验或保存。" : "网格已画好，可以校验或保存。");
});

// ------------------------------------------------------------------ requests
const who = () => document.getElementById("who").value.trim();
const why = () => document.getElementById("why").value.trim();

function request(dryRun) {
  const base = { who: who() || "（未填写）", why: why() || "（未填写）", dry_run: dryRun };
  if (state.op === "add") {
    const fc = { type: "FeatureCollection", features: [state.drawn.toGeoJSON()], crs: sendCrs };
    return dryRun ? ["/grids/validate", fc] : ["/grids/edits/add", { ...base, grids: fc }];
  }
  if (state.op === "reshape") {
    const features = state.editing.map((l) => ({ ...l.toGeoJSON(), properties: { code: l.feature.properties.code } }));
    const fc = { type: "FeatureCollection", features, crs: sendCrs };
    return dryRun ? ["/grids/validate", fc] : ["/grids/edits/reshape", { ...base, grids: fc }];
  }
  if (state.op === "split") {
    return ["/grids/edits/split", { ...base, code: [...state.selected.keys()][0], line: state.drawn.toGeoJSON().geometry, crs: sendCrs }];
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

async function send(dryRun) {
  const [url, data] = request(dryRun);
  if (!dryRun && (!who() || !why())) return message("bad", "保存前请填写修改人和原因（记入版本历史）");
  try {
    const res = await postJSON(url, data);
    body.dataset.lastStatus = 200;
    const ok = res.ok !== undefined ? res.ok : true;
    showProblems(res.problems);
    if (dryRun) return message(ok ? "ok" : "bad", ok ? "校验通过：无重叠、无缝隙。" : `校验未通过：${res.report.errors} 处问题已在地图上标出。`);
    message("ok", `已保存为新版本 #${res.edit_id}：新增 ${res.opened.map(esc).join("、")}${res.closed.length ? "；停用 " + res.closed.map(esc).join("、") : ""}`);
    const opened = res.opened[0];
    reset(); tiles.refresh();
    if (opened) select(opened, false);
  } catch (err) {
    body.dataset.lastStatus = err.status || 0;
    if (err.body && err.body.problems && err.body.problems.type === "FeatureCollection") showProblems(err.body.problems);
    message("bad", (dryRun ? "校验未通过：" : "保存被拒绝：") + esc(err.message));
  }
}

document.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => startTool(b.dataset.tool)));
document.getElementById("tool-clear").addEventListener("click", () => { reset(); document.getElementById("result").innerHTML = ""; });
document.getElementById("validate").addEventListener("click", () => send(true));
document.getElementById("save").addEventListener("click", () => send(false));

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
window.onemap = { map, state, tiles };
start().catch((err) => message("bad", esc(err.message)));
