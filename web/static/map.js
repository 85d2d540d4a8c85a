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
import { getJSON, hasPath, esc, pct, shanghaiDate, timeText, STATE_NAMES, CARD_COLOURS, moveName } from "/static/common.js";
import { shifter, shiftGeoJSON } from "/static/gcj02.js";
import { duty, learn, gridOf, nameOf, unitName, unitCodes, placeText, ticketHtml, peopleHtml, deadlineHtml, deskLink,
  cardBadge, urgent, dueOfSummary, baseSummary, baseHtml, timeLeft, CLOCK_NAMES } from "/static/duty.js";

performance.mark("onemap:modules");
const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const shift = shifter(crs);
const POINT_TILE_ZOOM = 14; // tile zoom (round(map zoom)) from which single tickets come as tiles
const BUBBLE_ZOOM = 13; // per-grid ticket bubbles from this tile zoom; below, the grid colours (and towns' counts) say it
// The wall's scale: the layout is drawn for 1920×1080; a 3840×2160 wall shows it twice as large, a laptop
// smaller (the CSS zooms the panels by --ui; canvas labels and symbols scale here by the same factor).
function uiScale() { return Math.max(0.7, Math.min(2.5, Math.min(innerWidth / 1920, innerHeight / 1080))); }
let UI = uiScale();
body.style.setProperty("--ui", String(UI));
// A zoom as it would be on the 1920 px layout: a 4K wall one zoom closer shows what 1920 shows, so
// labels thin out by this zoom, not the map's.
function uiZoom(z) { return z - Math.log2(UI); }
const state = { colour: "open", town: "", tickets: false, liveEvents: 0, counts: {}, stats: new Map(), totals: null,
  live: 0, registry: 0, showTickets: true, feedCount: 0 };

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
      stroke: z >= 12 ? "rgba(120,190,255,0.75)" : "rgba(90,160,230,0.45)", width: (z >= 13 ? 1.2 : 0.6) * UI };
  },
  villages(p, z) { return uiZoom(z) < 10 ? null : { stroke: "rgba(150,210,255,0.7)", width: (z >= 12 ? 1.4 : 0.9) * UI, dash: [4 * UI, 3 * UI] }; },
  towns(p) {
    const selected = state.town && p.code === state.town;
    return { stroke: selected ? "#fff3b0" : "#ffc94d", width: (selected ? 4 : 2.4) * UI };
  },
  districts() { return { ...DISTRICT_STYLE, width: DISTRICT_STYLE.width * UI, halo: DISTRICT_STYLE.halo.map(([w, c]) => [w * UI, c]) }; },
  tickets(p) { // single tickets (tiles from POINT_TILE_ZOOM)
    return { radius: 6 * UI, fill: CARD_BY_RANK[p.card_rank] || "#4cc9f0", stroke: "#0b1420", width: 1.5 * UI };
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
  return (z) => (!base || z < min ? [] : base.labels(name).map((l) => ({ latlng: l.latlng, text: text(l.props), size: Math.round(size * UI), color, bold })));
}
const minorLabels = new LabelSet((mapZ) => { const z = uiZoom(mapZ); return [
  ...labelsOf("villages", 11.5, z >= 14 ? 16 : 14, "#bfe3ff", false, (p) => p.name)(z),
  ...labelsOf("grids", 13.5, z >= 15 ? 15 : 13, "#e4f2ff", false, (p) => p.name + (openOf(p.code)[0] ? " · " + openOf(p.code)[0] : ""))(z)]; });
