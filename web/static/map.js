// OneMap registry map: towns, villages and grids from the API, drawn with Leaflet (served locally).
(function () {
  "use strict";
  const el = document.getElementById("map");
  const map = L.map(el, { preferCanvas: true, zoomControl: true, attributionControl: false });
  const tileUrl = el.dataset.tileUrl;
  if (tileUrl) L.tileLayer(tileUrl, { maxZoom: 19 }).addTo(map);
  map.setView([36.88, 118.8], 10);

  const palette = ["#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8ab17d", "#6d9dc5", "#b56576", "#7fc8f8"];
  const colour = (code) => palette[parseInt(code.slice(6, 9), 10) % palette.length];

  function info(props) {
    const rows = [["编码", props.code], ["名称", props.name], ["类型", props.kind === "dedicated" ? "专属网格" : "基础网格"],
      ["村/社区", props.village_name], ["镇/街道", props.town_name], ["户数", props.households], ["人口", props.population]];
    document.getElementById("info").innerHTML = "<h2>" + props.name + "</h2><dl>" +
      rows.map(([k, v]) => "<dt>" + k + "</dt><dd>" + (v ?? "—") + "</dd>").join("") + "</dl>";
  }

  async function getJSON(url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(url + " → " + res.status);
    return res.json();
  }

  async function load() {
    const [grids, towns] = await Promise.all([getJSON("/grids"), getJSON("/areas?level=town")]);
    const gridLayer = L.geoJSON(grids, {
      style: (f) => ({ color: "#5fb3ff", weight: 0.6, fillColor: colour(f.properties.code), fillOpacity: 0.35 }),
      onEachFeature: (f, layer) => layer.on("click", () => info(f.properties)),
    }).addTo(map);
    L.geoJSON(towns, { style: { color: "#ffd166", weight: 2.2, fill: false }, interactive: false }).addTo(map);
    map.fitBounds(gridLayer.getBounds());
    document.getElementById("grid-count").textContent = grids.features.length;
    document.getElementById("town-count").textContent = towns.features.length;
    const villages = new Set(grids.features.map((f) => f.properties.village_code));
    document.getElementById("village-count").textContent = villages.size;
    document.body.dataset.loaded = "true";
  }
  load().catch((err) => { document.getElementById("info").innerHTML = "<h2>加载失败</h2><p>" + err.message + "</p>"; });
})();
