// The command hall's big-screen map: vector-tile layers, panels and live updates over SSE.
//
// What the first render needs, and nothing more, in parallel: the layer info (/tiles) and the open
// tickets per grid (/tiles/grid-stats, a few dozen kB; both preloaded by the page's <head>), the
// registry tiles ("base": grids, villages, towns, districts; cached for good per registry version, so
// they never carry ticket data), the workers' positions (one or two big tiles) and the sensors and
// cameras (GeoJSON). Grids are coloured and ticket bubbles drawn here from the counts: a live ticket
// event refetches the counts, not the tiles. Every symbol and label shares one overlay canvas, painted
// once when the data is in. Panels (KPIs, ranking, feed) and the live stream start after the map.
import { MVTLayer, Overlay, LabelSet, PointSet } from "/static/mvt.js";
import { getJSON, hasPath, esc, pct, shanghaiDate, timeText, STATE_NAMES, CARD_COLOURS } from "/static/common.js";
import { shifter, shiftGeoJSON } from "/static/gcj02.js";

performance.mark("onemap:modules");
const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const shift = shifter(crs);
const POINT_TILE_ZOOM = 14; // tile zoom (round(map zoom)) from which single tickets come as tiles
const BUBBLE_ZOOM = 13; // per-grid ticket bubbles from this tile zoom; below, the grid colours (and towns' counts) say it
const state = { colour: "open", town: "", tickets: false, liveEvents: 0, counts: {}, stats: new Map(), totals: null,
  live: 0, registry: 0, showTickets: true };

// Started before anything else (the page preloads both URLs, so these reuse those requests).
const infoP = getJSON("/tiles");
const statsP = getJSON("/tiles/grid-stats").catch((err) => { console.warn(err); return null; });

// No tile fade: each fading tile is another composited frame, and tiles here are drawn in one go.
const map = L.map("map", { zoomControl: false, attributionControl: false, minZoom: 6, maxZoom: 18, zoomSnap: 0.25, fadeAnimation: false });
L.control.zoom({ position: "bottomright" }).addTo(map);
L.control.scale({ position: "bottomright", imperial: false }).addTo(map);
if (body.dataset.tileUrl) L.tileLayer(body.dataset.tileUrl, { maxZoom: 19, className: "basemap" }).addTo(map);
[["grids", 310], ["tickets", 330], ["overlay", 345], ["track", 360], ["detections", 370]]
  .forEach(([name, z]) => { map.createPane(name).style.zIndex = z; });

