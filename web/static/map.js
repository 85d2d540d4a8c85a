// The command hall's big-screen map: vector-tile layers, panels and live updates over SSE.
import { MVTLayer, LabelCanvas } from "/static/mvt.js";
import { getJSON, hasPath, esc, pct, shanghaiDate, timeText, STATE_NAMES, CARD_COLOURS } from "/static/common.js";
import { shifter, shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const shift = shifter(crs);
const TICKET_POINT_ZOOM = 13;
const state = { colour: "open", town: "", tickets: false, liveEvents: 0, counts: {} };

const map = L.map("map", { zoomControl: false, attributionControl: false, minZoom: 6, maxZoom: 18, zoomSnap: 0.25 });
L.control.zoom({ position: "bottomright" }).addTo(map);
L.control.scale({ position: "bottomright", imperial: false }).addTo(map);
if (body.dataset.tileUrl) L.tileLayer(body.dataset.tileUrl, { maxZoom: 19, className: "basemap" }).addTo(map);
[["grids", 310], ["areas", 320], ["tickets", 330], ["labels", 340], ["things", 350]].forEach(([name, z]) => {
  map.createPane(name).style.zIndex = z;
});

// ------------------------------------------------------------------ styles
const OPEN_STEPS = [[10, "#ff6b35"], [6, "#f4a261"], [3, "#e9c46a"], [1, "#2ec4b6"]];
function gridFill(p) {
  if (state.colour === "card" && p.open > 0) return [null, CARD_COLOURS.yellow, CARD_COLOURS.red][p.card] || "#2ec4b6";
  if (state.colour === "open") for (const [n, c] of OPEN_STEPS) if (p.open >= n) return c;
  return null;
}
const styles = {
  grids(p, z) {
    const fill = gridFill(p);
    const selected = state.town && p.town_code === state.town;
    return { fill: fill ? hexA(fill, 0.55) : (selected ? "rgba(90,170,255,0.28)" : "rgba(36,110,180,0.16)"),
      stroke: z >= 12 ? "rgba(120,190,255,0.75)" : "rgba(90,160,230,0.45)", width: z >= 13 ? 1.2 : 0.6 };
  },
  villages(p, z) { return z < 10 ? null : { stroke: "rgba(150,210,255,0.7)", width: z >= 12 ? 1.4 : 0.9, dash: [4, 3] }; },
  towns(p) {
    const selected = state.town && p.code === state.town;
    return { stroke: selected ? "#fff3b0" : "#ffc94d", width: selected ? 4 : 2.4 };
  },
  tickets(p) {
    const colour = [CARD_COLOURS.ok, CARD_COLOURS.yellow, CARD_COLOURS.red][p.aggregate ? p.card : p.card_rank] || "#4cc9f0";
    if (!p.aggregate) return { radius: 6, fill: colour, stroke: "#0b1420", width: 1.5 };
    const r = Math.min(26, 7 + 4 * Math.log2(p.count));
    return { radius: r, fill: hexA(colour, 0.8), stroke: "rgba(255,255,255,0.85)", width: 1.5,
      text: r >= 10 ? String(p.count) : "", textColor: "#07121f", fontSize: r >= 16 ? 14 : 11 };
  },
};
function hexA(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

// ------------------------------------------------------------------ layers
// One vector-tile layer holds every registry layer and the tickets ("all" tiles: a quarter of the
// requests); the switcher shows and hides its MVT layers. Sensors, workers, cameras are GeoJSON.
const layers = {};
const available = [];
let tiles = null;
const TILE_LAYERS = ["grids", "villages", "towns", "tickets"];

const labels = new LabelCanvas((z) => {
  const out = [];
  const add = (name, min, size, color, bold, text) => {
    if (!tiles || !map.hasLayer(tiles) || z < min) return;
    for (const l of tiles.labels(name)) out.push({ latlng: l.latlng, text: text(l.props), size, color, bold });
  };
  add("towns", 0, z >= 12 ? 22 : 19, "#ffd166", true, (p) => p.name);
  add("villages", 11.5, 14, "#bfe3ff", false, (p) => p.name);
  add("grids", 13.5, 12, "#e4f2ff", false, (p) => p.name + (p.open ? " · " + p.open : ""));
  return out;
}, { pane: "labels" });

async function setupLayers(info) {
  const names = info.layers.map((l) => l.name);
  const titles = { grids: "网格", villages: "村/社区", towns: "镇/街道", tickets: "事件工单" };
  tiles = new MVTLayer("all", { pane: "grids", crs, order: TILE_LAYERS, clickable: ["tickets", "grids"],
    style: (p, z, name) => styles[name] && styles[name](p, z) });
  tiles.on("tiledata", () => { labels.redraw(); scheduleCounts(); });
  tiles.loaded = new Promise((ok) => tiles.once("load", ok));
  tiles.addTo(map);
  layers.tiles = tiles;
  for (const name of TILE_LAYERS) if (names.includes(name)) available.push({ name, title: titles[name], tile: true });
  state.tickets = names.includes("tickets");
  body.classList.toggle("has-tickets", state.tickets);
  labels.addTo(map);
  renderSwitcher();
}

// Sensors, workers and cameras: drawn when their endpoints exist (GeoJSON point collections).
const THINGS = [
  { name: "sensors", title: "环境/物联感知", colour: "#b388ff", paths: ["/sensors/latest", "/sensors/map", "/sensors"] },
  { name: "workers", title: "网格员", colour: "#ff4d5e", paths: ["/workers/positions", "/workers/live", "/workers"] },
  { name: "cameras", title: "视频监控", colour: "#4cc9f0", paths: ["/cameras"] },
];
const thingsCanvas = L.canvas({ pane: "things", padding: 0.2 }); // thousands of markers: one canvas, not SVG
async function addThings() {
  for (const thing of THINGS) {
    let path = null;
    for (const p of thing.paths) if (await hasPath(p)) { path = p; break; }
    if (!path) continue;
    try {
      const data = await getJSON(path);
      if (data.type !== "FeatureCollection") continue;
      const layer = L.geoJSON(shiftGeoJSON(data, crs), {
        pane: "things",
        pointToLayer: (f, latlng) => L.circleMarker(latlng, { pane: "things", renderer: thingsCanvas, radius: 5, color: "#0b1420", weight: 1.5,
          fillColor: f.properties.alarm ? "#ff4d5e" : thing.colour, fillOpacity: 0.95 }),
        onEachFeature: (f, l) => l.on("click", () => showInfo(thing.title, f.properties)),
      }).addTo(map);
      layers[thing.name] = layer;
      available.push({ name: thing.name, title: thing.title, layer, count: data.features.length });
    } catch (err) { console.warn(thing.name, err); }
  }
}

function renderSwitcher() {
  const list = document.getElementById("layer-list");
  list.innerHTML = available.map((a) => `<label data-layer="${a.name}"><input type="checkbox" checked> <i class="sw sw-${a.name}"></i>${a.title}<b class="n" id="n-${a.name}"></b></label>`).join("");
  list.querySelectorAll("label").forEach((el) => el.querySelector("input").addEventListener("change", (e) => {
    const a = available.find((x) => x.name === el.dataset.layer);
    if (a.tile) tiles.setVisible(a.name, e.target.checked);
    else if (e.target.checked) a.layer.addTo(map); else map.removeLayer(a.layer);
    labels.redraw();
  }));
  document.querySelectorAll("input[name=colour]").forEach((el) => el.addEventListener("change", () => {
    state.colour = el.value; tiles.restyle(); renderLegend();
  }));
  renderLegend();
}

function renderLegend() {
  const el = document.getElementById("legend");
  if (!state.tickets) { el.innerHTML = ""; return; }
  const rows = state.colour === "card"
    ? [[CARD_COLOURS.red, "有红牌督办"], [CARD_COLOURS.yellow, "有黄牌警示"], ["#2ec4b6", "在办，未超时"]]
    : [["#ff6b35", "≥10 件"], ["#f4a261", "6–9 件"], ["#e9c46a", "3–5 件"], ["#2ec4b6", "1–2 件"]];
  el.innerHTML = rows.map(([c, t]) => `<div><i style="background:${c}"></i>${t}</div>`).join("");
}

// ------------------------------------------------------------------ counts
let countsTimer = null;
function scheduleCounts() { clearTimeout(countsTimer); countsTimer = setTimeout(updateCounts, 120); }

function unique(name) {
  const seen = new Map();
  if (tiles) for (const l of tiles.labels(name)) seen.set(l.props.code, l);
  return seen;
}

function updateCounts() {
  if (!state.cityBounds || !map.getBounds().contains(state.cityBounds)) return; // totals need the whole city in view
  const grids = unique("grids");
  const c = { grids: grids.size, towns: unique("towns").size, villages: unique("villages").size };
  if (state.tickets) {
    c.open = 0; c.red = 0;
    for (const l of grids.values()) { c.open += l.props.open || 0; c.red += l.props.red || 0; }
  }
  state.counts = c;
  const set = (id, v) => { const el = document.getElementById(id); if (el && v !== undefined) el.textContent = v.toLocaleString("zh-CN"); };
  set("grid-count", c.grids); set("town-count", c.towns); set("village-count", c.villages);
  set("open-count", c.open); set("red-count", c.red);
  set("n-grids", c.grids); set("n-towns", c.towns); set("n-villages", c.villages); set("n-tickets", c.open);
  for (const a of available) if (a.count !== undefined) set("n-" + a.name, a.count);
  body.dataset.grids = c.grids; body.dataset.towns = c.towns; body.dataset.villages = c.villages;
  fillTownSelect();
}

// ------------------------------------------------------------------ clicks and info
function showInfo(title, props) {
  const skip = new Set(["id", "aggregate", "card_rank"]);
  const names = { code: "编码", name: "名称", kind: "类型", village_code: "村/社区", town_code: "镇/街道", households: "户数",
    population: "人口", open: "在办工单", red: "红牌", yellow: "黄牌", card: "督办", state: "状态", category: "类别",
    severity: "紧急程度", channel: "来源", grid_code: "网格", count: "工单数", created: "受理时间" };
  const value = (k, v) => k === "kind" ? (v === "dedicated" ? "专属网格" : v === "basic" ? "基础网格" : v)
    : k === "state" ? (STATE_NAMES[v] || v) : k === "card" ? (["正常", "黄牌", "红牌"][v] ?? v)
    : k === "created" ? timeText(new Date(v * 1000).toISOString()) : v;
  const rows = Object.entries(props).filter(([k]) => !skip.has(k))
    .map(([k, v]) => `<dt>${esc(names[k] || k)}</dt><dd>${esc(value(k, v))}</dd>`).join("");
  document.getElementById("info").innerHTML = `<h2>${esc(title)}</h2><dl>${rows}</dl>`;
}

map.on("click", (e) => {
  const hit = tiles && tiles.hit(e.latlng);
  if (!hit) return;
  if (hit.layer === "tickets" && hit.props.aggregate) {
    map.flyTo(hit.latlng, TICKET_POINT_ZOOM + 0.5); showInfo("网格工单汇总 · " + hit.props.name, hit.props);
  } else if (hit.layer === "tickets") showTicket(hit.props);
  else showInfo(hit.props.name, hit.props);
});

async function showTicket(props) {
  showInfo("工单 #" + props.id, props);
  if (!(await hasPath("/tickets/{ticket_id}")) && !(await hasPath("/tickets/{id}"))) return;
  try {
    const t = await getJSON("/tickets/" + props.id);
    document.getElementById("info").innerHTML = `<h2>工单 #${t.id} · ${esc(t.category_name)}</h2><dl>
      <dt>状态</dt><dd>${esc(STATE_NAMES[t.state] || t.state)}</dd><dt>督办</dt><dd class="card-${t.card}">${esc({ ok: "正常", yellow: "黄牌", red: "红牌" }[t.card])}</dd>
      <dt>网格</dt><dd>${esc(t.grid_code)}</dd><dt>地址</dt><dd>${esc(t.address)}</dd><dt>受理</dt><dd>${timeText(t.created_at)}</dd>
      <dt>描述</dt><dd>${esc(t.description)}</dd></dl><a class="button" href="/desk#${t.id}">在受理台打开</a>`;
  } catch (err) { console.warn(err); }
}

// ------------------------------------------------------------------ panels: KPIs, ranking, feed
function rowsOf(body) { return Array.isArray(body) ? body : body.rows || body.items || body.kpis || body.ranking || []; }

let townsFilled = null;
const townBounds = new Map();
function fillTownSelect() {
  // Every town, from the registry (not from whichever tiles happen to be drawn yet), once.
  if (townsFilled) return townsFilled;
  const select = document.getElementById("area-select");
  townsFilled = getJSON("/areas?level=town").then((fc) => {
    const towns = fc.features.slice().sort((a, b) => a.properties.code.localeCompare(b.properties.code));
    for (const f of towns) {
      townBounds.set(f.properties.code, L.geoJSON(f).getBounds());
      select.add(new Option(f.properties.name, f.properties.code));
    }
  }).catch(() => { townsFilled = null; });
  return townsFilled;
}

function townLabel(code) { return unique("towns").get(code); }

function flyToTown(code) {
  state.town = code;
  const t = townLabel(code);
  if (t) map.flyTo(t.latlng, 11.5);
  else if (townBounds.has(code)) map.flyToBounds(townBounds.get(code), { maxZoom: 12 });
  else if (state.cityBounds) map.flyToBounds(state.cityBounds);
  tiles.restyle();
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

function feed(item) {
  const list = document.getElementById("alarms");
  const li = document.createElement("li");
  li.className = "feed-" + item.kind + (item.card ? " card-" + item.card : "");
  li.innerHTML = `<time>${esc(item.time)}</time><b>${esc(item.title)}</b><span>${esc(item.text)}</span>`;
  if (item.lat != null && item.lon != null) li.addEventListener("click", () => map.flyTo(shift([item.lat, item.lon]), 15));
  list.prepend(li);
  while (list.children.length > 12) list.lastChild.remove();
}

async function loadFeed() {
  if (!(await hasPath("/tickets"))) return;
  try {
    const rows = rowsOf(await getJSON("/tickets?limit=8")).slice().reverse();
    for (const t of rows) feed({ kind: "ticket", card: t.card, time: timeText(t.created_at), title: `#${t.id} ${t.category_name || t.category}`,
      text: `${STATE_NAMES[t.state] || t.state} · ${t.address || t.grid_code || ""}`, lon: t.lon, lat: t.lat });
  } catch (err) { console.warn(err); }
}

// ------------------------------------------------------------------ live
let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => tiles.refresh(), 400);
}

function connectLive() {
  const el = document.getElementById("live-state");
  const es = new EventSource("/live");
  const seen = () => { state.liveEvents++; body.dataset.liveEvents = state.liveEvents; };
  es.addEventListener("hello", () => { el.textContent = "● 实时"; el.className = "live on"; body.dataset.live = "on"; });
  es.onerror = () => { el.textContent = "● 重连中"; el.className = "live off"; body.dataset.live = "off"; };
  es.addEventListener("tickets", (e) => {
    seen();
    const d = JSON.parse(e.data);
    feed({ kind: "ticket", card: d.card, time: timeText(d.at || new Date().toISOString()),
      title: d.id ? `#${d.id} ${d.category_name || d.category || "工单"}` : "工单更新",
      text: [STATE_NAMES[d.state] || d.state, d.address || d.grid_code].filter(Boolean).join(" · "), lon: d.lon, lat: d.lat });
    refreshSoon(); loadKpis();
  });
  es.addEventListener("alarms", (e) => {
    seen();
    const d = JSON.parse(e.data);
    feed({ kind: "alarm", card: "red", time: timeText(d.at || new Date().toISOString()), title: d.title || "告警",
      text: d.text || d.kind || "", lon: d.lon, lat: d.lat });
  });
  es.addEventListener("registry", (e) => {
    seen();
    feed({ kind: "registry", time: timeText(new Date().toISOString()), title: "网格调整", text: "版本 " + (JSON.parse(e.data).payload || e.data) });
    refreshSoon();
  });
  es.addEventListener("workers", (e) => {
    seen();
    const d = JSON.parse(e.data);
    if (!layers.workers || d.lon == null) return;
    layers.workers.eachLayer((m) => {
      if ((m.feature.properties.id ?? m.feature.properties.worker_id) === (d.id ?? d.worker_id)) m.setLatLng(shift([d.lat, d.lon]));
    });
  });
}

// ------------------------------------------------------------------ start
async function start() {
  const t0 = performance.now();
  const tileInfo = await getJSON("/tiles");
  const b = tileInfo.bounds;
  if (b) {
    state.cityBounds = L.latLngBounds(shift([b[1], b[0]]), shift([b[3], b[2]]));
    map.fitBounds(state.cityBounds, { paddingTopLeft: [360, 70], paddingBottomRight: [440, 20] });
  } else map.setView([36.88, 118.8], 10);
  getJSON("/areas?level=district").then((district) => L.geoJSON(shiftGeoJSON(district, crs), { pane: "areas",
    interactive: false, style: { color: "#7fd1ff", weight: 3, fill: false, className: "district-glow" } }).addTo(map))
    .catch((err) => console.warn(err));
  await setupLayers(tileInfo);
  await tiles.loaded; // the map first; panels and point layers after, so they do not compete for the server
  updateCounts(); fillTownSelect(); labels.paint();
  window.onemapRenderMs = performance.now();
  body.dataset.renderMs = Math.round(performance.now() - t0);
  body.dataset.ready = "true";
  document.getElementById("area-select").addEventListener("change", (e) => { flyToTown(e.target.value); loadKpis(); });
  connectLive();
  addThings().then(() => {
    renderSwitcher(); updateCounts();
    body.dataset.completeMs = Math.round(performance.now() - t0);
    window.onemapCompleteMs = performance.now();
    body.dataset.complete = "true";
  });
  loadKpis(); loadRanking(); loadFeed();
}

window.onemap = { map, layers, state, labels };
start().catch((err) => { document.getElementById("info").innerHTML = `<h2>加载失败</h2><p>${esc(err.message)}</p>`; });
