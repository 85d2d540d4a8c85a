// Vector tiles from /tiles/{layer}/{z}/{x}/{y}.pbf drawn on canvas tiles, with hit-testing and label points;
// and one canvas over the map for labels and many point symbols (workers, cameras, ticket bubbles).
// Why our own small renderer: the big screen needs per-feature styling from live data (open tickets,
// cards) without fetching tiles again, labels placed once per feature, and clicks, over Leaflet 1.9
// without WebGL. Features of one style are drawn as one path: a few fill/stroke calls per tile, not
// thousands (the browser of a command hall may well rasterise on the CPU).
import { PbfReader } from "/vendor/pbf/index.js";

function tileKey(c) { return c.z + "/" + c.x + "/" + c.y; }

// Mapbox Vector Tile 2.1, read straight into what drawing needs: {layerName: [{id, type (1 point,
// 2 line, 3 polygon), props, rings, sc}]}, each ring a flat [x0, y0, x1, y1, …] in tile units (sc:
// tile pixels per unit). Flat number arrays rather than a point object per vertex (as the
// @mapbox/vector-tile reader makes): on the big screen's first view that halved the parse time.
function parse(buf, size) {
  const pbf = new PbfReader(buf);
  const out = {};
  while (pbf.pos < pbf.length) {
    const tag = pbf.readVarint();
    if (tag >> 3 !== 3) { pbf.skip(tag); continue; } // 3: a layer
    const end = pbf.readVarint() + pbf.pos;
    const layer = readLayer(pbf, end, size);
    out[layer.name] = layer.feats;
  }
  return out;
}

function readLayer(pbf, end, size) {
  let name = "", extent = 4096;
  const keys = [], values = [], spans = [];
  while (pbf.pos < end) { // features come before the keys and values they use: note where, read after
    const tag = pbf.readVarint(), field = tag >> 3;
    if (field === 1) name = pbf.readString();
    else if (field === 2) { const e = pbf.readVarint() + pbf.pos; spans.push(pbf.pos, e); pbf.pos = e; }
    else if (field === 3) keys.push(pbf.readString());
    else if (field === 4) values.push(readValue(pbf));
    else if (field === 5) extent = pbf.readVarint();
    else pbf.skip(tag);
  }
  const sc = size / extent, feats = [];
  for (let i = 0; i < spans.length; i += 2) feats.push(readFeature(pbf, spans[i], spans[i + 1], keys, values, sc));
  pbf.pos = end;
  return { name, feats };
}

function readValue(pbf) {
  const end = pbf.readVarint() + pbf.pos;
  let v = null;
  while (pbf.pos < end) {
    const tag = pbf.readVarint(), field = tag >> 3;
    if (field === 1) v = pbf.readString();
    else if (field === 2) v = pbf.readFloat();
    else if (field === 3) v = pbf.readDouble();
    else if (field === 4) v = pbf.readVarint(true);
    else if (field === 5) v = pbf.readVarint();
    else if (field === 6) v = pbf.readSVarint();
    else if (field === 7) v = pbf.readBoolean();
    else pbf.skip(tag);
  }
  return v;
}

function readFeature(pbf, start, end, keys, values, sc) {
  const f = { id: undefined, type: 0, props: {}, rings: [], sc };
  pbf.pos = start;
  while (pbf.pos < end) {
    const tag = pbf.readVarint(), field = tag >> 3;
    if (field === 1) f.id = pbf.readVarint();
    else if (field === 2) {
      const e = pbf.readVarint() + pbf.pos;
      while (pbf.pos < e) { const k = keys[pbf.readVarint()]; f.props[k] = values[pbf.readVarint()]; }
    } else if (field === 3) f.type = pbf.readVarint();
    else if (field === 4) f.rings = readGeometry(pbf, pbf.readVarint() + pbf.pos);
    else pbf.skip(tag);
  }
  return f;
}

