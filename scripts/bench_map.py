"""`onemap bench map`: time to first full render of the big-screen map in headless Chromium.

The demo city plus a district's year of tickets (100,000) and 2,000 live workers are generated into a
scratch database; a real API server runs against it. Beside OneMap's page, the same run measures a
naive page: Leaflet 1.9 with ``preferCanvas``, the grids and the tickets as plain GeoJSON layers (their
GeoJSON is prepared beforehand and served from memory, so the naive page pays no server time: the
comparison favours it). Each page is loaded ``rounds`` times in fresh browser contexts (no browser
cache) and medians are reported; OneMap's first load after the server starts (nothing in its tile
cache) is reported on its own.

Figures: ``render_ms`` = navigation start → the first frame with every map layer drawn has been
painted (two animation frames after the last draw, on both pages). OneMap: the registry tiles of the
view parsed and drawn and coloured by the open tickets per grid, the 2,000 workers (their tiles), the
sensors and cameras, the labels and ticket bubbles; naive: the GeoJSON layers added. ``complete_ms``
(OneMap) also waits for the panels (KPIs, ranking, feed). Where the time goes: the page's own marks
(scripts running, layer info, counts, tiles, workers, points, render) and every request it makes
(from the Resource Timing API: time waiting for the server, bytes), medians over the rounds.
Tile medians are over every tile covering the city at zooms 10-14, cold then warm.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

# Debian's Chromium runs headless as a full browser: every new context opens a window whose address bar
# prepares its WebUI suggestion popups in a renderer of their own, about 0.6 CPU-seconds per context
# (measured), spent while the page under test loads on the same two cores. A command hall's screen
# opens its window once; these runs open one per page load, so that window furniture is switched off.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup"]
VIEWPORT = {"width": 1920, "height": 1080}

NAIVE_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/vendor/leaflet/dist/leaflet.css">
<style>html,body,#map{margin:0;height:100%;background:#0b1420}</style></head><body><div id="map"></div>
<script src="/vendor/leaflet/dist/leaflet.js"></script>
<script>
const map = L.map("map", { preferCanvas: true }).setView([36.88, 118.8], 10);
Promise.all([fetch("/naive/grids.json").then(r => r.json()), fetch("/naive/tickets.json").then(r => r.json())])
  .then(([grids, tickets]) => {
    const g = L.geoJSON(grids, { style: { color: "#5fb3ff", weight: 0.6, fillOpacity: 0.3 } }).addTo(map);
    L.geoJSON(tickets, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 3 }) }).addTo(map);
    map.fitBounds(g.getBounds());
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.onemapRenderMs = performance.now(); document.body.dataset.ready = "true"; }));
  });
</script></body></html>"""


ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- a real server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``uvicorn api.app:create_app`` in a subprocess on a free port, over ``database_url``."""

    def __init__(self, database_url: str, **env: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        (ROOT / "artifacts").mkdir(exist_ok=True)
        self.log = open(ROOT / "artifacts" / f"server-{self.port}.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-proxy-headers"],
            cwd=ROOT, env={**os.environ, "ONEMAP_DATABASE_URL": database_url, **env},
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the API server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the API server did not answer /health in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# ----------------------------------------------------------------------------- data

def generate_tickets(session: Session, n: int, seed: int = 7) -> int:
    """``n`` tickets over the last year, inside the grids in proportion to their area, in SQL."""
    session.execute(text("SELECT setseed(:s)"), {"s": (seed % 100) / 100})
    session.execute(text(f"""
        WITH g AS (SELECT code, village_code, town_code, district_code, geom,
                          ST_Area(geom) / sum(ST_Area(geom)) OVER () AS share FROM grids WHERE valid_to IS NULL),
        pts AS (SELECT g.*, (ST_Dump(ST_GeneratePoints(g.geom, greatest(1, round(share * {n})::int), {seed}))).geom AS p FROM g)
        INSERT INTO tickets (channel, category, severity, description, geom, grid_code, village_code, town_code,
                             district_code, match, state, department, needs_town, card, co_units, rework_count,
                             revisited, unplaced, created_at, updated_at)
        SELECT (ARRAY['hotline','app','wechat','patrol','camera','sensor'])[1 + floor(random() * 6)::int],
               '0102', 'general', '压测工单', p, code, village_code, town_code, district_code, 'inside',
               CASE WHEN random() < 0.9 THEN 'closed' ELSE
                    (ARRAY['received','dispatched','signed','handling'])[1 + floor(random() * 4)::int] END,
               'sanitation', true,
               CASE WHEN random() < 0.03 THEN 'red' WHEN random() < 0.08 THEN 'yellow' ELSE 'ok' END,
               '{{}}', 0, false, false, now() - random() * interval '365 days', now()
        FROM pts"""))
    return int(session.scalar(text("SELECT count(*) FROM tickets")))


def generate_workers(session: Session, n: int) -> int:
    """``n`` workers, each with a last position inside a grid (the live layer)."""
    if session.scalar(text("SELECT to_regclass('public.worker_last_positions') IS NULL")):
        return 0
    session.execute(text(f"""
        WITH g AS (SELECT code, town_code, geom, row_number() OVER (ORDER BY code) AS i FROM grids
                   WHERE valid_to IS NULL),
        w AS (SELECT s AS i, 'W' || lpad(s::text, 5, '0') AS id FROM generate_series(1, {n}) s)
        INSERT INTO workers (id, name, role, town_code, on_duty, active)
        SELECT w.id, '网格员' || w.i, 'full_time', g.town_code, true, true
        FROM w JOIN g ON g.i = 1 + (w.i % (SELECT count(*) FROM g))"""))
    session.execute(text(f"""
        WITH g AS (SELECT code, town_code, geom, row_number() OVER (ORDER BY code) AS i FROM grids
                   WHERE valid_to IS NULL)
        INSERT INTO worker_last_positions (worker_id, ts, geom, grid_code, town_code)
        SELECT 'W' || lpad(s::text, 5, '0'), now(), ST_PointOnSurface(g.geom), g.code, g.town_code
        FROM generate_series(1, {n}) s JOIN g ON g.i = 1 + (s % (SELECT count(*) FROM g))"""))
    return int(session.scalar(text("SELECT count(*) FROM worker_last_positions")))


def naive_geojson(base: str, session: Session) -> tuple[bytes, bytes]:
    """The naive page's payloads: the grids from the API and every ticket as a GeoJSON point."""
    grids = httpx.get(base + "/grids", timeout=120).content
    rows = session.execute(text("SELECT id, state, ST_X(geom), ST_Y(geom) FROM tickets")).all()
    features = [{"type": "Feature", "properties": {"id": i, "state": s},
                 "geometry": {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]}} for i, s, x, y in rows]
    return grids, json.dumps({"type": "FeatureCollection", "features": features}).encode()