const labels = new LabelSet((mapZ) => {
  const z = uiZoom(mapZ);
  const out = labelsOf("towns", 0, z >= 12 ? 22 : 19, "#ffd166", true, (p) => p.name)(z);
  if (base && state.tickets && state.showTickets && z < BUBBLE_ZOOM - 0.5) { // the open tickets of each town, under its name
    const open = townTotals();
    for (const l of base.labels("towns")) {
      const n = open.get(l.props.code);
      if (!n) continue;
      const pt = map.latLngToContainerPoint(l.latlng).add([0, 24 * UI]);
      out.push({ latlng: map.containerPointToLatLng(pt), text: `在办 ${fmt(n)}`, size: Math.round(15 * UI), color: "#ffe7ad", bold: false });
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
  base.on("tiledata", () => { overlay.redraw(); scheduleCounts(); scheduleBubbles(); scheduleNames(); });
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
  const k = count + "/" + card + "@" + UI;
  if (!bubbleStyles.has(k)) {
    const r = Math.min(22, 7 + 3 * Math.log2(count));
    bubbleStyles.set(k, { r: r * UI, fill: hexA(CARD_BY_RANK[card] || "#4cc9f0", 0.85), stroke: "rgba(255,255,255,0.9)", width: 1.5 * UI,
      text: String(count), textColor: "#07121f", fontSize: Math.round((r >= 14 ? 13 : 11) * UI) });
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
// Symbols are drawn at the wall's scale (UI): the same size to the eye on a laptop and on a 4K wall.
function symbol(key, make) {
  const k = key + "@" + UI;
  if (!symbols.has(k)) { const s = make(); s.r *= UI; if (s.width) s.width *= UI; if (s.halo) s.halo = [s.halo[0] * UI, s.halo[1]]; symbols.set(k, s); }
  return symbols.get(k);
}
// Workers by zoom: specks over a whole city (2,000 of them must not hide it), dots closer in.
const WORKER_SIZES = [[13, 6, 1.5], [12, 4, 1], [10.5, 3, 0.8], [0, 1.6, 0]];
function workerStyle(p, mapZ) {
  const [, r, width] = WORKER_SIZES.find(([min]) => uiZoom(mapZ) >= min);
  const on = p.on_duty !== false;
  return symbol(`w${r}${on}`, () => ({ r, fill: on ? "#f15bb5" : "#8d7d96", stroke: width ? "#1a0716" : null, width }));
}
const ROLE_NAMES = { grid_chief: "网格长", full_time: "专职网格员", specialist: "专业网格员", helper: "网格协管员" };
const SENSOR_COLOURS = { ok: "#b388ff", over: "#ff9f1c", alarm: "#ff4d5e", stale: "#7f8c9a", no_data: "#7f8c9a", offline: "#55606c" };
function sensorStyle(p, mapZ) {
  const s = p.state || "ok", near = uiZoom(mapZ) >= 13;
  return symbol(`s${near}${s}`, () => ({ r: near ? 6 : 4.5, shape: "diamond", fill: SENSOR_COLOURS[s] || "#b388ff",
    stroke: "#0b1420", width: 1.2, halo: s === "alarm" ? [11, "rgba(255,77,94,0.35)"] : null }));
}
function cameraStyle(p, mapZ) {
  const alarm = p.alarm_state === "alarm", near = uiZoom(mapZ) >= 13;
  const off = p.status && !["online", "ok"].includes(p.status);
  return symbol(`c${near}${alarm}${off}`, () => ({ r: near ? 6.5 : 5, shape: "square",
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

// Names the tiles carry (grids, villages, towns on their label points): the feed and cards print these.
let namesTimer = null;
function scheduleNames() { // after the first render: nothing the map's first paint needs
  if (body.dataset.ready !== "true") return;
  clearTimeout(namesTimer); namesTimer = setTimeout(learnNames, 200);
}
function learnNames() {
  if (!base) return;
  for (const l of base.labels("grids")) learn("grids", l.props.code, l.props.name);
  for (const kind of ["villages", "towns"]) for (const l of base.labels(kind)) learn("areas", l.props.code, l.props.name);
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
    map.flyTo(it.latlng, POINT_TILE_ZOOM); showGrid(it.data.code); return;
  }
  if (it) { openThing(it); return; }
  const hit = (ticketTiles && state.showTickets && ticketTiles.hit(e.latlng)) || (base && base.hit(e.latlng));
  if (!hit) return;
  if (hit.layer === "tickets") showTicket(hit.props.id);
  else showGrid(hit.props.code);
});

// The details panel shows one card at a time; a late answer for an earlier click is dropped.
let cardSeq = 0;
function card(kind, id) { cardSeq++; const info = document.getElementById("info"); info.dataset.kind = kind; info.dataset.code = id || ""; return cardSeq; }
function stillCard(seq) { return seq === cardSeq; }
function setCard(html) {
  const info = document.getElementById("info");
  info.innerHTML = `<button class="close" aria-label="关闭" title="关闭">×</button>` + html;
  info.scrollTop = 0;
  info.querySelector(".close").addEventListener("click", () => {
    card("none"); info.innerHTML = `<h2>详情</h2><p class="muted">点击地图上的网格、工单、网格员、摄像头或监测点查看详情</p>`;
  });
}

// A grid: names, who answers for it, its open tickets (the most urgent with its deadline), the base data.
async function showGrid(code) {
  const seq = card("grid", code);
  const [open, worst, red, yellow] = openOf(code);
  const label = base && base.labels("grids").find((l) => l.props.code === code);
  setCard(`<h2>${esc(label ? label.props.name : "网格")}</h2><p class="muted">正在载入…</p>`);
  const ticketsP = state.tickets ? getJSON("/tickets?" + new URLSearchParams({ grid: code, limit: 100 })).catch(() => null) : null;
  const [, rec, list, baseData] = await Promise.all([duty({ grids: [code] }, { fresh: true }),
    getJSON("/grids/" + code).then((f) => f.properties).catch(() => ({})), ticketsP, baseSummary(code)]);
  if (!stillCard(seq)) return;
  const g = gridOf(code) || {};
  const todo = list ? urgent(list.items || []) : [];
  const first = todo[0];
  const [kind, due] = first ? dueOfSummary(first) : [null, null];
  const cardName = ["ok", "yellow", "red"][worst] || "ok";
  setCard(`<div class="card-head"><h2>${esc(g.name || rec.name || code)}</h2>${state.tickets && open ? cardBadge(cardName) : ""}</div>
    <dl class="duty" data-grid="${esc(code)}">
      <dt>所属</dt><dd>${esc([g.town_name || rec.town_name, g.village_name || rec.village_name].filter(Boolean).join(" · ") || "—")}</dd>
      <dt>类型</dt><dd>${esc(value("kind", rec.kind) || "—")} · ${esc(rec.households ?? "—")} 户 / ${esc(rec.population ?? "—")} 人</dd>
      <dt>网格员</dt>${peopleHtml(g, { limit: 4 })}
      ${state.tickets ? `<dt>在办工单</dt><dd><b class="big">${open}</b> 件${red ? ` · <span class="card-red">红牌 ${red}</span>` : ""}${yellow ? ` · <span class="card-yellow">黄牌 ${yellow}</span>` : ""}</dd>` : ""}
      ${first ? `<dt>最紧急</dt><dd><a href="#" data-open-ticket="${esc(first.id)}">#${esc(first.id)} ${esc(first.category_name)}</a> · ${esc(STATE_NAMES[first.state] || first.state)}</dd>${deadlineHtml(kind, due)}` : ""}
    </dl>${baseHtml(baseData)}
    ${state.tickets ? deskLink(first ? `/desk?ticket=${encodeURIComponent(first.id)}` : `/desk?grid=${encodeURIComponent(code)}`, first ? "处理最紧急工单" : "在受理台查看") : ""}`);
  wireCard();
}

// Links inside a card that open another card (a ticket from a grid, a camera, an alarm).
function wireCard() {
  document.querySelectorAll("#info [data-open-ticket]").forEach((a) => a.addEventListener("click", (e) => {
    e.preventDefault(); showTicket(a.dataset.openTicket);
  }));
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
  else openSensor(it);
}

function popupOptions(extra = {}) {
  return { className: "onemap-popup", maxWidth: 460, minWidth: 300, autoPanPaddingTopLeft: L.point(360 * UI, 170 * UI), // clear of the header and the counts bar
    autoPanPaddingBottomRight: L.point(460 * UI, 30 * UI), ...extra };
}

// A sensor: every pollutant in Chinese with its unit and limit (over the limit in red), its alarm and
// the alarm's ticket, who answers for its grid. Limits from GET /sensors/thresholds (editable there).
const POLLUTANTS = [["pm25", "PM2.5", "细颗粒物"], ["pm10", "PM10", "可吸入颗粒物"], ["no2", "NO₂", "二氧化氮"],
  ["so2", "SO₂", "二氧化硫"], ["o3", "O₃", "臭氧"], ["co", "CO", "一氧化碳"]];
const unitOf = (k) => (k === "co" ? "mg/m³" : "µg/m³");
const SENSOR_KINDS = { air: "空气质量监测站", enterprise: "排污企业在线监测", smoke: "烟感", water: "水质监测" };
const SENSOR_STATES = { ok: "正常", over: "超标", alarm: "告警中", stale: "数据滞后", no_data: "无数据", offline: "离线", retired: "已停用" };
let limitsP = null;
function limits() {
  if (!limitsP) limitsP = getJSON("/sensors/thresholds").then((rows) => Object.fromEntries(rows.map((r) => [r.pollutant, r]))).catch(() => ({}));
  return limitsP;
}

function sensorHtml(p, lim, alarm, ticket) {
  const rows = POLLUTANTS.filter(([k]) => p[k] !== null && p[k] !== undefined).map(([k, label, cn]) => {
    const v = Number(p[k]), l = lim[k] ? lim[k].limit_value : null, over = l !== null && v > l;
    return `<tr class="${over ? "over" : ""}"><th>${cn} <small>${label}</small></th><td><b>${v.toFixed(k === "co" ? 2 : 1)}</b> ${unitOf(k)}</td>
      <td class="limit">${l === null ? "—" : `限值 ${l} ${unitOf(k)}`}</td></tr>`;
  }).join("");
  const a = alarm ? `<div class="alarm-box"><b>告警中 · ${esc((POLLUTANTS.find(([k]) => k === alarm.pollutant) || [0, alarm.pollutant])[1])} 超标</b>
      <span>峰值 ${esc(alarm.peak)} ${unitOf(alarm.pollutant)} / 限值 ${esc(alarm.limit_value)} ${unitOf(alarm.pollutant)} · 自 ${esc(when(alarm.run_start || alarm.breach_at))}</span>
      ${ticket ? `<span>工单 #${esc(ticket.id)} ${esc(STATE_NAMES[ticket.state] || ticket.state)} ${cardBadge(ticket.live_card || ticket.card)}</span>` : ""}</div>` : "";
  return `<div class="sensor-popup" data-sensor="${esc(p.id)}"><h3>${esc(p.name || p.id)} <small>${esc(SENSOR_KINDS[p.kind] || p.kind || "")}</small>
      ${p.state === "alarm" ? ' <em class="alarm">告警中</em>' : ""}</h3>${a}
    <p class="muted">${esc(SENSOR_STATES[p.state] || p.state || "")} · 读数时间 ${esc(when(p.latest_at))}${p.owner ? ` · ${esc(p.owner)}` : ""}</p>
    ${rows ? `<table class="readings">${rows}</table>` : `<p class="muted">暂无读数</p>`}</div>`;
}

async function openSensor(it) {
  const p = it.data;
  const seq = card("sensor", p.id);
  const popup = L.popup(popupOptions()).setLatLng(it.latlng).setContent(sensorHtml(p, {}, null, null)).openOn(map);
  const alarmsP = p.alarm_id ? getJSON("/sensors/alarms?" + new URLSearchParams({ sensor: p.id, state: "open" })).catch(() => []) : Promise.resolve([]);
  const [lim, alarms] = await Promise.all([limits(), alarmsP, duty({ grids: [p.grid_code], areas: [p.town_code] }, { fresh: true })]);
  const alarm = alarms[0] || null;
  const ticket = alarm && alarm.ticket_id ? await getJSON("/tickets/" + alarm.ticket_id).catch(() => null) : null;
  if (map.hasLayer(popup)) popup.setContent(sensorHtml(p, lim, alarm, ticket));
  if (!stillCard(seq)) return;
  const [kind, due] = ticket ? [ticket.running_clock, ticket.running_due] : [null, null];
  setCard(`<div class="card-head"><h2>${esc(p.name || p.id)}</h2>${ticket ? cardBadge(ticket.live_card || ticket.card) : ""}</div>
    <dl class="duty" data-sensor="${esc(p.id)}">
      <dt>状态</dt><dd><b class="state ${p.state === "alarm" ? "card-red" : ""}">${esc(SENSOR_STATES[p.state] || p.state)}</b> · ${esc(SENSOR_KINDS[p.kind] || p.kind || "")}</dd>
      ${p.owner ? `<dt>排污单位</dt><dd>${esc(p.owner)}</dd>` : ""}
      ${ticket ? `<dt>告警工单</dt><dd><a href="#" data-open-ticket="${esc(ticket.id)}">#${esc(ticket.id)}</a> · ${esc(STATE_NAMES[ticket.state] || ticket.state)} · ${esc(unitName(ticket.assignee) || "待派遣")}</dd>${deadlineHtml(kind, due)}` : ""}
      <dt>网格员</dt>${peopleHtml(gridOf(p.grid_code))}
      <dt>位置</dt><dd>${esc(placeText(p.grid_code, p.town_code) || "—")}</dd>
    </dl>${ticket ? deskLink(`/desk?ticket=${encodeURIComponent(ticket.id)}`) : ""}`);
  wireCard();
}

async function showTicket(id) {
  if (id === undefined || id === null || id === "") return; // never GET /tickets/undefined
  const seq = card("ticket", String(id));
  setCard(`<h2>工单 #${esc(id)}</h2><p class="muted">正在载入…</p>`);
  let t;
  try { t = await getJSON("/tickets/" + encodeURIComponent(id)); } catch (err) {
    if (stillCard(seq)) setCard(`<h2>工单 #${esc(id)}</h2><p class="muted">${esc(err.message)}</p>`);
    return;
  }
  await duty({ grids: [t.grid_code], ...mergeCodes(unitCodes([t.assignee, t.department, ...(t.co_units || [])]), [t.town_code]) });
  if (!stillCard(seq)) return;
  setCard(ticketHtml(t));
}
function mergeCodes(u, areas) { return { areas: [...u.areas, ...areas.filter(Boolean)], departments: u.departments }; }

// ------------------------------------------------------------------ a worker: today's track and reports
const trackLayer = L.layerGroup().addTo(map);
const TICKET_MARK = { radius: 7, color: "#0b1420", weight: 2, fillOpacity: 1, pane: "track" };

async function openWorker(it) {
  const p = it.data, day = shanghaiDate();
  showWorkerCard(p);
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
      .on("click", () => showTicket(t.properties.id)).addTo(trackLayer));
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
    showTicket(li.dataset.ticket);
    marks.forEach((m, id) => (id === li.dataset.ticket ? m.openTooltip() : m.closeTooltip())); // where it was reported
  }));
  if (track) map.fitBounds(L.geoJSON(track).getBounds().extend(it.latlng), { paddingTopLeft: [380 * UI, 440 * UI], paddingBottomRight: [460 * UI, 60 * UI], maxZoom: 17 });
  body.dataset.track = JSON.stringify({ worker: p.id, fixes: s.fixes || 0, tickets: tickets.length });
}

// A worker's card: phone, grids (names), their open tickets and the worst card, the desk for them.
async function showWorkerCard(p) {
  const seq = card("worker", p.id);
  setCard(`<h2>网格员 · ${esc(p.name)}</h2><p class="muted">正在载入…</p>`);
  let w;
  try { w = await getJSON("/workers/" + encodeURIComponent(p.id)); } catch (err) {
    if (stillCard(seq)) setCard(`<h2>网格员 · ${esc(p.name)}</h2><p class="muted">${esc(err.message)}</p>`);
    return;
  }
  await duty({ grids: w.grids || [], areas: [w.town_code] });
  if (!stillCard(seq)) return;
  let open = 0, red = 0, yellow = 0, worst = 0;
  for (const code of w.grids || []) { const [o, c, r, y] = openOf(code); open += o; red += r; yellow += y; worst = Math.max(worst, c); }
  const names = (w.grids || []).map((c) => (gridOf(c) || {}).name || c);
  setCard(`<div class="card-head"><h2>${esc(w.name)} <small>${esc(w.role_name || ROLE_NAMES[w.role] || "")}</small></h2>${open ? cardBadge(["ok", "yellow", "red"][worst]) : ""}</div>
    <dl class="duty" data-worker="${esc(w.id)}">
      <dt>电话</dt><dd>${w.phone ? `<a href="tel:${esc(w.phone)}">${esc(w.phone)}</a>` : "—"}</dd>
      <dt>状态</dt><dd>${w.on_duty === false ? "离岗" : "在岗"} · 定位 ${esc(when(p.fix_at))}</dd>
      <dt>责任网格</dt><dd>${esc(names.join("、") || "—")}</dd>
      <dt>所属</dt><dd>${esc(nameOf("areas", w.town_code) || placeText((w.grids || [])[0]) || "—")}</dd>
      ${state.tickets ? `<dt>在办工单</dt><dd><b class="big">${open}</b> 件${red ? ` · <span class="card-red">红牌 ${red}</span>` : ""}${yellow ? ` · <span class="card-yellow">黄牌 ${yellow}</span>` : ""}</dd>` : ""}
    </dl>${state.tickets && (w.grids || []).length ? deskLink(`/desk?grid=${encodeURIComponent(w.grids[0])}`, "在受理台查看责任网格") : ""}`);
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
  showCameraCard(p);
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

const CAMERA_STATUS = { online: "在线", offline: "离线", unknown: "未接入", error: "故障" };
const ALARM_KINDS = { crowd: "人群聚集", parking: "违章停车", present: "区域闯入" };
// A camera's card: status, its alarm and the alarm's ticket (deadline, card, handler), who answers for its grid.
async function showCameraCard(p) {
  const seq = card("camera", p.id);
  const ticket = p.alarm_ticket ? await getJSON("/tickets/" + p.alarm_ticket).catch(() => null) : null;
  await duty({ grids: [p.grid_code], ...mergeCodes(unitCodes(ticket ? [ticket.assignee] : []), [p.town_code]) });
  if (!stillCard(seq)) return;
  const alarm = p.alarm_state === "alarm";
  setCard(`<div class="card-head"><h2>${esc(p.name)}</h2>${alarm ? '<em class="badge card-red">告警中</em>' : ""}</div>
    <dl class="duty" data-camera="${esc(p.id)}">
      <dt>状态</dt><dd>${esc(CAMERA_STATUS[p.status] || p.status || "—")}${p.frame_age_s != null ? ` · 画面 ${esc(value("frame_age_s", p.frame_age_s))}前` : ""}</dd>
      <dt>告警</dt><dd>${alarm ? `<b class="card-red">${esc(ALARM_KINDS[p.alarm_kind] || p.alarm_kind || "告警")}</b>` : "无"}</dd>
      ${ticket ? `<dt>告警工单</dt><dd><a href="#" data-open-ticket="${esc(ticket.id)}">#${esc(ticket.id)}</a> · ${esc(STATE_NAMES[ticket.state] || ticket.state)} · ${esc(unitName(ticket.assignee) || "待派遣")} ${cardBadge(ticket.live_card || ticket.card)}</dd>${deadlineHtml(ticket.running_clock, ticket.running_due)}` : ""}
      <dt>网格员</dt>${peopleHtml(gridOf(p.grid_code))}
      <dt>位置</dt><dd>${esc(placeText(p.grid_code, p.town_code) || "—")}</dd>
    </dl>${ticket ? deskLink(`/desk?ticket=${encodeURIComponent(ticket.id)}`) : ""}`);
  wireCard();
}

// An alarm from the feed (camera or sensor): what, when, where, who answers, its ticket.
async function showAlarm(d) {
  const seq = card("alarm", String(d.alarm_id || ""));
  const ticket = d.ticket_id ? await getJSON("/tickets/" + d.ticket_id).catch(() => null) : null;
  await duty({ grids: [d.grid_code], ...mergeCodes(unitCodes(ticket ? [ticket.assignee] : []), [d.town_code]) });
  if (!stillCard(seq)) return;
  const what = d.kind === "sensor_alarm" ? `${esc(d.name || d.sensor_id)} · ${esc(d.pollutant_label || d.pollutant || "")} 峰值 ${esc(d.peak)} / 限值 ${esc(d.limit)} ${unitOf(d.pollutant)}`
    : `${esc(d.camera_name || d.camera_id || "")} · ${esc(d.text || "")}`;
  setCard(`<div class="card-head"><h2>${esc(alarmTitle(d))}</h2>${ticket ? cardBadge(ticket.live_card || ticket.card) : '<em class="badge card-red">告警</em>'}</div>
    <dl class="duty" data-alarm="${esc(d.alarm_id || "")}">
      <dt>告警</dt><dd>${what}</dd>
      <dt>时间</dt><dd>${esc(when(d.at || d.breach_at))}</dd>
      ${ticket ? `<dt>工单</dt><dd><a href="#" data-open-ticket="${esc(ticket.id)}">#${esc(ticket.id)}</a> · ${esc(STATE_NAMES[ticket.state] || ticket.state)} · ${esc(unitName(ticket.assignee) || "待派遣")}</dd>${deadlineHtml(ticket.running_clock, ticket.running_due)}` : ""}
      <dt>网格员</dt>${peopleHtml(gridOf(d.grid_code))}
      <dt>位置</dt><dd>${esc(placeText(d.grid_code, d.town_code) || "—")}</dd>
    </dl>${ticket ? deskLink(`/desk?ticket=${encodeURIComponent(ticket.id)}`) : ""}`);
  wireCard();
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
// moves on shows once, in its latest state. Red items (a red card, an alarm) flash as they arrive.
// Places and units are names (grid, town, department), never codes. Repeats fold into one line with a
// count (×N): a camera raising the same alarm again (same camera and rule within FOLD_MS), a sensor
// over the same limit again, and the reports the intake linked to an open ticket as its duplicates
// (each closed 不予立案 with a link to it) count on that ticket's line instead of taking lines of
// their own. The records are untouched (the desk still lists every report); only the wall folds them.
const FEED_MAX = 20;
const FOLD_MS = 30 * 60e3;
function feed(item) {
  const list = document.getElementById("alarms");
  const li = document.createElement("li");
  li.className = "feed-" + item.kind + (item.card ? " card-" + item.card : "") + (item.fresh ? " fresh" : "");
  li.innerHTML = `<time>${esc(item.time)}</time><b><bdi>${esc(item.title)}</bdi>${item.count > 1 ? ` <em class="repeat">×${item.count}</em>` : ""}</b><span>${esc(item.text)}</span>`;
  if (item.count > 1) li.dataset.count = String(item.count);
  li.addEventListener("click", () => {
    if (item.lat != null && item.lon != null) map.flyTo(shift([item.lat, item.lon]), 15);
    if (item.open) item.open();
  });
  if (item.key) {
    li.dataset.key = item.key;
    for (const old of list.querySelectorAll("li[data-key]")) if (old.dataset.key === item.key) old.remove();
  }
  list.prepend(li);
  if (item.fresh) setTimeout(() => li.classList.remove("fresh"), 6000);
  while (list.children.length > FEED_MAX) list.lastChild.remove();
  body.dataset.feedItems = String(++state.feedCount);
  return li;
}

// How many times a fold key came up, the count starting again after FOLD_MS of quiet.
const repeats = new Map();
function repeat(key, bump) {
  const now = Date.now(), r = repeats.get(key);
  const n = r && now - r.last < FOLD_MS ? r.n : 0;
  const next = bump || !n ? n + 1 : n;
  repeats.set(key, { n: next, last: bump || !r ? now : r.last });
  return next;
}
const reports = new Map(); // ticket id → the reports it stands for (itself and its duplicates seen live)
const duplicates = new Set(); // tickets known to be duplicates of another: never a line of their own

function ticketText(t) {
  const unit = t.assignee ? unitName(t.assignee) : null;
  const step = t.move && t.move !== "receive" ? moveName(t.move) : null;
  const place = placeText(t.grid_code, t.town_code);
  const named = unit && unit !== t.assignee && !(place || "").startsWith(unit) ? unit : null; // a town handling its own ticket: once
  return [step ? `${step} → ${STATE_NAMES[t.state] || t.state}` : STATE_NAMES[t.state] || t.state, named, place].filter(Boolean).join(" · ");
}

function ticketFeed(t, time, fresh = false) {
  const red = t.card === "red";
  const count = reports.get(t.id) || 1;
  const li = feed({ kind: "ticket", key: t.id ? "ticket-" + t.id : null, card: t.card, time, fresh: fresh && red, count,
    title: t.id ? `#${t.id} ${t.category_name || "工单"}` : "工单更新", text: ticketText(t), lon: t.lon, lat: t.lat,
    open: t.id ? () => showTicket(t.id) : null });
  if (!t.id) return;
  li.dataset.ticket = t.id;
  // the event carries codes: the ticket's category name, and the names of its place and unit
  const full = t.category_name ? Promise.resolve(t) : getJSON("/tickets/" + t.id).catch(() => null);
  full.then(async (f) => {
    const merged = { ...t, ...(f ? { category_name: f.category_name, assignee: t.assignee ?? f.assignee, town_code: t.town_code ?? f.town_code } : {}) };
    await duty({ grids: [merged.grid_code], ...mergeCodes(unitCodes([merged.assignee]), [merged.town_code]) });
    li.querySelector("b bdi").textContent = `#${t.id} ${merged.category_name || "工单"}`;
    li.querySelector("span").textContent = ticketText(merged);
  });
}

// A ticket event from the live stream. A new report (受理) or a 不予立案 is looked up first: when the
// intake linked it to an open ticket as a duplicate, it folds into that ticket's line (the first
// ticket's own 重复上报 event counts it), so a camera re-raising an alarm does not fill the feed.
function liveTicket(d) {
  const time = when(d.at || new Date().toISOString());
  if (!d.id) return ticketFeed(d, time, true);
  if (duplicates.has(d.id)) return;
  if (d.move === "duplicate") reports.set(d.id, (reports.get(d.id) || 1) + 1);
  if (d.move !== "receive" && d.move !== "reject") return ticketFeed(d, time, true);
  getJSON("/tickets/" + d.id).then((f) => {
    if (f.duplicate_of) { duplicates.add(d.id); return; }
    ticketFeed({ ...d, category_name: f.category_name, assignee: d.assignee ?? f.assignee, town_code: d.town_code ?? f.town_code }, time, true);
  }).catch(() => ticketFeed(d, time, true));
}

function alarmTitle(d) {
  if (d.kind === "sensor_alarm" || d.sensor_id) {
    const p = (POLLUTANTS.find(([k]) => k === d.pollutant) || [0, d.pollutant || ""])[1];
    return `感知告警 · ${p} 超标`;
  }
  return `视频告警 · ${ALARM_KINDS[d.rule] ? ALARM_KINDS[d.rule] + (d.event === "end" ? "解除" : "") : d.title || "告警"}`;
}

// One line per camera and rule (or sensor and pollutant) while it keeps alarming: a new start counts.
function alarmFeed(d, fresh = true) {
  const [lon, lat] = d.lonlat || [d.lon, d.lat];
  const ended = d.event === "end";
  const fold = d.camera_id ? `alarm-camera-${d.camera_id}-${d.rule || ""}`
    : d.sensor_id ? `alarm-sensor-${d.sensor_id}-${d.pollutant || ""}` : d.alarm_id ? `alarm-${d.kind}-${d.alarm_id}` : null;
  const count = fold ? repeat(fold, d.event === "start" || d.event == null) : 1;
  const what = () => [d.kind === "sensor_alarm" ? `${d.name || d.sensor_id} ${d.peak}/${d.limit} ${unitOf(d.pollutant)}` : d.text,
    placeText(d.grid_code, d.town_code)].filter(Boolean).join(" · ");
  const li = feed({ kind: "alarm", key: fold, card: ended ? null : "red", fresh: fresh && !ended, count,
    time: when(d.at || d.breach_at || new Date().toISOString()), title: alarmTitle(d), lon, lat, open: () => showAlarm(d),
    text: what() });
  if (d.camera_id) li.dataset.camera = d.camera_id;
  duty({ grids: [d.grid_code], areas: [d.town_code] }).then(() => {
    if (placeText(d.grid_code, d.town_code)) li.querySelector("span").textContent = what();
  });
}

async function loadFeed() {
  if (!state.tickets) return;
  try {
    const rows = rowsOf(await getJSON("/tickets?limit=12")).slice().reverse();
    await duty({ grids: rows.map((t) => t.grid_code), ...mergeCodes(unitCodes(rows.map((t) => t.assignee)), rows.map((t) => t.town_code)) });
    for (const t of rows) ticketFeed(t, when(t.created_at));
  } catch (err) { console.warn(err); }
}

// Sensors' latest readings and states again (a batch of readings or an alarm), at most every 10 s.
let sensorsAt = 0, sensorsTimer = null;
function reloadSensors() {
  const t = THINGS.find((x) => x.name === "sensors");
  if (!things.sensors) return;
  clearTimeout(sensorsTimer);
  sensorsTimer = setTimeout(() => {
    sensorsAt = Date.now();
    fetchThing(t).then((data) => {
      if (!data) return;
      const z = map.getZoom(), byId = things.sensors.byId;
      for (const f of data.features) {
        const it = byId.get(f.properties.id);
        if (it) { it.data = f.properties; it.style = t.style(f.properties, z); }
      }
      overlay.redraw();
    }).catch((err) => console.warn(err));
  }, Math.max(0, 10000 - (Date.now() - sensorsAt)));
}

// ------------------------------------------------------------------ live
function connectLive() {
  const el = document.getElementById("live-state");
  const es = new EventSource("/live");
  const seen = (name) => { state.liveEvents++; body.dataset.liveEvents = state.liveEvents; body.dataset["live" + name] = String(Date.now()); };
  es.addEventListener("hello", () => { el.textContent = "● 实时"; el.className = "live on"; body.dataset.live = "on"; });
  es.onerror = () => { el.textContent = "● 重连中"; el.className = "live off"; body.dataset.live = "off"; };
  let ticketTimer = null;
  es.addEventListener("tickets", (e) => {
    seen("Tickets");
    const d = JSON.parse(e.data);
    // a card change shows when it is red; an alarm's own updates show as the alarm's line
    if ((d.move !== "card" || d.card === "red") && d.move !== "alarm") liveTicket(d);
    state.live++;
    reloadStats(); // the colours and bubbles: a few kB, not the tiles
    clearTimeout(ticketTimer);
    ticketTimer = setTimeout(() => { if (ticketTiles && state.showTickets) ticketTiles.refresh(); loadKpis(); }, 400);
  });
  es.addEventListener("alarms", (e) => {
    seen("Alarms");
    const d = JSON.parse(e.data);
    const cam = d.camera_id && things.cameras && things.cameras.byId.get(d.camera_id);
    if (cam) {
      cam.data.alarm_state = d.state === "active" ? "alarm" : "ok";
      if (d.state === "active") { cam.data.alarm_ticket = d.ticket_id; cam.data.alarm_kind = d.rule; }
      cam.style = cameraStyle(cam.data, map.getZoom()); overlay.redraw();
      if (!d.camera_name) d.camera_name = cam.data.name;
    }
    if (d.sensor_id) reloadSensors();
    if (d.event !== "update") alarmFeed(d);
  });
  es.addEventListener("sensors", () => { seen("Sensors"); reloadSensors(); });
  es.addEventListener("registry", (e) => {
    seen("Registry");
    feed({ kind: "registry", time: when(new Date().toISOString()), title: "网格调整", text: "版本 " + (JSON.parse(e.data).payload || e.data) });
    getJSON("/tiles").then((info) => { state.info = info; state.registry = info.registry_version; base.refresh(); setStrip(); })
      .catch((err) => console.warn(err));
  });
  let workersAt = 0, workersRefresh = null;
  es.addEventListener("workers", () => { // new positions: the worker tiles again, at most every 2 s
    seen("Workers");
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
    map.fitBounds(state.cityBounds, { paddingTopLeft: [360 * UI, 80 * UI], paddingBottomRight: [460 * UI, 20 * UI] });
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
  // After the map: panels, the town list, the names the tiles carry, the live stream.
  fillTownSelect();
  learnNames();
  document.getElementById("area-select").addEventListener("change", (e) => { flyToTown(e.target.value); loadKpis(); });
  connectLive();
  await Promise.all([loadKpis(), loadRanking(), loadFeed()]);
  performance.mark("onemap:complete");
  body.dataset.completeMs = Math.round(performance.now() - t0);
  window.onemapCompleteMs = performance.now();
  body.dataset.complete = "true";
}

addEventListener("resize", () => {
  const next = uiScale();
  if (next === UI) return;
  UI = next; body.style.setProperty("--ui", String(UI)); restyleThings();
});

window.onemap = { map, state, labels, minorLabels, bubbles, things, overlay, workerSet, get base() { return base; }, get tickets() { return ticketTiles; },
  get workers() { return workerTiles; } };
start().catch((err) => { console.error(err); document.getElementById("info").innerHTML = `<h2>加载失败</h2><p>${esc(err.message)}</p>`; });