// Commands: MoveTo (1) starts a ring (or a point), LineTo (2) extends it, ClosePath (7) ends a polygon
// ring (its first point is repeated, so every ring is drawn and hit-tested the same way).
function readGeometry(pbf, end) {
  const rings = [];
  let ring = null, cmd = 0, n = 0, x = 0, y = 0;
  while (pbf.pos < end) {
    if (n === 0) { const c = pbf.readVarint(); cmd = c & 7; n = c >> 3; if (n === 0) continue; }
    n--;
    if (cmd === 1 || cmd === 2) {
      x += pbf.readSVarint(); y += pbf.readSVarint();
      if (cmd === 1) { ring = [x, y]; rings.push(ring); } else ring.push(x, y);
    } else if (cmd === 7 && ring) ring.push(ring[0], ring[1]);
  }
  return rings;
}

// A feature's properties with its MVT id as ``id`` (ST_AsMVT moves the id column out of the properties).
function withId(f) { return f.props.id === undefined && f.id !== undefined ? { ...f.props, id: f.id } : f.props; }

function insideRings(rings, x, y) {
  let inside = false; // even-odd over every ring: holes cancel out
  for (const r of rings) {
    for (let i = 0, j = r.length - 2; i < r.length; j = i, i += 2) {
      const xi = r[i], yi = r[i + 1], xj = r[j], yj = r[j + 1];
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
    }
  }
  return inside;
}

function styleKey(s) { return s.fill + "|" + s.stroke + "|" + s.width + "|" + (s.dash || "") + "|" + (s.halo || ""); }

function tracePath(ctx, f) {
  const sc = f.sc;
  for (const r of f.rings) {
    ctx.moveTo(r[0] * sc, r[1] * sc);
    for (let i = 2; i < r.length; i += 2) ctx.lineTo(r[i] * sc, r[i + 1] * sc);
    if (f.type === 3) ctx.closePath();
  }
}

