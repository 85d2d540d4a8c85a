// The analysts' export page: choose layer, area, time and format → a download link to /export/{layer}.
import { getJSON, hasPath, esc } from "/static/common.js";
import { shiftGeoJSON } from "/static/gcj02.js";

const body = document.body;
const crs = body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84";
const $ = (id) => document.getElementById(id);
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
  $("layer-about").textContent = layer.description || "";
  const url = link();
  $("download").href = url;
  $("link").textContent = url;
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