// ------------------------------------------------------------------ styles
const OPEN_STEPS = [[10, "#ff6b35"], [6, "#f4a261"], [3, "#e9c46a"], [1, "#2ec4b6"]];
const CARD_BY_RANK = [CARD_COLOURS.ok, CARD_COLOURS.yellow, CARD_COLOURS.red];
function openOf(code) { return state.stats.get(code) || [0, 0, 0, 0]; } // [open, worst card, red, yellow]
function gridFill(code) {
  const [open, card] = openOf(code);
  if (!open) return null;
  if (state.colour === "card") return [null, CARD_COLOURS.yellow, CARD_COLOURS.red][card] || "#2ec4b6";
  for (const [n, c] of OPEN_STEPS) if (open >= n) return c;
  return null;
}
const styles = {
  grids(p, z) {
    const fill = state.tickets && state.showTickets ? gridFill(p.code) : null;
    const selected = state.town && townOf(p.code) === state.town;
    return { fill: fill ? hexA(fill, z >= 13 ? 0.35 : 0.55) : (selected ? "rgba(90,170,255,0.28)" : "rgba(36,110,180,0.16)"),
      stroke: z >= 12 ? "rgba(120,190,255,0.75)" : "rgba(90,160,230,0.45)", width: z >= 13 ? 1.2 : 0.6 };
  },
  villages(p, z) { return z < 10 ? null : { stroke: "rgba(150,210,255,0.7)", width: z >= 12 ? 1.4 : 0.9, dash: [4, 3] }; },
  towns(p) {
    const selected = state.town && p.code === state.town;
    return { stroke: selected ? "#fff3b0" : "#ffc94d", width: selected ? 4 : 2.4 };
  },
  districts() { return DISTRICT_STYLE; },
  tickets(p) { // single tickets (tiles from POINT_TILE_ZOOM)
    return { radius: 6, fill: CARD_BY_RANK[p.card_rank] || "#4cc9f0", stroke: "#0b1420", width: 1.5 };
  },
};
const DISTRICT_STYLE = { stroke: "#8fdcff", width: 2.4, halo: [[14, "rgba(57,160,255,0.10)"], [7, "rgba(57,160,255,0.25)"]] };
function townOf(code) { return code.slice(0, 9) + "000"; } // 15-digit grid code → its town's 12 digits
function hexA(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

// ------------------------------------------------------------------ layers
// base: the registry (changes only with an edit: cached for good, coloured here from the counts);
// tickets: single open tickets as tiles, close in; bubbles: open tickets per grid between. Bubbles,
// sensors, workers, cameras and labels share one overlay canvas, drawn in that order.
let base = null, ticketTiles = null, workerTiles = null;
const overlay = new Overlay({ pane: "overlay" }).hold().addTo(map); // painted once the first data is in
const bubbles = overlay.add(new PointSet("bubbles"));
const available = [];
const TILE_LAYERS = ["grids", "villages", "towns"];
const TITLES = { grids: "网格", villages: "村/社区", towns: "镇/街道", tickets: "事件工单" };

// Labels in two sets: town names (and their open tickets) over everything; village and grid names
// under the symbols, so a worker or camera standing on a grid's label point stays visible.
function labelsOf(name, min, size, color, bold, text) {
  return (z) => (!base || z < min ? [] : base.labels(name).map((l) => ({ latlng: l.latlng, text: text(l.props), size, color, bold })));
}
const minorLabels = new LabelSet((z) => [
  ...labelsOf("villages", 11.5, z >= 14 ? 16 : 14, "#bfe3ff", false, (p) => p.name)(z),
  ...labelsOf("grids", 13.5, z >= 15 ? 15 : 13, "#e4f2ff", false, (p) => p.name + (openOf(p.code)[0] ? " · " + openOf(p.code)[0] : ""))(z)]);
const labels = new LabelSet((z) => {
  const out = labelsOf("towns", 0, z >= 12 ? 22 : 19, "#ffd166", true, (p) => p.name)(z);
  if (base && state.tickets && state.showTickets && z < BUBBLE_ZOOM - 0.5) { // the open tickets of each town, under its name
    const open = townTotals();
    for (const l of base.labels("towns")) {
      const n = open.get(l.props.code);
      if (!n) continue;
      const pt = map.latLngToContainerPoint(l.latlng).add([0, 21]);
      out.push({ latlng: map.containerPointToLatLng(pt), text: `在办 ${fmt(n)}`, size: 14, color: "#ffe7ad", bold: false });
    }
  }
  return out;
});

function townTotals() {
  const out = new Map();
  for (const [code, [open]] of state.stats) { const t = townOf(code); out.set(t, (out.get(t) || 0) + open); }
  return out;
}

// Requests go out in order of their cost to the server: the workers' tile (live, computed on
// request) first, then the registry tiles (cached), then the small point layers (in start()).
function setupTiles(info) {
  const b = info.bounds;
  const bounds = b ? L.latLngBounds(shift([b[1], b[0]]), shift([b[3], b[2]])).pad(0.05) : null;
  const names = info.layers.map((l) => l.name);
  if (names.includes("workers")) { // tiles of positions, drawn on the overlay with the other symbols
    // big tiles (2048 px, three zooms down): one or two requests for the whole city; 4096 units a tile
    // still place a worker to half a pixel
    workerTiles = new MVTLayer("workers", { pane: "overlay", crs, bounds, dataOnly: true, tileSize: 2048, zoomOffset: -3 });
    workerTiles.loaded = new Promise((ok) => workerTiles.once("load", ok));
    workerTiles.on("tiledata", () => { scheduleWorkers(); scheduleCounts(); });
    workerTiles.addTo(map);
  }
  base = new MVTLayer("base", { pane: "grids", crs, bounds, order: ["grids", "villages", "towns", "districts"], clickable: ["grids"],
    query: () => ({ r: state.registry }), style: (p, z, name) => styles[name] && styles[name](p, z) });
  base.loaded = new Promise((ok) => base.once("load", ok));
  base.on("tiledata", () => { overlay.redraw(); scheduleCounts(); scheduleBubbles(); });
  base.addTo(map);
  state.tickets = names.includes("tickets");
  body.classList.toggle("has-tickets", state.tickets);
  for (const name of TILE_LAYERS) available.push({ name, title: TITLES[name], toggle: (on) => base.setVisible(name, on) });
  if (state.tickets) {
    ticketTiles = new MVTLayer("tickets", { pane: "tickets", crs, bounds, minZoom: POINT_TILE_ZOOM, clickable: ["tickets"],
      style: (p, z, name) => name === "tickets" ? styles.tickets(p) : null }).addTo(map);
    available.push({ name: "tickets", title: TITLES.tickets, toggle: (on) => {
      state.showTickets = bubbles.visible = on;
      if (on) ticketTiles.addTo(map); else map.removeLayer(ticketTiles);
      base.restyle(); buildBubbles();
    } });
  }
  if (workerTiles) available.push({ name: "workers", title: "网格员", toggle: (on) => { workerSet.visible = on; } });
  map.on("zoomend", scheduleBubbles);
}

function applyStats(s) {
  if (!s) return;
  state.stats = new Map(Object.entries(s.grids || {}));
  state.totals = s.totals;
  if (base) base.restyle();
  buildBubbles(); overlay.redraw(); setStrip();
}

let statsTimer = null;
function reloadStats() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(() => getJSON("/tiles/grid-stats?v=" + state.live).then(applyStats).catch((e) => console.warn(e)), 300);
}

// Per-grid bubbles at the grids' label points (radius by count, colour by the worst card).
const bubbleStyles = new Map();
function bubbleStyle(count, card) {
  const k = count + "/" + card;
  if (!bubbleStyles.has(k)) {
    const r = Math.min(22, 7 + 3 * Math.log2(count));
    bubbleStyles.set(k, { r, fill: hexA(CARD_BY_RANK[card] || "#4cc9f0", 0.85), stroke: "rgba(255,255,255,0.9)", width: 1.5,
      text: String(count), textColor: "#07121f", fontSize: r >= 14 ? 13 : 11 });
  }
  return bubbleStyles.get(k);
}
let bubbleTimer = null;
function scheduleBubbles() { clearTimeout(bubbleTimer); bubbleTimer = setTimeout(buildBubbles, 60); }
function buildBubbles() {
  if (!base || !bubbles.visible) return;
  const z = Math.round(map.getZoom());
  const items = [];
  if (z >= BUBBLE_ZOOM && z < POINT_TILE_ZOOM) {
    for (const l of base.labels("grids")) {
      const [open, card, red, yellow] = openOf(l.props.code);
      if (open) items.push({ latlng: l.latlng, style: bubbleStyle(open, card), data: { ...l.props, open, card, red, yellow } });
    }
  }
  bubbles.setItems(items);
}

// Workers come as vector tiles (their last positions, refetched after live moves); sensors and cameras
// (hundreds) as GeoJSON points. All drawn on the overlay canvas: bubbles, workers, sensors, cameras, labels.
const THINGS = [
  { name: "sensors", title: "环境/物联感知", path: "/sensors", style: sensorStyle },
  { name: "cameras", title: "视频监控", path: "/cameras", style: cameraStyle },
];
const WORKERS = { name: "workers", title: "网格员", style: workerStyle };
overlay.add(minorLabels);
const workerSet = overlay.add(new PointSet("workers"));
const things = {}; // name → {layer: PointSet, byId: Map, thing}
const thingSets = Object.fromEntries(THINGS.map((t) => [t.name, overlay.add(new PointSet(t.name))]));
overlay.add(labels); // town names over every symbol

