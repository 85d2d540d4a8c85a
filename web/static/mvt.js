// Vector tiles from /tiles/{layer}/{z}/{x}/{y}.pbf drawn on canvas tiles, with hit-testing and label points.
// Why our own small renderer: the big screen needs per-feature styling from live properties (open
// tickets, cards), labels placed once per feature, and clicks, over Leaflet 1.9 without WebGL.
import { PbfReader } from "/vendor/pbf/index.js";
import { VectorTile } from "/vendor/@mapbox/vector-tile/index.js";

function tileKey(c) { return c.z + "/" + c.x + "/" + c.y; }

// Parse one tile into plain objects: {layerName: [{props, type, rings (tile px), id}]}
function parse(buf, size) {
  const vt = new VectorTile(new PbfReader(buf));
  const out = {};
  for (const name of Object.keys(vt.layers)) {
    const layer = vt.layers[name];
    const scale = size / layer.extent;
    const feats = [];
    for (let i = 0; i < layer.length; i++) {
      const f = layer.feature(i); // rings stay in tile units (no copies): scaled while drawing
      feats.push({ id: f.id, type: f.type, props: f.properties, rings: f.loadGeometry(), sc: scale });
    }
    out[name] = feats;
  }
  return out;
}

function insideRings(rings, x, y) {
  let inside = false; // even-odd over every ring: holes cancel out
  for (const ring of rings) {
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      const xi = ring[i].x, yi = ring[i].y, xj = ring[j].x, yj = ring[j].y;
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

// Tiles of 512 px fetched one zoom lower (zoomOffset -1) by default: a quarter of the requests of 256 px
// tiles for the same screen. Keys and drawing use the map's zoom; only the URL uses the offset.
export const MVTLayer = L.GridLayer.extend({
  options: { tileSize: 512, zoomOffset: -1, updateWhenZooming: false, keepBuffer: 1, crs: "wgs84", maxNativeZoom: 19 },

  initialize(name, options) {
    L.setOptions(this, options);
    this.name = name;
    this.size = this.options.tileSize;
    this.hidden = new Set(); // MVT layer names not drawn (the layer switcher)
    this.data = new Map(); // tile key → parsed layers
    this.canvases = new Map();
    this.version = 0;
    this.loadedCount = 0;
    this.stats = { parseMs: 0, drawMs: 0, bytes: 0 };
  },

  url(c) {
    const q = this.options.crs === "gcj02" ? "?crs=gcj02" : "";
    return "/tiles/" + this.name + "/" + (c.z + this.options.zoomOffset) + "/" + c.x + "/" + c.y + ".pbf" + q + (this.version ? (q ? "&" : "?") + "v=" + this.version : "");
  },

  createTile(coords, done) {
    const canvas = L.DomUtil.create("canvas", "mvt-tile");
    const ratio = window.devicePixelRatio || 1;
    canvas.width = canvas.height = this.size * ratio;
    canvas.style.width = canvas.style.height = this.size + "px";
    const key = tileKey(coords);
    this.canvases.set(key, canvas);
    fetch(this.url(coords)).then((res) => {
      if (!res.ok) throw new Error(this.name + " tile " + key + " → " + res.status);
      return res.arrayBuffer();
    }).then((buf) => {
      const t0 = performance.now();
      this.data.set(key, buf.byteLength ? parse(buf, this.size) : {});
      const t1 = performance.now();
      this.draw(key);
      this.stats.parseMs += t1 - t0; this.stats.drawMs += performance.now() - t1; this.stats.bytes += buf.byteLength;
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
    const ratio = canvas.width / this.size;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this.size, this.size);
    const z = this._map ? this._map.getZoom() : Number(key.split("/")[0]);
    for (const name of this.order(data)) {
      for (const f of data[name]) this.drawFeature(ctx, f, this.options.style(f.props, z, name, f));
    }
  },

  drawFeature(ctx, f, s) {
    if (!s) return;
    const sc = f.sc;
    if (f.type === 1) {
      for (const ring of f.rings) for (const p of ring) {
        const x = p.x * sc, y = p.y * sc;
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
      ctx.moveTo(ring[0].x * sc, ring[0].y * sc);
      for (let i = 1; i < ring.length; i++) ctx.lineTo(ring[i].x * sc, ring[i].y * sc);
      if (f.type === 3) ctx.closePath();
    }
    if (s.fill && f.type === 3) { ctx.fillStyle = s.fill; ctx.fill("evenodd"); }
    if (s.stroke) {
      ctx.strokeStyle = s.stroke; ctx.lineWidth = s.width || 1;
      ctx.setLineDash(s.dash || []);
      ctx.stroke();
    }
  },

  // Drawing order: the options' order first (e.g. grids under towns under tickets), hidden ones skipped.
  order(data) {
    const names = Object.keys(data).filter((n) => !n.endsWith("_labels") && !this.hidden.has(n));
    const rank = (n) => { const i = (this.options.order || []).indexOf(n); return i < 0 ? 99 : i; };
    return names.sort((a, b) => rank(a) - rank(b));
  },

  setVisible(name, on) { if (on) this.hidden.delete(name); else this.hidden.add(name); this.restyle(); },

  restyle() { for (const key of this.data.keys()) this.draw(key); },

  // Fetch the visible tiles again (live updates) without blanking the screen first.
  refresh() {
    this.version++;
    for (const key of [...this.data.keys()]) {
      const [z, x, y] = key.split("/").map(Number);
      fetch(this.url({ z, x, y })).then((r) => r.arrayBuffer()).then((buf) => {
        if (!this.canvases.has(key)) return;
        this.data.set(key, buf.byteLength ? parse(buf, this.size) : {});
        this.draw(key);
        this.fire("tiledata", { key });
      });
    }
  },

  // Label points of one layer in every loaded tile of the current zoom: [{latlng, props}] (each
  // feature once: a label point is kept only in the tile that holds it).
  labels(layer) {
    const out = [];
    if (!this._map || this.hidden.has(layer)) return out;
    for (const [key, data] of this.data) {
      const [z, x, y] = key.split("/").map(Number);
      if (z !== this._tileZoom) continue;
      for (const f of data[layer + "_labels"] || []) {
        const p = f.rings[0][0];
        out.push({ latlng: this._map.unproject([x * this.size + p.x * f.sc, y * this.size + p.y * f.sc], z), props: f.props });
      }
    }
    return out;
  },

  // The feature under a map point: polygons by containment, points within their radius.
  hit(latlng) {
    const map = this._map, S = this.size;
    const z = this._tileZoom;
    const p = map.project(latlng, z);
    const x = Math.floor(p.x / S), y = Math.floor(p.y / S);
    const data = this.data.get(z + "/" + x + "/" + y);
    if (!data) return null;
    const px = p.x - x * S, py = p.y - y * S;
    const names = this.order(data).reverse(); // topmost first
    for (const name of names) {
      if (this.options.clickable && !this.options.clickable.includes(name)) continue;
      for (const f of data[name]) {
        if (f.type === 3 && insideRings(f.rings, px / f.sc, py / f.sc)) return { layer: name, props: f.props };
        if (f.type === 1) {
          const s = this.options.style(f.props, map.getZoom(), name, f) || {};
          const r = (s.radius || 4) + 3;
          const q = f.rings[0][0], fx = q.x * f.sc, fy = q.y * f.sc;
          if ((fx - px) ** 2 + (fy - py) ** 2 <= r * r) {
            return { layer: name, props: f.props, latlng: map.unproject([x * S + fx, y * S + fy], z) };
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
