// The analysts' export page: choose layer, area, time and format → a download link to /export/{layer}.
import { getJSON, hasPath, esc } from "/static/common.js";
import { shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const $ = (id) => document.getElementById(id);
// What each layer holds, for analysts (the catalogue's own descriptions are English).
const ABOUT = { grids: "网格：15 位统一编码，所属村/社区、镇街、户数和人口。", areas: "行政区划：区县、镇街、村/社区（12 位统计用区划代码）。",
  towns: "镇街道边界及区划代码。", villages: "村/社区边界及区划代码。", tickets: "事件工单：按受理时间筛选；不含报告人姓名和电话。",
  sensors: "监测点：环境与物联网传感器的位置、类型和状态。", worker_tracks: "网格员巡查轨迹：每人每天一条线（剔除异常定位点），含点数、起止时间和长度；按定位时间筛选，不含手机号。",
  detections: "视频识别结果：摄像头识别到的行人、车辆等目标及其地面位置、置信度，按识别时间筛选。",
  alarms: "视频告警：人员聚集、违章停车等告警的起止时间、最大数量和关联工单，按告警开始时间筛选。" };
const FORMATS = { shp: "Shapefile（zip，含 .prj/.cpg）", gpkg: "GeoPackage", geojson: "GeoJSON", csv: "CSV（Excel）" };
const map = L.map("map", { attributionControl: false }).setView([36.88, 118.8], 9);
if (body.dataset.tileUrl) L.tileLayer(body.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
const areaLayer = L.geoJSON(null, { style: { color: "#ffd166", weight: 2, fillOpacity: 0.15 } }).addTo(map);
let catalog = null, towns = null;

function link() {
  const layer = catalog.layers.find((l) => l.name === $("layer").value);
  const params = new URLSearchParams({ format: $("format").value });
  const area = $("village").value || $("town").value;
  if (area) params.set("area", area);
  if (layer.time_filter && $("from").value) params.set("from", $("from").value + "T00:00:00+08:00");
  if (layer.time_filter && $("to").value) params.set("to", $("to").value + "T00:00:00+08:00");
  if ($("format").value === "shp") params.set("encoding", $("encoding").value);
  if ($("crs").value) params.set("crs", $("crs").value);
  if ($("names").value === "zh") params.set("names", "zh");
  return `/export/${layer.name}?${params}`;
}

function update() {
  const layer = catalog.layers.find((l) => l.name === $("layer").value);
  document.querySelectorAll(".time-only").forEach((el) => (el.hidden = !layer.time_filter));
  document.querySelectorAll(".shp-only").forEach((el) => (el.hidden = $("format").value !== "shp"));
  $("layer-about").textContent = ABOUT[layer.name] || layer.description || "";
  const url = link();
  $("download").href = url;
  $("link").textContent = url;
  count(url);
}

let counting = 0;
async function count(url) {
  const mine = ++counting;
  $("count").textContent = "正在统计要素数…";
  body.dataset.count = "";
  const params = new URLSearchParams(url.split("?")[1]);
  const keep = new URLSearchParams();
  for (const k of ["area", "from", "to"]) if (params.get(k)) keep.set(k, params.get(k));
  try {
    const res = await getJSON(`/export/${$("layer").value}/count?${keep}`);
    if (mine !== counting) return;
    $("count").textContent = `共 ${res.count.toLocaleString("zh-CN")} 个要素`;
    body.dataset.count = res.count;
  } catch (err) {
    if (mine === counting) $("count").textContent = "无法统计：" + esc(err.message);
  }
}

async function showArea() {
  const code = $("village").value || $("town").value;
  areaLayer.clearLayers();
  if (!code) { towns && areaLayer.addData(towns); }
  else {
    const level = $("village").value ? "village" : "town";
    const fc = await getJSON(`/areas?level=${level}` + (level === "village" ? "&parent=" + $("town").value : ""));
    areaLayer.addData({ type: "FeatureCollection", features: fc.features.filter((f) => f.properties.code === code) });
  }
  if (areaLayer.getLayers().length) map.fitBounds(areaLayer.getBounds());
}

async function loadVillages() {
  const v = $("village");
  v.length = 1;
  if (!$("town").value) return;
  const fc = await getJSON("/areas?level=village&parent=" + $("town").value);
  for (const f of fc.features) v.add(new Option(f.properties.name, f.properties.code));
}

async function start() {
  if (!(await hasPath("/export/{layer}"))) { $("layer-about").textContent = "导出服务尚未启用"; return; }
  catalog = await getJSON("/export");
  for (const l of catalog.layers) $("layer").add(new Option(l.title, l.name));
  for (const f of catalog.formats) $("format").add(new Option(FORMATS[f] || f, f));
  for (const e of catalog.encodings) $("encoding").add(new Option(e.toUpperCase(), e));
  towns = shiftGeoJSON(await getJSON("/areas?level=town"), crs);
  for (const f of towns.features) $("town").add(new Option(f.properties.name, f.properties.code));
  $("export-form").addEventListener("change", update);
  $("town").addEventListener("change", async () => { await loadVillages(); update(); showArea(); });
  $("village").addEventListener("change", showArea);
  update(); showArea();
  body.dataset.ready = "true";
}
start().catch((err) => { $("layer-about").innerHTML = esc(err.message); });