# ----------------------------------------------------------------------------- measuring

def page_time(browser, url: str, *, routes: dict[str, bytes] | None = None, complete: bool = False) -> dict:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    for path, body in (routes or {}).items():
        page.route(f"**{path}", _serve(body, "text/html" if path.endswith("naive") else "application/json"))
    started = time.perf_counter()
    page.goto(url)
    # "attached": Playwright's default also computes the element's box on every animation frame, work on
    # the very main thread being measured
    page.wait_for_selector("body[data-ready=true]", state="attached", timeout=120_000)
    out = {"render_ms": page.evaluate("window.onemapRenderMs")}
    if complete:
        page.wait_for_selector("body[data-complete=true]", state="attached", timeout=120_000)
        out["complete_ms"] = page.evaluate("window.onemapCompleteMs")
        out.update(page.evaluate(TIMELINE_JS))
    out["wall_ms"] = (time.perf_counter() - started) * 1000
    context.close()
    return out


# The page's marks and its requests up to the render: [name, start, first byte, end, bytes] per request.
TIMELINE_JS = """() => {
  const render = window.onemapRenderMs;
  const marks = Object.fromEntries(performance.getEntriesByType("mark").filter((m) => m.name.startsWith("onemap:"))
    .map((m) => [m.name.slice(7), m.startTime]));
  const nav = performance.getEntriesByType("navigation")[0];
  const requests = [["page", 0, nav.responseStart, nav.responseEnd, nav.encodedBodySize]].concat(
    performance.getEntriesByType("resource").filter((e) => e.startTime < render)
      .map((e) => [e.name.replace(location.origin, ""), e.startTime, e.responseStart, e.responseEnd, e.encodedBodySize]));
  return { marks, requests };
}"""