// Tiles of 512 px fetched one zoom lower (zoomOffset -1) by default: a quarter of the requests of 256 px
// tiles for the same screen. Keys and drawing use the map's zoom; only the URL uses the offset.
// options.query: extra URL parameters (an object, or a function returning one), e.g. the registry version;
// options.root: where the tiles are served (default "/tiles/"; the public report page: "/public/tiles/");
// options.dataOnly: fetch and parse, draw nothing (the features are drawn elsewhere, e.g. on an Overlay).
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
    this.stats = { parseMs: 0, drawMs: 0, bytes: 0, tiles: 0 };
  },

  url(c) {
    const q = typeof this.options.query === "function" ? this.options.query() : (this.options.query || {});
    const params = new URLSearchParams({ ...(this.options.crs === "gcj02" ? { crs: "gcj02" } : {}), ...q,
      ...(this.version ? { v: this.version } : {}) }).toString();
    return (this.options.root || "/tiles/") + this.name + "/" + (c.z + this.options.zoomOffset) + "/" + c.x + "/" + c.y + ".pbf" + (params ? "?" + params : "");
  },

  createTile(coords, done) {
    const canvas = L.DomUtil.create(this.options.dataOnly ? "div" : "canvas", "mvt-tile");
    if (!this.options.dataOnly) {
      const ratio = window.devicePixelRatio || 1;
      canvas.width = canvas.height = this.size * ratio;
      canvas.style.width = canvas.style.height = this.size + "px";
    }
    const key = tileKey(coords);
    this.canvases.set(key, canvas);
    fetch(this.url(coords)).then((res) => {
      if (!res.ok) throw new Error(this.name + " tile " + key + " → " + res.status);
      return res.arrayBuffer();
    }).then((buf) => {
      this.accept(key, buf);
      done(null, canvas);
    }).catch((err) => done(err, canvas));
    return canvas;
  },

  accept(key, buf) {
    const t0 = performance.now();
    this.data.set(key, buf.byteLength ? parse(buf, this.size) : {});
    const t1 = performance.now();
    this.draw(key);
    const s = this.stats;
    s.parseMs += t1 - t0; s.drawMs += performance.now() - t1; s.bytes += buf.byteLength; s.tiles++;
    this.loadedCount++;
    this.fire("tiledata", { key });
  },

  onAdd(map) {
    L.GridLayer.prototype.onAdd.call(this, map);
    this.on("tileunload", (e) => { const k = tileKey(e.coords); this.data.delete(k); this.canvases.delete(k); });
  },

  draw(key) {
    const canvas = this.canvases.get(key), data = this.data.get(key);
    if (!canvas || !data || this.options.dataOnly) return;
    const ctx = canvas.getContext("2d");
    const ratio = canvas.width / this.size;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, this.size, this.size);
    const z = this._map ? this._map.getZoom() : Number(key.split("/")[0]);
    for (const name of this.order(data)) this.drawLayer(ctx, data[name], z, name);
  },

  // Features of one layer grouped by style: one path per style, polygons filled, then lines and outlines
  // stroked over every fill (so no neighbour's fill covers a shared edge), then point symbols. Points
  // with text are drawn one by one.
  drawLayer(ctx, feats, z, name) {
    const groups = new Map();
    for (const f of feats) {
      const s = this.options.style(f.props, z, name, f);
      if (!s) continue;
      if (f.type === 1 && s.text) { this.drawPoint(ctx, f, s); continue; }
      const k = styleKey(s) + "|" + (s.radius || "") + "|" + (s.shape || "");
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { s, polys: [], lines: [], points: [] }));
      (f.type === 3 ? g.polys : f.type === 2 ? g.lines : g.points).push(f);
    }
    for (const { s, polys } of groups.values()) {
      if (!s.fill || !polys.length) continue;
      ctx.beginPath();
      for (const f of polys) tracePath(ctx, f);
      ctx.fillStyle = s.fill; ctx.fill("evenodd");
    }
    for (const { s, polys, lines } of groups.values()) {
      if (!s.stroke || !(polys.length || lines.length)) continue;
      ctx.beginPath();
      for (const f of polys) tracePath(ctx, f);
      for (const f of lines) tracePath(ctx, f);
      ctx.lineJoin = "round";
      for (const [w, colour] of s.halo || []) { // a soft glow: wide translucent strokes under the line
        ctx.setLineDash([]); ctx.strokeStyle = colour; ctx.lineWidth = w; ctx.stroke();
      }
      ctx.strokeStyle = s.stroke; ctx.lineWidth = s.width || 1;
      ctx.setLineDash(s.dash || []);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    for (const { s, points } of groups.values()) {
      if (!points.length) continue;
      const pts = [];
      for (const f of points) for (const r of f.rings) pts.push({ x: r[0] * f.sc, y: r[1] * f.sc });
      drawSymbols(ctx, pts, { ...s, r: s.radius || 4, halo: null });
    }
  },

  drawPoint(ctx, f, s) {
    const sc = f.sc;
    for (const r of f.rings) {
      const x = r[0] * sc, y = r[1] * sc;
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
    if (!this._map || this.hidden.has(layer)) return [];
    return this.points(layer + "_labels");
  },

  // The point features of one MVT layer in every loaded tile of the current zoom: [{latlng, props}];
  // with ``key`` (a property), each once although tile buffers repeat points near tile edges.
  points(layer, key) {
    const out = [], seen = key ? new Set() : null;
    if (!this._map) return out;
    for (const [k, data] of this.data) {
      const feats = data[layer];
      if (!feats) continue;
      const [z, x, y] = k.split("/").map(Number);
      if (z !== this._tileZoom) continue;
      for (const f of feats) {
        if (f.type !== 1) continue;
        if (seen) { if (seen.has(f.props[key])) continue; seen.add(f.props[key]); }
        if (!f.latlng) { const r = f.rings[0]; f.latlng = this._map.unproject([x * this.size + r[0] * f.sc, y * this.size + r[1] * f.sc], z); }
        out.push({ latlng: f.latlng, props: f.props });
      }
    }
    return out;
  },

  // The feature under a map point: polygons by containment, points within their radius.
  hit(latlng) {
    const map = this._map, S = this.size;
    const z = this._tileZoom;
    if (!map || z === undefined) return null;
    const p = map.project(latlng, z);
    const x = Math.floor(p.x / S), y = Math.floor(p.y / S);
    const data = this.data.get(z + "/" + x + "/" + y);
    if (!data) return null;
    const px = p.x - x * S, py = p.y - y * S;
    const names = this.order(data).reverse(); // topmost first
    for (const name of names) {
      if (this.options.clickable && !this.options.clickable.includes(name)) continue;
      for (const f of data[name]) {
        // the MVT feature id (ST_AsMVT's id column, e.g. a ticket's number) rides in props.id
        if (f.type === 3 && insideRings(f.rings, px / f.sc, py / f.sc)) return { layer: name, props: withId(f) };
        if (f.type === 1) {
          const s = this.options.style(f.props, map.getZoom(), name, f) || {};
          const r = (s.radius || 4) + 3;
          const q = f.rings[0], fx = q[0] * f.sc, fy = q[1] * f.sc;
          if ((fx - px) ** 2 + (fy - py) ** 2 <= r * r) {
            return { layer: name, props: withId(f), latlng: map.unproject([x * S + fx, y * S + fy], z) };
          }
        }
      }
    }
    return null;
  },
});