let workersTimer = null;
function scheduleWorkers() { clearTimeout(workersTimer); workersTimer = setTimeout(buildWorkers, 30); }
function buildWorkers() {
  if (!workerTiles) return;
  const z = map.getZoom();
  workerSet.setItems(workerTiles.points("workers", "id").map((w) => ({ latlng: w.latlng, style: workerStyle(w.props, z), data: w.props, thing: WORKERS })));
}
const symbols = new Map();
function symbol(key, make) { if (!symbols.has(key)) symbols.set(key, make()); return symbols.get(key); }
// Workers by zoom: specks over a whole city (2,000 of them must not hide it), dots closer in.
const WORKER_SIZES = [[13, 6, 1.5], [12, 4, 1], [10.5, 3, 0.8], [0, 1.6, 0]];
function workerStyle(p, z) {
  const [, r, width] = WORKER_SIZES.find(([min]) => z >= min);
  const on = p.on_duty !== false;
  return symbol(`w${r}${on}`, () => ({ r, fill: on ? "#f15bb5" : "#8d7d96", stroke: width ? "#1a0716" : null, width }));
}
const ROLE_NAMES = { grid_chief: "网格长", full_time: "专职网格员", specialist: "专业网格员", helper: "网格协管员" };
const SENSOR_COLOURS = { ok: "#b388ff", over: "#ff9f1c", alarm: "#ff4d5e", stale: "#7f8c9a", no_data: "#7f8c9a", offline: "#55606c" };
function sensorStyle(p, z) {
  const s = p.state || "ok";
  return symbol(`s${z >= 13}${s}`, () => ({ r: z >= 13 ? 6 : 4.5, shape: "diamond", fill: SENSOR_COLOURS[s] || "#b388ff",
    stroke: "#0b1420", width: 1.2, halo: s === "alarm" ? [11, "rgba(255,77,94,0.35)"] : null }));
}
function cameraStyle(p, z) {
  const alarm = p.alarm_state === "alarm";
  const off = p.status && !["online", "ok"].includes(p.status);
  return symbol(`c${z >= 13}${alarm}${off}`, () => ({ r: z >= 13 ? 6.5 : 5, shape: "square",
    fill: alarm ? "#ff4d5e" : off ? "#58707f" : "#4cc9f0", stroke: "#061018", width: 1.5,
    halo: alarm ? [13, "rgba(255,77,94,0.4)"] : null }));
}

function fetchThing(thing) {
  return fetch(thing.path).then((res) => {
    if (res.status === 404) return null; // the layer's endpoint is not on this server
    if (!res.ok) throw new Error(thing.path + " → " + res.status);
    return res.json();
  });
}

function addThing(thing, data) {
  if (!data || data.type !== "FeatureCollection") return;
  const layer = thingSets[thing.name];
  const byId = new Map();
  const z = map.getZoom();
  const items = [];
  for (const f of data.features) {
    if (!f.geometry || f.geometry.type !== "Point") continue;
    const [lon, lat] = f.geometry.coordinates;
    const item = { latlng: L.latLng(shift([lat, lon])), style: thing.style(f.properties, z), data: f.properties, thing };
    items.push(item);
    byId.set(f.properties.id ?? f.id, item);
  }
  layer.setItems(items);
  things[thing.name] = { layer, byId, thing };
  available.push({ name: thing.name, title: thing.title, count: items.length, toggle: (on) => { layer.visible = on; overlay.redraw(); } });
}

function restyleThings() {
  const z = map.getZoom();
  for (const { layer, thing } of [...Object.values(things), { layer: workerSet, thing: WORKERS }]) {
    for (const it of layer.items) it.style = thing.style(it.data, z);
  }
  overlay.redraw();
}
map.on("zoomend", restyleThings);

// ------------------------------------------------------------------ switcher, legend, counts
function renderSwitcher() {
  const list = document.getElementById("layer-list");
  list.innerHTML = available.map((a) => `<label data-layer="${a.name}"><input type="checkbox" checked> <i class="sw sw-${a.name}"></i>${a.title}<b class="n" id="n-${a.name}"></b></label>`).join("");
  list.querySelectorAll("label").forEach((el) => el.querySelector("input").addEventListener("change", (e) => {
    available.find((x) => x.name === el.dataset.layer).toggle(e.target.checked);
    overlay.redraw();
  }));
  renderLegend();
  setStrip();
}
document.querySelectorAll("input[name=colour]").forEach((el) => el.addEventListener("change", () => {
  state.colour = el.value; if (base) base.restyle(); renderLegend();
}));

function renderLegend() {
  const el = document.getElementById("legend");
  if (!state.tickets) { el.innerHTML = ""; return; }
  const rows = state.colour === "card"
    ? [[CARD_COLOURS.red, "有红牌督办"], [CARD_COLOURS.yellow, "有黄牌警示"], ["#2ec4b6", "在办，未超时"]]
    : [["#ff6b35", "≥10 件"], ["#f4a261", "6–9 件"], ["#e9c46a", "3–5 件"], ["#2ec4b6", "1–2 件"]];
  el.innerHTML = rows.map(([c, t]) => `<div><i style="background:${c}"></i>${t}</div>`).join("");
}

