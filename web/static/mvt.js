// Vector tiles from /tiles/{layer}/{z}/{x}/{y}.pbf drawn on canvas tiles, with hit-testing and label points.
// Why our own small renderer: the big screen needs per-feature styling from live properties (open
// tickets, cards), labels placed once per feature, and clicks, over Leaflet 1.9 without WebGL.
import { PbfReader } from "/vendor/pbf/index.js";
import { VectorTile } from "/vendor/@mapbox/vector-tile/index.js";

const TILE = 256;

function tileKey(c) { return c.z + "/" + c.x + "/" + c.y; }

// Parse one tile into plain objects: {layerName: [{props, type, rings (tile px), id}]}
function parse(buf) {
  const vt = new VectorTile(new PbfReader(buf));
  const out = {};
  for (const name of Object.keys(vt.layers)) {
    const layer = vt.layers[name];
    const scale = TILE / layer.extent;
    const feats = [];
    for (let i = 0; i < layer.length; i++) {
      const f = layer.feature(i);
      const rings = f.loadGeometry().map((ring) => ring.map((p) => [p.x * scale, p.y * scale]));
      feats.push({ id: f.id, type: f.type, props: f.properties, rings });
    }
    out[name] = feats;
  }
  return out;
}

function insideRings(rings, x, y) {
  let inside = false; // even-odd over every ring: holes cancel out
  for (const ring of rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const [xi, yi] = ring[i], [xj, yj] = ring[j];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

export const MVTLayer = L.GridLayer.extend({
  options: { tileSize: TILE, updateWhenZooming: false, keepBuffer: 2, crs: "wgs84", maxNativeZoom: 18 },

  initialize(name, options) {
    L.setOptions(this, options);
    this.name = name;
    this.data = new Map(); // tile key → parsed layers
    this.canvases = new Map();
    this.version = 0;
    this.loadedCount = 0;
  },

  url(c) {
    const q = this.options.crs === "gcj02" ? "?crs=gcj02" : "";
    return "/tiles/" + this.name + "/" + c.z + "/" + c.x + "/" + c.y + ".pbf" + q + (this.version ? (q ? "&" : "?") + "v=" + this.version : "");
  },

  createTile(coords, done) {
    const canvas = L.DomUtil.create("canvas", "mvt-tile");
    const ratio = window.devicePixelRatio || 1;
    canvas.width = canvas.height = TILE * ratio;
    canvas.style.width = canvas.style.height = TILE + "px";
    const key = tileKey(coords);
    this.canvases.set(key, canvas);
    fetch(this.url(coords)).then((res) => {
      if (!res.ok) throw new Error(this.name + " tile " + key + " → " + res.status);
      return res.arrayBuffer();
    }).then((buf) => {
      this.data.set(key, buf.byteLength ? parse(buf) : {});
      this.draw(key);
      this.loadedCount++;
      this.fire("tiledata", { key });
      done(null, canvas);
    }).catch((err) => done(err, canvas));
    return canvas;
  },

  onAdd(map) {
    L.GridLayer.prototype.onAdd.call(this, map);
    this.on("tileunload", (e) => { const k = tileKey(e.coords); this.data.delete(k); this.canvases.delete(k); });
  },

  draw(key) {
    const canvas = this.canvases.get(key), data = this.data.get(key);
    if (!canvas || !data) return;
    const ctx = canvas.getContext("2d");
    const ratio = canvas.width / TILE;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, TILE, TILE);
    const z = Number(key.split("/")[0]);
    for (const name of Object.keys(data)) {
      if (name.endsWith("_labels")) continue;
      for (const f of data[name]) this.drawFeature(ctx, f, this.options.style(f.props, z, name, f));
    }
  },

  drawFeature(ctx, f, s) {
    if (!s) return;
    if (f.type === 1) {
      for (const ring of f.rings) for (const [x, y] of ring) {
        ctx.beginPath();
        ctx.arc(x, y, s.radius || 4, 0, 2 * Math.PI);
        if (s.fill) { ctx.fillStyle = s.fill; ctx.fill(); }
        if (s.stroke) { ctx.strokeStyle = s.stroke; ctx.lineWidth = s.width || 1; ctx.stroke(); }
        if (s.text) {
          ctx.fillStyle = s.textColor || "#fff";
          ctx.font = "bold " + (s.fontSize || 12) + "px 'WenQuanYi Micro Hei', sans-serif";
          ctx.textAlign = "center"; ctx.textBaseline = "middle";
          ctx.fillText(s.text, x, y + 0.5);
        }
      }
      return;
    }
    ctx.beginPath();
    for (const ring of f.rings) {
      ring.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (f.type === 3) ctx.closePath();
    }
    if (s.fill && f.type === 3) { ctx.fillStyle = s.fill; ctx.fill("evenodd"); }
    if (s.stroke) {
      ctx.strokeStyle = s.stroke; ctx.lineWidth = s.width || 1;
      ctx.setLineDash(s.dash || []);
      ctx.stroke();
    }
  },

  restyle() { for (const key of this.data.keys()) this.draw(key); },

  // Fetch the visible tiles again (live updates) without blanking the screen first.
  refresh() {
    this.version++;
    for (const key of [...this.data.keys()]) {
      const [z, x, y] = key.split("/").map(Number);
      fetch(this.url({ z, x, y })).then((r) => r.arrayBuffer()).then((buf) => {
        if (!this.canvases.has(key)) return;
        this.data.set(key, buf.byteLength ? parse(buf) : {});
        this.draw(key);
        this.fire("tiledata", { key });
      });
    }
  },

  // Label points of every loaded tile: [{latlng, props, layer}] (each feature once: it is in one tile).
  labels() {
    const out = [];
    if (!this._map) return out;
    for (const [key, data] of this.data) {
      const [z, x, y] = key.split("/").map(Number);
      for (const name of Object.keys(data)) {
        if (!name.endsWith("_labels")) continue;
        for (const f of data[name]) {
          const [px, py] = f.rings[0][0];
          const latlng = this._map.unproject([x * TILE + px, y * TILE + py], z);
          out.push({ latlng, props: f.props, layer: name });
        }
      }
    }
    return out;
  },

  // The feature under a map point: polygons by containment, points within their radius.
  hit(latlng) {
    const map = this._map;
    const z = Math.min(Math.round(map.getZoom()), this.options.maxNativeZoom);
    const p = map.project(latlng, z);
    const x = Math.floor(p.x / TILE), y = Math.floor(p.y / TILE);
    const data = this.data.get(z + "/" + x + "/" + y);
    if (!data) return null;
    const px = p.x - x * TILE, py = p.y - y * TILE;
    for (const name of Object.keys(data)) {
      if (name.endsWith("_labels")) continue;
      for (const f of data[name]) {
        if (f.type === 3 && insideRings(f.rings, px, py)) return { layer: name, props: f.props };
        if (f.type === 1) {
          const s = this.options.style(f.props, z, name, f) || {};
          const r = (s.radius || 4) + 3;
          if (f.rings.some((ring) => ring.some(([fx, fy]) => (fx - px) ** 2 + (fy - py) ** 2 <= r * r))) {
            return { layer: name, props: f.props, latlng: map.unproject([x * TILE + f.rings[0][0][0], y * TILE + f.rings[0][0][1]], z) };
          }
        }
      }
    }
    return null;
  },
});

// One canvas over the whole map for labels, redrawn after moves: no label is cut at a tile edge,
// and a simple collision test keeps them legible (earlier entries win).
export const LabelCanvas = L.Layer.extend({
  initialize(source) { this.source = source; this.drawn = 0; },
  onAdd(map) {
    this.canvas = L.DomUtil.create("canvas", "label-canvas leaflet-zoom-hide");
    map.getPane(this.options.pane || "overlayPane").appendChild(this.canvas);
    map.on("moveend zoomend resize", this.redraw, this);
    this.redraw();
  },
  onRemove(map) { L.DomUtil.remove(this.canvas); map.off("moveend zoomend resize", this.redraw, this); },
  redraw() {
    if (!this._map) return;
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.paint());
  },
  paint() {
    const map = this._map, size = map.getSize(), ratio = window.devicePixelRatio || 1;
    const topLeft = map.containerPointToLayerPoint([0, 0]);
    L.DomUtil.setPosition(this.canvas, topLeft);
    this.canvas.width = size.x * ratio; this.canvas.height = size.y * ratio;
    this.canvas.style.width = size.x + "px"; this.canvas.style.height = size.y + "px";
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const boxes = [];
    let drawn = 0;
    for (const item of this.source(map.getZoom())) {
      const pt = map.latLngToContainerPoint(item.latlng);
      if (pt.x < -50 || pt.y < -20 || pt.x > size.x + 50 || pt.y > size.y + 20) continue;
      ctx.font = (item.bold ? "bold " : "") + item.size + "px 'WenQuanYi Micro Hei', sans-serif";
      const w = ctx.measureText(item.text).width, h = item.size;
      const box = [pt.x - w / 2 - 2, pt.y - h / 2 - 2, pt.x + w / 2 + 2, pt.y + h / 2 + 2];
      if (boxes.some((b) => b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3])) continue;
      boxes.push(box);
      ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.lineWidth = 3; ctx.strokeStyle = "rgba(4, 12, 24, 0.85)"; ctx.strokeText(item.text, pt.x, pt.y);
      ctx.fillStyle = item.color; ctx.fillText(item.text, pt.x, pt.y);
      drawn++;
    }
    this.drawn = drawn;
  },
});
