// 随手拍: the public report form and the follow-up page (no account).
"use strict";
const $ = (id) => document.getElementById(id);
const STARS = { 5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意" };

async function call(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.detail) || `HTTP ${response.status}`);
  return body;
}

// The base map: the big screen's registry tiles (grid, village and town outlines; town and village
// names) from this server, served to the public without grid names (/public/tiles/base), over the
// configured raster base map (ONEMAP_TILE_URL) when it is in WGS 84 like the picked points. Nothing
// from the internet; no tickets, workers or counts.
const BASE_STYLE = {
  grids: (z) => (z < 12 ? null : { fill: "rgba(255,255,255,0.55)", stroke: "#b9c7d8", width: z >= 14 ? 1 : 0.6 }),
  villages: (z) => (z < 10 ? null : { stroke: "#7f97b5", width: z >= 13 ? 1.4 : 0.9, dash: [4, 3] }),
  towns: () => ({ fill: "rgba(219,231,245,0.35)", stroke: "#0c4a8c", width: 2 }),
  districts: () => ({ stroke: "#0c4a8c", width: 3 }),
};

async function baseMap(map) {
  const body = document.body;
  if (body.dataset.tileUrl && body.dataset.tileCrs !== "gcj02") L.tileLayer(body.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
  const { MVTLayer, Overlay, LabelSet } = await import("/static/mvt.js");
  map.createPane("base").style.zIndex = 250;
  map.createPane("names").style.zIndex = 450;
  map.getPane("names").style.pointerEvents = "none";
  const base = new MVTLayer("base", { root: "/public/tiles/", pane: "base", order: ["grids", "villages", "towns", "districts"],
    style: (p, z, name) => BASE_STYLE[name] && BASE_STYLE[name](z) });
  const names = new LabelSet((z) => [
    ...base.labels("towns").map((l) => ({ latlng: l.latlng, text: l.props.name, size: z >= 13 ? 16 : 14, color: "#0c3a6e", bold: true, halo: "rgba(255,255,255,0.92)" })),
    ...(z >= 12.5 ? base.labels("villages").map((l) => ({ latlng: l.latlng, text: l.props.name, size: 13, color: "#3d5675", bold: false, halo: "rgba(255,255,255,0.92)" })) : [])]);
  const overlay = new Overlay({ pane: "names" }).addTo(map);
  overlay.add(names);
  base.on("tiledata", () => overlay.redraw());
  base.once("load", () => { map.getContainer().dataset.base = "1"; });
  base.addTo(map);
  window.reportBase = base;
}

// A small map to place the report by a tap, over the base map. The town under the tap is named back
// to the citizen.
function pickMap(onPick) {
  if (!window.L) return null;
  const map = L.map("pick-map", { zoomControl: true, attributionControl: false, tap: true });
  window.reportMap = map;  // the browser test reads pixel positions from it
  baseMap(map).catch((e) => console.warn("base map", e));
  let marker = null;
  let town = null;
  const mark = (p, pan) => {
    const at = [p.lat, p.lon];
    if (marker) marker.setLatLng(at); else marker = L.circleMarker(at, { radius: 9, color: "#c0392b", weight: 3, fillOpacity: 0.6 }).addTo(map);
    if (pan) map.panTo(at);
  };
  call("/public/outline").then((fc) => {
    const towns = L.geoJSON(fc, {
      style: { stroke: false, fillColor: "#dbe7f5", fillOpacity: 0.01 },  // the base draws them: these name a tap
      onEachFeature: (f, layer) => {
        layer.bindTooltip(f.properties.name, { sticky: true, direction: "top" });
        layer.on("click", () => { town = f.properties.name; });  // fires before the map's click
      },
    }).addTo(map);
    if (towns.getLayers().length) map.fitBounds(towns.getBounds()); else map.setView([36.88, 118.74], 11);
    map.getContainer().dataset.ready = "1";
  }).catch(() => { map.setView([36.88, 118.74], 11); map.getContainer().dataset.ready = "1"; });
  map.on("click", (ev) => {
    const p = { lon: Number(ev.latlng.lng.toFixed(6)), lat: Number(ev.latlng.lat.toFixed(6)) };
    mark(p, false);
    const coarse = map.getZoom() < 15;  // a tap on the whole city is ±1 km: zoom in for a second, exact tap
    if (coarse) map.setView(ev.latlng, 16);
    onPick(p, town, coarse);
    town = null;
  });
  return { mark };
}

function reportPage() {
  let point = null;
  call("/public/categories").then((cats) => {
    const groups = {};
    for (const c of cats) (groups[c.major_name] = groups[c.major_name] || []).push(c);
    for (const [major, items] of Object.entries(groups)) {
      const g = document.createElement("optgroup");
      g.label = major;
      for (const c of items) g.append(new Option(c.name, c.code));
      $("category").append(g);
    }
  });
  const map = pickMap((picked, town, coarse) => {
    point = picked;
    $("place").textContent = `位置：${town ? `${town} · ` : ""}${point.lon.toFixed(5)}, ${point.lat.toFixed(5)}（地图选点${coarse ? "，已放大，可再点一次精确定位" : ""}）`;
  });
  $("use-location").addEventListener("click", () => {
    $("place").textContent = "正在定位…";
    navigator.geolocation.getCurrentPosition((p) => {
      point = { lon: p.coords.longitude, lat: p.coords.latitude };
      $("place").textContent = `位置：${point.lon.toFixed(5)}, ${point.lat.toFixed(5)}（已定位）`;
      if (map) map.mark(point, true);
    }, (e) => { $("place").textContent = `无法定位：${e.message}，请点地图选点或填写地址`; }, { enableHighAccuracy: true, timeout: 15000 });
  });
  $("lookup").addEventListener("click", (ev) => {
    ev.preventDefault();
    const code = prompt("请输入查询码");
    if (code) location.href = `/report/${encodeURIComponent(code.trim().toUpperCase())}`;
  });
  $("public-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    if (!point && !form.get("address").trim()) { $("msg").textContent = "请点地图选点、使用定位或填写地址"; return; }
    if (point) { form.append("lon", point.lon); form.append("lat", point.lat); }
    if (!$("photo").files.length) form.delete("photo");
    $("send").disabled = true;
    $("msg").textContent = "提交中…";
    try {
      const out = await call("/public/reports", { method: "POST", body: form });
      $("public-form").hidden = true;
      $("done").hidden = false;
      $("code").textContent = out.code;
      $("follow-link").href = `/report/${out.code}`;
      $("msg").textContent = "";
    } catch (e) {
      $("msg").textContent = `提交失败：${e.message}`;
      $("send").disabled = false;
    }
  });
}