def request_kind(path: str) -> str:
    """Requests grouped for the breakdown: scripts and styles, layer info, counts, tiles per layer, points."""
    if path.startswith(("/static/", "/vendor/")):
        return "scripts + styles"
    if ".pbf" in path:
        return "tiles: " + path.split("/")[2]
    return {"/tiles": "layer info (/tiles)", "/tiles/grid-stats": "open tickets per grid"}.get(path.split("?")[0], path.split("?")[0])


def _serve(body: bytes, content_type: str):
    """A route handler answering from memory (one parameter: Playwright passes the request too otherwise)."""
    def handler(route) -> None:
        route.fulfill(body=body, content_type=content_type)
    return handler


def tile_times(base: str, z_range=range(10, 15), layers=("base", "workers", "all", "grids", "tickets")) -> dict[str, list[float]]:
    box = (118.45, 36.70, 119.15, 37.30)
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for layer in layers:
            times = []
            for z in z_range:
                for x, y in _tiles(box, z):
                    t = time.perf_counter()
                    client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf")
                    times.append((time.perf_counter() - t) * 1000)
            out[layer] = times
    return out


def _tiles(box, z):
    n = 2**z
    lon0, lat0, lon1, lat1 = box

    def tx(lon):
        return int((lon + 180) / 360 * n)

    def ty(lat):
        return int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)

    return [(x, y) for x in range(tx(lon0), tx(lon1) + 1) for y in range(ty(lat1), ty(lat0) + 1)]


# ----------------------------------------------------------------------------- run

def run(console: Console | None = None, *, tickets: int = 100_000, workers: int = 2_000, rounds: int = 3) -> dict:
    """Build the scratch city, start a server, measure both pages and the tiles; print and return figures."""
    from playwright.sync_api import sync_playwright

    from scripts.bench import analyze, scratch_database
    from scripts.demo_load import load_into

    console = console or Console()
    with scratch_database("onemap_bench_map") as url:
        engine = create_engine(url)
        with Session(engine) as session:
            load_into(session, validate=False)
            n_tickets = generate_tickets(session, tickets)
            n_workers = generate_workers(session, workers)
            session.commit()
            analyze(url, vacuum=True)
            server = Server(url, ONEMAP_AUTH="off")  # the local demo mode: no sign-in
            try:
                grids_json, tickets_json = naive_geojson(server.base, session)
                figures = _measure(server.base, grids_json, tickets_json, rounds, sync_playwright)
            finally:
                server.stop()
        engine.dispose()
    figures.update(tickets=n_tickets, workers=n_workers, grids_geojson_mb=len(grids_json) / 2**20,
                   tickets_geojson_mb=len(tickets_json) / 2**20)
    _print(console, figures)
    return figures


def _measure(base: str, grids_json: bytes, tickets_json: bytes, rounds: int, sync_playwright) -> dict:
    naive_routes = {"/naive": NAIVE_PAGE.encode(), "/naive/grids.json": grids_json, "/naive/tickets.json": tickets_json}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        first = page_time(browser, base + "/", complete=True)  # nothing cached yet in the server
        cold_tiles = tile_times(base)
        warm_tiles = tile_times(base)
        onemap = [page_time(browser, base + "/", complete=True) for _ in range(rounds)]
        naive = [page_time(browser, base + "/naive", routes=naive_routes) for _ in range(rounds)]
        browser.close()
    med = statistics.median
    return {
        "breakdown": _breakdown(onemap),
        "onemap_render_ms": med(r["render_ms"] for r in onemap),
        "onemap_first_load_render_ms": first["render_ms"],
        "onemap_complete_ms": med(r["complete_ms"] for r in onemap),
        "onemap_wall_ms": med(r["wall_ms"] for r in onemap),
        "naive_render_ms": med(r["render_ms"] for r in naive),
        "naive_wall_ms": med(r["wall_ms"] for r in naive),
        "onemap_rounds_ms": [round(r["render_ms"]) for r in onemap],
        "naive_rounds_ms": [round(r["render_ms"]) for r in naive],
        "tile_median_ms_cold": {k: med(v) for k, v in cold_tiles.items()},
        "tile_median_ms_warm": {k: med(v) for k, v in warm_tiles.items()},
        "tiles_per_layer": len(cold_tiles["all"]),
    }