// One canvas over the whole map for everything drawn above the tiles that is not a tile: point symbols
// (ticket bubbles, sensors, workers, cameras) and labels, as "sets" drawn in order. One canvas, not one
// per layer: without a GPU every canvas is another full-screen bitmap copied to the compositor on
// every frame. Repainted after moves (plus a margin, so a short pan shows no blank edge) and hidden
// while Leaflet animates a zoom.
export const Overlay = L.Layer.extend({
  options: { pane: "overlayPane", padding: 0.1 },
  initialize(options) { L.setOptions(this, options); this.sets = []; this.held = false; },
  // hold(): no painting until release() (a page loading its data paints once, not once per answer)
  hold() { this.held = true; return this; },
  release() { this.held = false; this.paint(); },
  add(set) { set.overlay = this; this.sets.push(set); this.redraw(); return set; },
  onAdd(map) {
    this.canvas = L.DomUtil.create("canvas", "overlay-canvas leaflet-zoom-hide");
    map.getPane(this.options.pane).appendChild(this.canvas);
    map.on("moveend zoomend resize", this.redraw, this);
    this.paint();
  },
  onRemove(map) { L.DomUtil.remove(this.canvas); map.off("moveend zoomend resize", this.redraw, this); },
  redraw() {
    if (!this._map || this.held) return;
    cancelAnimationFrame(this.frame);
    this.frame = requestAnimationFrame(() => this.paint());
  },
  paint() {
    const map = this._map;
    if (!map || this.held) return;
    cancelAnimationFrame(this.frame);
    this.painted = (this.painted || 0) + 1;
    const size = map.getSize(), ratio = window.devicePixelRatio || 1, pad = size.multiplyBy(this.options.padding).round();
    const full = size.add(pad.multiplyBy(2));
    L.DomUtil.setPosition(this.canvas, map.containerPointToLayerPoint(pad.multiplyBy(-1)));
    if (this.canvas.width !== full.x * ratio || this.canvas.height !== full.y * ratio) {
      this.canvas.width = full.x * ratio; this.canvas.height = full.y * ratio;
      this.canvas.style.width = full.x + "px"; this.canvas.style.height = full.y + "px";
    }
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(ratio, 0, 0, ratio, pad.x * ratio, pad.y * ratio); // draw in container coordinates
    const area = L.bounds(pad.multiplyBy(-1), size.add(pad));
    for (const set of this.sets) if (set.visible) set.draw(ctx, map, area);
  },
});

// Labels from a source (zoom → [{latlng, text, size, color, bold, halo}]): no label is cut at a tile edge,
// and a simple collision test keeps them legible (earlier entries win).
export class LabelSet {
  constructor(source) { this.source = source; this.drawn = 0; this.visible = true; }
  redraw() { if (this.overlay) this.overlay.redraw(); }
  draw(ctx, map, area) {
    const boxes = [];
    let drawn = 0;
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.lineJoin = "round";
    for (const item of this.source(map.getZoom())) {
      const pt = map.latLngToContainerPoint(item.latlng);
      if (pt.x < area.min.x || pt.y < area.min.y || pt.x > area.max.x || pt.y > area.max.y) continue;
      ctx.font = (item.bold ? "bold " : "") + item.size + "px 'WenQuanYi Micro Hei', sans-serif";
      const w = ctx.measureText(item.text).width, h = item.size;
      const box = [pt.x - w / 2 - 2, pt.y - h / 2 - 2, pt.x + w / 2 + 2, pt.y + h / 2 + 2];
      if (boxes.some((b) => b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3])) continue;
      boxes.push(box);
      ctx.lineWidth = item.bold ? 4 : 3; ctx.strokeStyle = item.halo || "rgba(4, 12, 24, 0.9)"; ctx.strokeText(item.text, pt.x, pt.y);
      ctx.fillStyle = item.color; ctx.fillText(item.text, pt.x, pt.y);
      drawn++;
    }
    this.drawn = drawn;
  }
}