function followPage(code) {
  const show = (r) => {
    $("title").textContent = `${r.category_name} · 查询码 ${r.code}`;
    $("summary").textContent = `${r.town_name || ""} ${r.village_name || ""}：${r.description}`;
    const verdict = r.can_rate ? (r.satisfied === false ? " · 已重新办理，请再次评价" : "")
      : r.satisfied === true ? " · 您的评价：满意" : r.satisfied === false ? " · 您的评价：不满意，已退回重新办理" : "";
    $("state").textContent = `当前状态：${r.state_name}${verdict}`;
    $("history").innerHTML = "";
    for (const h of r.history) {
      const li = document.createElement("li");
      li.textContent = `${new Date(h.at).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai" })}　${h.text}`;
      $("history").append(li);
    }
    $("rate").hidden = !r.can_rate;
  };
  call(`/public/reports/${encodeURIComponent(code)}`).then(show)
    .catch((e) => { $("title").textContent = "未找到该查询码"; $("msg").textContent = e.message; });
  for (const b of document.querySelectorAll("#stars button")) {
    b.addEventListener("click", async () => {
      try {
        show(await call(`/public/reports/${encodeURIComponent(code)}/rating`, { method: "POST",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ satisfaction: Number(b.dataset.score) }) }));
        $("msg").textContent = `感谢您的评价：${STARS[b.dataset.score]}${Number(b.dataset.score) <= 2 ? "。已退回处理单位重新办理，办结后请再次评价" : ""}`;
      } catch (e) { $("msg").textContent = `评价失败：${e.message}`; }
    });
  }
}

if (document.body.dataset.code) followPage(document.body.dataset.code); else reportPage();