def _breakdown(rounds: list[dict]) -> dict:
    """Medians over the rounds: each mark's time, and per kind of request how many, the bytes, the
    median wait for the server's first byte and when the last one ended."""
    med = statistics.median
    marks = {k: med(r["marks"][k] for r in rounds if k in r["marks"]) for k in rounds[0]["marks"]}
    kinds: dict[str, dict[str, list]] = {}
    for r in rounds:
        per: dict[str, list] = {}
        for path, start, first, end, size in r["requests"]:
            per.setdefault(request_kind(path), []).append((start, first, end, size))
        for kind, reqs in per.items():
            k = kinds.setdefault(kind, {"n": [], "kb": [], "wait": [], "end": []})
            k["n"].append(len(reqs))
            k["kb"].append(sum(q[3] for q in reqs) / 1024)
            k["wait"].append(med(q[1] - q[0] for q in reqs))
            k["end"].append(max(q[2] for q in reqs))
    return {"marks": marks, "requests": {kind: {key: med(v) for key, v in k.items()} for kind, k in kinds.items()}}


def _print(console: Console, f: dict) -> None:
    table = Table(title=f"onemap bench map — demo city, {f['tickets']:,} tickets, {f['workers']:,} workers, 1920×1080")
    table.add_column("page")
    table.add_column("first full render ms (median)", justify="right")
    table.add_column("whole browser run ms", justify="right")
    table.add_column("vs naive", justify="right")
    table.add_row("naive: Leaflet preferCanvas, plain GeoJSON", f"{f['naive_render_ms']:.0f}", f"{f['naive_wall_ms']:.0f}", "1.0x")
    table.add_row("OneMap big screen (vector tiles, workers, points)", f"{f['onemap_render_ms']:.0f}", f"{f['onemap_wall_ms']:.0f}",
                  f"{f['naive_render_ms'] / f['onemap_render_ms']:.1f}x faster")
    table.add_row("OneMap incl. panels (KPIs, ranking, feed)", f"{f['onemap_complete_ms']:.0f}", "", "")
    table.add_row("OneMap, first load after the server started (no tile cached)", f"{f['onemap_first_load_render_ms']:.0f}", "", "")
    console.print(table)
    tiles = Table(title=f"tile times, zooms 10-14 over the city ({f['tiles_per_layer']} tiles per layer)")
    tiles.add_column("layer")
    tiles.add_column("median ms cold", justify="right")
    tiles.add_column("median ms warm", justify="right")
    for layer, cold in f["tile_median_ms_cold"].items():
        tiles.add_row(layer, f"{cold:.1f}", f"{f['tile_median_ms_warm'][layer]:.1f}")
    console.print(tiles)
    console.print(f"payloads of the naive page: grids {f['grids_geojson_mb']:.1f} MB, tickets {f['tickets_geojson_mb']:.1f} MB; "
                  f"rounds OneMap {f['onemap_rounds_ms']} ms, naive {f['naive_rounds_ms']} ms")
    b = f["breakdown"]
    console.print("where OneMap's first render goes (ms from navigation start, medians): "
                  + ", ".join(f"{k} {v:.0f}" for k, v in sorted(b["marks"].items(), key=lambda kv: kv[1])))
    req = Table(title="OneMap's requests before the first render (medians over the rounds)")
    for col in ("request", "n", "kB", "server wait ms", "last done at ms"):
        req.add_column(col, justify="left" if col == "request" else "right")
    for kind, k in sorted(b["requests"].items(), key=lambda kv: kv[1]["end"]):
        req.add_row(kind, f"{k['n']:.0f}", f"{k['kb']:.0f}", f"{k['wait']:.0f}", f"{k['end']:.0f}")
    console.print(req)


if __name__ == "__main__":
    run()