// Many point symbols: [{latlng, style, data}], drawn in order (the last on top). A style is {r, shape:
// circle|square|diamond|triangle, fill, stroke, width, halo: [r, colour], text, textColor, fontSize};
// items sharing one style object are drawn as one path (2,000 workers: a few canvas calls).
// hit(containerPoint) answers the topmost item under a point.
export class PointSet {
  constructor(name) { this.name = name; this.items = []; this.drawn = 0; this.visible = true; }
  setItems(items) { this.items = items; this.redraw(); return this; }
  redraw() { if (this.overlay) this.overlay.redraw(); }
  draw(ctx, map, area) {
    const { items } = this;
    let drawn = 0, i = 0;
    while (i < items.length) {
      const s = items[i].style;
      let j = i;
      const pts = [];
      for (; j < items.length && items[j].style === s; j++) {
        const pt = map.latLngToContainerPoint(items[j].latlng);
        if (pt.x < area.min.x - 30 || pt.y < area.min.y - 30 || pt.x > area.max.x + 30 || pt.y > area.max.y + 30) continue;
        pts.push(pt);
      }
      if (s && pts.length) { drawSymbols(ctx, pts, s); drawn += pts.length; }
      i = j;
    }
    this.drawn = drawn;
  }
  hit(map, containerPoint, slop = 4) {
    if (!this.visible) return null;
    for (let i = this.items.length - 1; i >= 0; i--) {
      const it = this.items[i];
      if (!it.style) continue;
      const pt = map.latLngToContainerPoint(it.latlng);
      const r = (it.style.r || 5) + slop, dx = pt.x - containerPoint.x, dy = pt.y - containerPoint.y;
      if (Math.abs(dx) <= r && Math.abs(dy) <= r && dx * dx + dy * dy <= r * r) return it;
    }
    return null;
  }
}

function shapePath(ctx, shape, x, y, r) {
  if (shape === "square") ctx.rect(x - r, y - r, 2 * r, 2 * r);
  else if (shape === "diamond") { ctx.moveTo(x, y - r * 1.25); ctx.lineTo(x + r * 1.25, y); ctx.lineTo(x, y + r * 1.25); ctx.lineTo(x - r * 1.25, y); ctx.closePath(); }
  else if (shape === "triangle") { ctx.moveTo(x, y - r * 1.3); ctx.lineTo(x + r * 1.2, y + r * 0.8); ctx.lineTo(x - r * 1.2, y + r * 0.8); ctx.closePath(); }
  else { ctx.moveTo(x + r, y); ctx.arc(x, y, r, 0, 2 * Math.PI); }
}

function drawSymbols(ctx, pts, s) {
  const r = s.r || 5;
  if (s.halo) {
    ctx.beginPath();
    for (const p of pts) shapePath(ctx, "circle", p.x, p.y, s.halo[0]);
    ctx.fillStyle = s.halo[1]; ctx.fill();
  }
  ctx.beginPath();
  for (const p of pts) shapePath(ctx, s.shape, p.x, p.y, r);
  if (s.fill) { ctx.fillStyle = s.fill; ctx.fill(); }
  if (s.stroke) { ctx.strokeStyle = s.stroke; ctx.lineWidth = s.width || 1; ctx.stroke(); }
  if (s.text) {
    ctx.fillStyle = s.textColor || "#fff";
    ctx.font = "bold " + (s.fontSize || 12) + "px 'WenQuanYi Micro Hei', sans-serif";
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (const p of pts) ctx.fillText(s.text, p.x, p.y + 0.5);
  }
}
