// WGS84 → GCJ-02 (the published formula, as gis/coords.py): lays point overlays (markers, drawn
// editor shapes) on an Amap-style base map. Tiles are shifted server-side (?crs=gcj02); coordinates
// drawn on such a map are sent back with crs "gcj02" and converted exactly by the server.
const A = 6378245.0, EE = 0.00669342162296594323;

function outOfChina(lon, lat) { return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271; }

function delta(lon, lat) {
  const x = lon - 105.0, y = lat - 35.0, PI = Math.PI;
  let dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x))
    + (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0
    + (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0
    + (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
  let dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x))
    + (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0
    + (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0
    + (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
  const radlat = lat / 180.0 * PI, magic = 1.0 - EE * Math.sin(radlat) ** 2, sqrtmagic = Math.sqrt(magic);
  dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrtmagic) * PI);
  dlon = (dlon * 180.0) / (A / sqrtmagic * Math.cos(radlat) * PI);
  return [dlon, dlat];
}

export function toGcj02(lon, lat) {
  if (outOfChina(lon, lat)) return [lon, lat];
  const [dlon, dlat] = delta(lon, lat);
  return [lon + dlon, lat + dlat];
}

// A function shifting [lat, lng] for display: identity unless the base map is GCJ-02.
export function shifter(crs) {
  if (crs !== "gcj02") return (latlng) => latlng;
  return (latlng) => { const [lon, lat] = toGcj02(latlng[1], latlng[0]); return [lat, lon]; };
}

// Shift every position of a GeoJSON object in place (for GeoJSON overlays over a GCJ-02 base map).
export function shiftGeoJSON(obj, crs) {
  if (crs !== "gcj02" || !obj) return obj;
  const walk = (c) => (typeof c[0] === "number" ? toGcj02(c[0], c[1]) : c.map(walk));
  const geom = (g) => { if (g && g.coordinates) g.coordinates = walk(g.coordinates); };
  if (obj.type === "FeatureCollection") obj.features.forEach((f) => geom(f.geometry));
  else if (obj.type === "Feature") geom(obj.geometry);
  else geom(obj);
  return obj;
}