// Thousands separators without Intl (whose first use loads locale data: tens of ms on a busy screen).
const fmt = (v) => (v === undefined || v === null ? "…" : String(Math.round(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ","));
function setText(id, v) { const el = document.getElementById(id); if (el && v !== undefined) el.textContent = fmt(v); }

// The strip: the registry's counts (from /tiles) and the open tickets the caller sees (from the stats).
function setStrip() {
  const c = state.info ? state.info.counts : {};
  setText("grid-count", c.grids); setText("town-count", c.towns); setText("village-count", c.villages);
  if (state.totals) { setText("open-count", state.totals.open); setText("red-count", state.totals.red); setText("n-tickets", state.totals.open); }
  for (const a of available) if (a.count !== undefined) setText("n-" + a.name, a.count);
  for (const name of [...TILE_LAYERS, "workers"]) setText("n-" + name, state.counts[name]);
}

let countsTimer = null;
function scheduleCounts() { clearTimeout(countsTimer); countsTimer = setTimeout(updateCounts, 120); }

function unique(name) {
  const seen = new Map();
  if (base) for (const l of base.labels(name)) seen.set(l.props.code, l);
  return seen;
}

// What the tiles drew (each feature's label point once): with the whole city in view, every grid,
// village and town must be there — the page's own check that the tiles are complete.
function updateCounts() {
  if (!state.cityBounds || !map.getBounds().contains(state.cityBounds)) return;
  const c = { grids: unique("grids").size, towns: unique("towns").size, villages: unique("villages").size };
  state.counts = c;
  setText("n-grids", c.grids); setText("n-towns", c.towns); setText("n-villages", c.villages);
  body.dataset.grids = c.grids; body.dataset.towns = c.towns; body.dataset.villages = c.villages;
  if (workerTiles) {
    const n = workerTiles.points("workers", "id").length;
    state.counts.workers = n; setText("n-workers", n); body.dataset.workers = n;
  }
  for (const [code, l] of unique("towns")) townPlaces.set(code, { latlng: l.latlng, name: l.props.name });
}

// ------------------------------------------------------------------ clicks and info
const NAMES = { code: "编码", name: "名称", kind: "类型", village_code: "村/社区", town_code: "镇/街道", households: "户数",
  population: "人口", open: "在办工单", red: "红牌", yellow: "黄牌", card: "督办", state: "状态", category: "类别",
  severity: "紧急程度", channel: "来源", grid_code: "网格", count: "工单数", created: "受理时间", role_name: "岗位",
  phone: "电话", on_duty: "在岗", role: "岗位", fix_at: "定位时间", grids: "责任网格", status: "状态", alarm_state: "告警",
  last_frame_at: "最新画面", source_kind: "视频源", calibrated: "已标定", active_alarms: "活动告警",
  kind_name: "类型", reading: "读数", latest_at: "读数时间", pollutant: "污染物", town_name: "镇/街道", village_name: "村/社区",
  frame_age_s: "画面时延" };
const SKIP = new Set(["id", "aggregate", "card_rank", "wedge", "status_note", "heading_deg", "fov_deg", "range_m",
  "sample_fps", "district_code", "match", "calibration_rms_m", "alarm_kind", "alarm_ticket"]);
function value(k, v) {
  if (k === "kind") return v === "dedicated" ? "专属网格" : v === "basic" ? "基础网格" : v;
  if (k === "state") return STATE_NAMES[v] || { ok: "正常", over: "超标", alarm: "告警", stale: "数据滞后", no_data: "无数据", offline: "离线" }[v] || v;
  if (k === "status") return { online: "在线", offline: "离线", unknown: "未接入", error: "故障" }[v] || v;
  if (k === "source_kind") return { video: "视频文件", rtsp: "RTSP 视频流", http: "HTTP 视频流", images: "图片序列" }[v] || v;
  if (k === "frame_age_s") return v < 120 ? `${Math.round(v)} 秒` : `${Math.round(v / 60)} 分钟`;
  if (k === "card") return ["正常", "黄牌", "红牌"][v] ?? v;
  if (k === "created") return when(v);
  if (k === "on_duty" || k === "calibrated") return v ? "是" : "否";
  if (k === "alarm_state") return v === "alarm" ? "告警中" : "正常";
  if (/_at$/.test(k) && (typeof v === "string" || typeof v === "number")) return when(v);
  if (k === "role") return ROLE_NAMES[v] || v;
  return v;
}
// A time from the API (ISO text, or epoch seconds in tiles) as the city's local time; anything else as is.
function when(v) {
  const d = typeof v === "number" ? new Date(v * 1000) : new Date(v);
  return Number.isNaN(d.getTime()) ? v : timeText(d.toISOString());
}
function showInfo(title, props) {
  document.getElementById("info").dataset.code = props.code || "";
  const rows = Object.entries(props).filter(([k, v]) => !SKIP.has(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `<dt>${esc(NAMES[k] || k)}</dt><dd>${esc(value(k, v))}</dd>`).join("");
  document.getElementById("info").innerHTML = `<h2>${esc(title)}</h2><dl>${rows}</dl>`;
}

function pointHit(containerPoint) {
  for (const name of ["cameras", "sensors"]) {
    const t = things[name];
    const it = t && t.layer.hit(map, containerPoint);
    if (it) return it;
  }
  const w = workerSet.hit(map, containerPoint);
  if (w) return w;
  const it = bubbles.hit(map, containerPoint, 2);
  if (it) return { ...it, bubble: true };
  return null;
}

map.on("click", (e) => {
  const it = pointHit(e.containerPoint);
  if (it && it.bubble) {
    map.flyTo(it.latlng, POINT_TILE_ZOOM); showInfo("网格工单汇总 · " + it.data.name, it.data); return;
  }
  if (it) { openThing(it); return; }
  const hit = (ticketTiles && state.showTickets && ticketTiles.hit(e.latlng)) || (base && base.hit(e.latlng));
  if (!hit) return;
  if (hit.layer === "tickets") showTicket(hit.props);
  else showGrid(hit.props.code);
});

// A grid: its name and open tickets at once (from the tiles and the counts), the registry's record after.
async function showGrid(code) {
  const [open, card, red, yellow] = openOf(code);
  const label = base.labels("grids").find((l) => l.props.code === code);
  const counts = state.tickets ? { open, red, yellow } : {};
  showInfo(label ? label.props.name : code, { code, ...counts });
  try {
    const p = (await getJSON("/grids/" + code)).properties;
    if (document.getElementById("info").dataset.code !== code) return; // another click since
    showInfo(p.name, { code, name: p.name, kind: p.kind, town_name: p.town_name, village_name: p.village_name,
      households: p.households, population: p.population, ...counts });
  } catch (err) { console.warn(err); }
}
let hoverFrame = 0;
map.on("mousemove", (e) => {
  cancelAnimationFrame(hoverFrame);
  hoverFrame = requestAnimationFrame(() => { map.getContainer().classList.toggle("over-point", Boolean(pointHit(e.containerPoint))); });
});

function openThing(it) {
  const p = it.data;
  if (it.thing.name === "workers") openWorker(it);
  else if (it.thing.name === "cameras") openCamera(it);
  else { showInfo(`${it.thing.title} · ${p.name || p.id}`, p); L.popup(popupOptions()).setLatLng(it.latlng).setContent(sensorHtml(p)).openOn(map); }
}

function popupOptions(extra = {}) {
  return { className: "onemap-popup", maxWidth: 460, minWidth: 300, autoPanPaddingTopLeft: L.point(360, 170), // clear of the header and the counts bar
    autoPanPaddingBottomRight: L.point(440, 30), ...extra };
}

function sensorHtml(p) {
  return `<h3>${esc(p.name || p.id)}</h3><dl class="facts">${Object.entries(p).filter(([k, v]) => !SKIP.has(k) && v !== null && typeof v !== "object" && k !== "name")
    .slice(0, 10).map(([k, v]) => `<dt>${esc(NAMES[k] || k)}</dt><dd>${esc(value(k, v))}</dd>`).join("")}</dl>`;
}

async function showTicket(props) {
  showInfo("工单 #" + props.id, props);
  try {
    const t = await getJSON("/tickets/" + props.id);
    document.getElementById("info").innerHTML = `<h2>工单 #${t.id} · ${esc(t.category_name)}</h2><dl>
      <dt>状态</dt><dd>${esc(STATE_NAMES[t.state] || t.state)}</dd><dt>督办</dt><dd class="card-${t.card}">${esc({ ok: "正常", yellow: "黄牌", red: "红牌" }[t.card])}</dd>
      <dt>网格</dt><dd>${esc(t.grid_code)}</dd><dt>地址</dt><dd>${esc(t.address)}</dd><dt>受理</dt><dd>${when(t.created_at)}</dd>
      <dt>描述</dt><dd>${esc(t.description)}</dd></dl><a class="button" href="/desk#${t.id}">在受理台打开</a>`;
  } catch (err) { console.warn(err); }
}

// ------------------------------------------------------------------ a worker: today's track and reports
const trackLayer = L.layerGroup().addTo(map);
const TICKET_MARK = { radius: 7, color: "#0b1420", weight: 2, fillOpacity: 1, pane: "track" };

async function openWorker(it) {
  const p = it.data, day = shanghaiDate();
  showInfo(`网格员 · ${p.name}`, p);
  const popup = L.popup(popupOptions()).setLatLng(it.latlng).setContent(`<div class="worker-popup" data-worker="${esc(p.id)}">
    <h3>${esc(p.name)} <small>${esc(ROLE_NAMES[p.role] || p.role_name || "")} · ${esc(p.id)}</small></h3>
    <p class="muted">正在载入今日轨迹…</p></div>`).openOn(map);
  popup.on("remove", () => { trackLayer.clearLayers(); delete body.dataset.track; });
  let fc;
  try { fc = await getJSON(`/workers/${encodeURIComponent(p.id)}/track?` + new URLSearchParams({ date: day })); } catch (err) {
    if (map.hasLayer(popup)) popup.setContent(`<div class="worker-popup"><h3>${esc(p.name)}</h3><p class="muted">${esc(err.message)}</p></div>`);
    return;
  }
  if (!map.hasLayer(popup)) return; // closed while loading
  trackLayer.clearLayers();
  shiftGeoJSON(fc, crs);
  const track = fc.features.find((f) => f.properties.kind === "track");
  const tickets = fc.features.filter((f) => f.properties.kind === "ticket");
  if (track) {
    L.geoJSON(track, { pane: "track", interactive: false, style: { color: "#f15bb5", weight: 10, opacity: 0.25, lineCap: "round", lineJoin: "round" } }).addTo(trackLayer);
    L.geoJSON(track, { pane: "track", interactive: false, style: { color: "#ffd1ec", weight: 3.5, opacity: 1, lineCap: "round", lineJoin: "round" } }).addTo(trackLayer);
  }
  const marks = new Map();
  for (const t of tickets) {
    if (!t.geometry) continue;
    const [lon, lat] = t.geometry.coordinates;
    marks.set(String(t.properties.id), L.circleMarker([lat, lon], { ...TICKET_MARK, fillColor: CARD_COLOURS[t.properties.card] || "#ffd166" })
      .bindTooltip(`#${t.properties.id} ${esc(STATE_NAMES[t.properties.state] || t.properties.state)}`, { className: "onemap-tip" })
      .on("click", () => showTicket(t.properties)).addTo(trackLayer));
  }
  const s = fc.summary || {};
  const rows = tickets.map((t) => { const q = t.properties; return `<li data-ticket="${q.id}"><time>${when(q.created_at)}</time>
    <b>#${q.id}</b> <span class="state">${esc(STATE_NAMES[q.state] || q.state)}</span><span class="desc">${esc(q.description)}</span></li>`; }).join("");
  popup.setContent(`<div class="worker-popup" data-worker="${esc(p.id)}">
    <h3>${esc(p.name)} <small>${esc(ROLE_NAMES[p.role] || p.role_name || "")} · ${esc(p.id)}</small></h3>
    <div class="figures"><div><b>${((s.distance_m || 0) / 1000).toFixed(1)}</b><span>里程 km</span></div>
      <div><b>${s.fixes || 0}</b><span>定位点</span></div><div><b>${pct(s.coverage)}</b><span>网格覆盖</span></div>
      <div><b>${tickets.length}</b><span>今日上报</span></div></div>
    <p class="muted">${s.first_at ? `${when(s.first_at)} – ${when(s.last_at)}` : "今日暂无轨迹"} · 责任网格 ${esc((s.grids || []).length)} 个</p>
    <h4>今日上报的事件</h4>${rows ? `<ol class="reported">${rows}</ol>` : `<p class="muted">今日暂无上报</p>`}</div>`);
  popup.getElement().querySelectorAll("li[data-ticket]").forEach((li) => li.addEventListener("click", () => {
    showTicket(tickets.find((f) => String(f.properties.id) === li.dataset.ticket).properties);
    marks.forEach((m, id) => (id === li.dataset.ticket ? m.openTooltip() : m.closeTooltip())); // where it was reported
  }));
  if (track) map.fitBounds(L.geoJSON(track).getBounds().extend(it.latlng), { paddingTopLeft: [380, 440], paddingBottomRight: [460, 60], maxZoom: 17 });
  body.dataset.track = JSON.stringify({ worker: p.id, fixes: s.fixes || 0, tickets: tickets.length });
}

// ------------------------------------------------------------------ a camera: latest frame and detections
const detectionLayer = L.layerGroup().addTo(map);
const CLASS_COLOURS = { person: "#ff9f1c", car: "#00e5ff", truck: "#7dff6b", bus: "#ffe066", bicycle: "#c77dff", motorcycle: "#ff70a6" };
function classColour(name) {
  if (CLASS_COLOURS[name]) return CLASS_COLOURS[name];
  let h = 0;
  for (const ch of String(name)) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return `hsl(${h}, 90%, 65%)`;
}
const CLASS_NAMES = { person: "行人", car: "车辆", truck: "货车", bus: "公交", bicycle: "自行车", motorcycle: "摩托车" };

function openCamera(it) {
  const p = it.data;
  showInfo(`视频监控 · ${p.name}`, p);
  const el = L.DomUtil.create("div", "camera-popup"); // an element, not text: update() keeps what is filled in
  el.dataset.camera = p.id;
  el.innerHTML = `<h3>${esc(p.name)} <small>${esc(p.id)}</small>${p.alarm_state === "alarm" ? ' <em class="alarm">告警中</em>' : ""}</h3>
    <div class="frame"><p class="muted">正在载入最新画面…</p></div>
    <div class="detections"></div>`;
  const popup = L.popup(popupOptions({ maxWidth: 520, minWidth: 480 })).setLatLng(it.latlng).setContent(el).openOn(map);
  let wedge = null;
  if (p.wedge && p.wedge.type) {
    wedge = L.geoJSON(shiftGeoJSON({ type: "Feature", properties: {}, geometry: p.wedge }, crs), { pane: "track", interactive: false,
      style: { color: "#4cc9f0", weight: 1.5, fillColor: "#4cc9f0", fillOpacity: 0.12, dashArray: "4 3" } }).addTo(detectionLayer);
  }
  let url = null, timer = null, closed = false;
  const refresh = async () => {
    await Promise.all([loadFrame(), loadDetections()]);
    if (!closed) timer = setTimeout(refresh, 5000);
  };
  const loadFrame = async () => {
    const box = el.querySelector(".frame");
    let res;
    try { res = await fetch(`/cameras/${encodeURIComponent(p.id)}/frame`, { cache: "no-store" }); } catch (err) { return; }
    if (closed || !box) return;
    if (!res.ok) {
      const why = await res.json().then((b) => b.detail).catch(() => "");
      box.innerHTML = `<div class="no-frame"><b>暂无画面</b><span>${esc(why || "HTTP " + res.status)}</span></div>`;
      box.dataset.state = "none";
      return;
    }
    const blob = await res.blob();
    if (closed) return;
    if (url) URL.revokeObjectURL(url);
    url = URL.createObjectURL(blob);
    const at = res.headers.get("X-Frame-Time");
    let img = box.querySelector("img");
    if (!img) { // the first frame: the popup grows, so fit and pan it again once the image is in
      box.innerHTML = `<img alt="${esc(p.name)} 最新画面"><span class="frame-time"></span>`;
      img = box.querySelector("img");
      img.addEventListener("load", () => { if (!closed) popup.update(); }, { once: true });
    }
    img.src = url; // later frames replace the picture in place
    box.querySelector(".frame-time").textContent = at ? "画面时间 " + when(at) : "";
    box.dataset.state = "image";
  };
  const loadDetections = async () => {
    const since = new Date(Date.now() - 60_000).toISOString();
    let fc;
    try { fc = await getJSON("/detections?" + new URLSearchParams({ camera: p.id, since, limit: 500 })); } catch (err) { console.warn(err); return; }
    if (closed) return;
    shiftGeoJSON(fc, crs);
    detectionLayer.eachLayer((l) => { if (l !== wedge) detectionLayer.removeLayer(l); });
    const byClass = new Map();
    let placed = 0;
    for (const f of fc.features) {
      const q = f.properties;
      byClass.set(q.class_name, (byClass.get(q.class_name) || 0) + 1);
      if (!f.geometry) continue;
      const [lon, lat] = f.geometry.coordinates;
      L.circleMarker([lat, lon], { pane: "detections", radius: 7, color: "#ffffff", weight: 2, fillColor: classColour(q.class_name), fillOpacity: 1 })
        .bindTooltip(`${esc(CLASS_NAMES[q.class_name] || q.class_name)} ${(100 * q.confidence).toFixed(0)}% · ${when(q.at)}`, { className: "onemap-tip" })
        .addTo(detectionLayer);
      placed++;
    }
    el.querySelector(".detections").innerHTML = `<h4>近 1 分钟识别 <b>${fc.features.length}</b> 个目标${placed < fc.features.length ? `（${placed} 个已落图，摄像头未标定的不落图）` : ""}</h4>`
      + (byClass.size ? `<ul class="classes">${[...byClass].map(([c, n]) => `<li><i style="background:${classColour(c)}"></i>${esc(CLASS_NAMES[c] || c)} <b>${n}</b></li>`).join("")}</ul>` : "");
    body.dataset.detections = String(placed);
  };
  popup.on("remove", () => {
    closed = true; clearTimeout(timer);
    detectionLayer.clearLayers();
    if (url) URL.revokeObjectURL(url);
    delete body.dataset.detections;
  });
  refresh();
}

// ------------------------------------------------------------------ panels: KPIs, ranking, feed
function rowsOf(data) { return Array.isArray(data) ? data : data.rows || data.items || data.kpis || data.ranking || []; }

const townPlaces = new Map(); // town code → {latlng, name}: the towns' label points, from the tiles
function fillTownSelect() {
  const select = document.getElementById("area-select");
  if (select.options.length > 1 || !townPlaces.size) return;
  for (const [code, t] of [...townPlaces].sort((a, b) => a[0].localeCompare(b[0]))) select.add(new Option(t.name, code));
}

function flyToTown(code) {
  state.town = code;
  const t = townPlaces.get(code);
  if (t) map.flyTo(t.latlng, 11.5);
  else if (state.cityBounds) map.flyToBounds(state.cityBounds);
  base.restyle(); overlay.redraw();
}

// KPIs of the selected town, or of the whole city summed over towns (then only the rates whose
// numerator and denominator are counts in the rows: closure and satisfaction; the others need the
// per-ticket deadlines the server holds, so they show for a single town only).
function summed(rows) {
  const total = {};
  for (const k of ["received", "accepted", "closed", "signed_off", "revisits", "satisfied"]) total[k] = rows.reduce((s, r) => s + (r[k] || 0), 0);
  const one = rows.length === 1 ? rows[0] : {};
  total.closure_rate = total.accepted ? (total.closed + total.signed_off) / total.accepted : null;
  total.satisfaction_rate = total.revisits ? total.satisfied / total.revisits : null;
  total.timely_sign_rate = one.timely_sign_rate ?? null;
  total.on_time_completion_rate = one.on_time_completion_rate ?? null;
  return total;
}

async function loadKpis() {
  if (!(await hasPath("/kpis"))) return;
  document.getElementById("kpi-panel").hidden = false;
  const today = shanghaiDate(), month = today.slice(0, 7);
  const start = new Date(today + "T00:00:00+08:00");
  const query = (extra) => "/kpis?" + new URLSearchParams({ level: "town", ...(state.town ? { code: state.town } : {}), ...extra });
  try {
    const [day, mon] = await Promise.all([
      getJSON(query({ start: start.toISOString(), end: new Date(start.getTime() + 864e5).toISOString() })),
      getJSON(query({ month }))]).then((answers) => answers.map((a) => summed(rowsOf(a))));
    const cell = (label, a, b) => `<tr><th>${label}</th><td>${a}</td><td>${b}</td></tr>`;
    document.getElementById("kpis").innerHTML = `<table class="kpi"><thead><tr><th></th><th>今日</th><th>本月</th></tr></thead><tbody>
      ${cell("受理", day.received, mon.received)}${cell("办结", day.closed + day.signed_off, mon.closed + mon.signed_off)}
      ${cell("办结率", pct(day.closure_rate), pct(mon.closure_rate))}${cell("群众满意率", pct(day.satisfaction_rate), pct(mon.satisfaction_rate))}
      ${state.town ? cell("及时签收率", pct(day.timely_sign_rate), pct(mon.timely_sign_rate)) + cell("按期办结率", pct(day.on_time_completion_rate), pct(mon.on_time_completion_rate)) : ""}</tbody></table>`;
    document.getElementById("kpis").dataset.received = mon.received;
  } catch (err) { document.getElementById("kpis").innerHTML = `<p class="muted">${esc(err.message)}</p>`; }
}

async function loadRanking() {
  if (!(await hasPath("/kpis/ranking"))) return;
  document.getElementById("ranking-panel").hidden = false;
  const month = shanghaiDate().slice(0, 7);
  document.getElementById("ranking-month").textContent = month;
  try {
    const rows = rowsOf(await getJSON("/kpis/ranking?" + new URLSearchParams({ level: "town", month })));
    const tbody = document.querySelector("#ranking tbody");
    tbody.innerHTML = rows.slice(0, 15).map((r) => `<tr data-code="${esc(r.code)}"><td>${r.rank}</td><td>${esc(r.name)}</td><td>${r.score == null ? "—" : (100 * r.score).toFixed(1)}</td><td>${pct(r.closure_rate)}</td></tr>`).join("")
      || `<tr><td colspan="4" class="muted">本月暂无考核数据</td></tr>`;
    tbody.querySelectorAll("tr[data-code]").forEach((tr) => tr.addEventListener("click", () => {
      document.getElementById("area-select").value = tr.dataset.code; flyToTown(tr.dataset.code); loadKpis();
    }));
  } catch (err) { console.warn(err); }
}

// The feed: newest on top; an item with a key (a ticket) replaces its earlier line, so a ticket that
// moves on shows once, in its latest state.
function feed(item) {
  const list = document.getElementById("alarms");
  const li = document.createElement("li");
  li.className = "feed-" + item.kind + (item.card ? " card-" + item.card : "");
  li.innerHTML = `<time>${esc(item.time)}</time><b>${esc(item.title)}</b><span>${esc(item.text)}</span>`;
  if (item.lat != null && item.lon != null) li.addEventListener("click", () => map.flyTo(shift([item.lat, item.lon]), 15));
  if (item.key) {
    li.dataset.key = item.key;
    for (const old of list.querySelectorAll("li[data-key]")) if (old.dataset.key === item.key) old.remove();
  }
  list.prepend(li);
  while (list.children.length > 12) list.lastChild.remove();
  return li;
}

function ticketFeed(t, time) {
  const li = feed({ kind: "ticket", key: t.id ? "ticket-" + t.id : null, card: t.card, time,
    title: t.id ? `#${t.id} ${t.category_name || t.category || "工单"}` : "工单更新",
    text: [STATE_NAMES[t.state] || t.state, t.address || t.grid_code].filter(Boolean).join(" · "), lon: t.lon, lat: t.lat });
  if (t.id && !t.category_name) { // an event without the category's name: the ticket has it
    getJSON("/tickets/" + t.id).then((full) => { li.querySelector("b").textContent = `#${t.id} ${full.category_name}`; }).catch(() => {});
  }
}

async function loadFeed() {
  if (!state.tickets) return;
  try {
    const rows = rowsOf(await getJSON("/tickets?limit=8")).slice().reverse();
    for (const t of rows) ticketFeed(t, when(t.created_at));
  } catch (err) { console.warn(err); }
}

// ------------------------------------------------------------------ live
function connectLive() {
  const el = document.getElementById("live-state");
  const es = new EventSource("/live");
  const seen = () => { state.liveEvents++; body.dataset.liveEvents = state.liveEvents; };
  es.addEventListener("hello", () => { el.textContent = "● 实时"; el.className = "live on"; body.dataset.live = "on"; });
  es.onerror = () => { el.textContent = "● 重连中"; el.className = "live off"; body.dataset.live = "off"; };
  let ticketTimer = null;
  es.addEventListener("tickets", (e) => {
    seen();
    const d = JSON.parse(e.data);
    ticketFeed(d, when(d.at || new Date().toISOString()));
    state.live++;
    reloadStats(); // the colours and bubbles: a few kB, not the tiles
    clearTimeout(ticketTimer);
    ticketTimer = setTimeout(() => { if (ticketTiles && state.showTickets) ticketTiles.refresh(); loadKpis(); }, 400);
  });
  es.addEventListener("alarms", (e) => {
    seen();
    const d = JSON.parse(e.data);
    const [lon, lat] = d.lonlat || [d.lon, d.lat];
    const cam = d.camera_id && things.cameras && things.cameras.byId.get(d.camera_id);
    if (cam) {
      cam.data.alarm_state = d.state === "active" ? "alarm" : "ok";
      cam.style = cameraStyle(cam.data, map.getZoom()); overlay.redraw();
    }
    const title = d.title || (d.camera_id ? `视频告警 · ${cam ? cam.data.name : d.camera_id}` : d.sensor_id ? `感知告警 · ${d.name || d.sensor_id}` : "告警");
    const text = d.text || [d.kind, d.pollutant, d.peak != null ? `${d.peak} / ${d.limit}` : null, d.grid_code].filter(Boolean).join(" · ");
    feed({ kind: "alarm", card: "red", time: when(d.at || d.breach_at || new Date().toISOString()), title, text, lon, lat });
  });
  es.addEventListener("registry", (e) => {
    seen();
    feed({ kind: "registry", time: when(new Date().toISOString()), title: "网格调整", text: "版本 " + (JSON.parse(e.data).payload || e.data) });
    getJSON("/tiles").then((info) => { state.info = info; state.registry = info.registry_version; base.refresh(); setStrip(); })
      .catch((err) => console.warn(err));
  });
  let workersAt = 0, workersRefresh = null;
  es.addEventListener("workers", () => { // new positions: the worker tiles again, at most every 2 s
    seen();
    if (!workerTiles) return;
    clearTimeout(workersRefresh);
    workersRefresh = setTimeout(() => { workersAt = Date.now(); workerTiles.refresh(); },
      Math.max(0, 2000 - (Date.now() - workersAt)));
  });
}

// ------------------------------------------------------------------ start
async function start() {
  const t0 = performance.now();
  const info = await infoP;
  performance.mark("onemap:info");
  state.info = info; state.registry = info.registry_version || 0;
  const b = info.bounds;
  if (b) {
    state.cityBounds = L.latLngBounds(shift([b[1], b[0]]), shift([b[3], b[2]]));
    map.fitBounds(state.cityBounds, { paddingTopLeft: [360, 70], paddingBottomRight: [440, 20] });
  } else map.setView([36.88, 118.8], 10);
  setupTiles(info);
  const thingsP = Promise.all(THINGS.map((t) => fetchThing(t).catch((err) => { console.warn(t.name, err); return null; })));
  setStrip();
  statsP.then((s) => { performance.mark("onemap:stats"); applyStats(s); });
  thingsP.then((all) => { performance.mark("onemap:things"); THINGS.forEach((t, i) => addThing(t, all[i])); renderSwitcher(); });
  await Promise.all([base.loaded.then(() => performance.mark("onemap:tiles")), statsP, thingsP,
    workerTiles ? workerTiles.loaded.then(() => performance.mark("onemap:workers")) : null]);
  updateCounts(); buildBubbles(); buildWorkers(); renderSwitcher();
  overlay.release();
  // Marked after the frame holding all this is painted (two animation frames), as the naive page is.
  await new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
  performance.mark("onemap:render");
  window.onemapRenderMs = performance.now();
  body.dataset.renderMs = Math.round(performance.now() - t0);
  body.dataset.ready = "true";
  // After the map: panels, the town list, the live stream.
  fillTownSelect();
  document.getElementById("area-select").addEventListener("change", (e) => { flyToTown(e.target.value); loadKpis(); });
  connectLive();
  await Promise.all([loadKpis(), loadRanking(), loadFeed()]);
  performance.mark("onemap:complete");
  body.dataset.completeMs = Math.round(performance.now() - t0);
  window.onemapCompleteMs = performance.now();
  body.dataset.complete = "true";
}

window.onemap = { map, state, labels, bubbles, things, overlay, workerSet, get base() { return base; }, get tickets() { return ticketTiles; },
  get workers() { return workerTiles; } };
start().catch((err) => { console.error(err); document.getElementById("info").innerHTML = `<h2>加载失败</h2><p>${esc(err.message)}</p>`; });
