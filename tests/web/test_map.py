"""The big-screen map in headless Chromium: layers and panels with the demo city's counts, live updates,
a worker's day on click, a camera's latest frame and detections on click."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import psycopg
import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session

from tests.web.conftest import Server

pytestmark = pytest.mark.browser
CITY_TZ = ZoneInfo("Asia/Shanghai")


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_big_screen_renders_the_demo_city(server, page, artifacts):
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert page.text_content("#grid-count") == "1,347"
    assert page.text_content("#town-count") == "15"
    assert page.get_attribute("body", "data-grids") == "1347"
    assert page.get_attribute("body", "data-towns") == "15"
    assert int(page.get_attribute("body", "data-villages")) > 400
    switcher = page.locator("#layer-list label")
    assert switcher.count() >= 4  # grids, villages, towns, tickets (+ sensors/workers/cameras when they exist)
    assert page.text_content("#n-grids") == "1,347"
    page.wait_for_function("window.onemap.labels.drawn >= 15")  # town names drawn on the label canvas
    page.wait_for_selector("#kpi-panel:not([hidden]) table.kpi", timeout=10_000)
    page.wait_for_selector("#ranking-panel:not([hidden])")
    page.wait_for_selector("#live-state.on", timeout=10_000)
    # the map is drawn from tiles and a few kB of counts, never from the big GeoJSON collections
    requests = page.evaluate("performance.getEntriesByType('resource').map((e) => { const u = new URL(e.name);"
                             " return u.pathname + u.search; })")
    assert not [r for r in requests if r.startswith(("/workers", "/areas", "/grids"))], requests
    assert [r for r in requests if r.startswith("/tiles/base/") and "r=" in r]  # registry tiles, versioned
    assert "/tiles/grid-stats" in requests
    page.screenshot(path=str(artifacts / "map-bigscreen.png"))


def test_clicking_a_grid_shows_it_and_the_ranking_flies_to_a_town(server, page):
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("body[data-complete=true]", timeout=30_000)
    page.mouse.click(960, 560)  # the middle of the city
    page.wait_for_selector("#info dl.duty[data-grid]", timeout=60_000)  # the grid's card: names, who answers
    assert "网格员" in page.text_content("#info")
    page.wait_for_function("document.querySelectorAll('#area-select option').length === 16")  # 全市 + 15 towns
    page.select_option("#area-select", index=3)
    page.wait_for_function("window.onemap.map.getZoom() > 11", timeout=60_000)
    assert page.evaluate("window.onemap.state.town").startswith("370783")


def test_a_new_ticket_arrives_live(server, page, web_url, artifacts):
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("#live-state.on", timeout=10_000)
    before = int(page.text_content("#open-count").replace(",", ""))
    res = httpx.post(server.base + "/tickets", json={
        "channel": "hotline", "category": "0102", "severity": "important", "description": "道路旁暴露垃圾，气味较大",
        "lon": 118.79, "lat": 36.86}, timeout=60)
    assert res.status_code == 201, res.text
    ticket = res.json()
    event = {"id": ticket["id"], "state": ticket["state"], "card": ticket["card"], "category_name": ticket["category_name"],
             "grid_code": ticket["grid_code"], "lon": ticket["lon"], "lat": ticket["lat"]}
    with psycopg.connect(libpq(web_url), autocommit=True) as conn:  # what the tickets service announces
        conn.execute("SELECT pg_notify('onemap_tickets', %s)", (json.dumps(event, ensure_ascii=False),))
    page.wait_for_selector(f"#alarms li:has-text('#{ticket['id']}')", timeout=10_000)
    assert int(page.get_attribute("body", "data-live-events")) >= 1
    page.wait_for_function(f"Number(document.querySelector('#open-count').textContent.replace(/,/g, '')) === {before + 1}",
                           timeout=10_000)
    page.click(f"#alarms li:has-text('#{ticket['id']}')")  # the feed flies the map to the ticket
    page.wait_for_function("window.onemap.map.getZoom() >= 14.5", timeout=10_000)
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "map-live-ticket.png"))


def test_live_stream_speaks_server_sent_events(server, web_url):
    with httpx.stream("GET", server.base + "/live", params={"channels": "alarms"}, timeout=10) as res:
        assert res.headers["content-type"].startswith("text/event-stream")
        lines = res.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == "event: hello"
        assert json.loads(next(lines).removeprefix("data: "))["listening"] is True
        with psycopg.connect(libpq(web_url), autocommit=True) as conn:
            conn.execute("SELECT pg_notify('onemap_tickets', '{\"id\": 1}')")  # not subscribed: filtered out
            conn.execute("SELECT pg_notify('onemap_alarms', '{\"title\": \"烟感告警\", \"lon\": 118.8, \"lat\": 36.9}')")
        got = [line for line in (next(lines) for _ in range(4)) if line]
        assert got[0] == "event: alarms"
        assert json.loads(got[1].removeprefix("data: ")) == {"title": "烟感告警", "lon": 118.8, "lat": 36.9}
    assert httpx.get(server.base + "/live", params={"channels": "weather"}).status_code == 400


# ----------------------------------------------------------------------------- a worker's day

def a_grid(url: str, offset: int) -> tuple[str, float, float]:
    """A grid's code and a point well inside it."""
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute(
            "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) AS p FROM grids"
            " WHERE valid_to IS NULL ORDER BY code OFFSET %s LIMIT 1) s", (offset,)).fetchone()


def metres(lon: float, lat: float, east: float, north: float) -> tuple[float, float]:
    return lon + east / (111_320 * math.cos(math.radians(lat))), lat + north / 110_540


def open_at(page, latlng: list[float], zoom: float) -> None:
    page.evaluate("([latlng, zoom]) => window.onemap.map.setView(latlng, zoom, { animate: false })", [latlng, zoom])


def click_at(page, latlng: list[float]) -> None:
    """A real mouse click where the map draws ``latlng``."""
    pt = page.evaluate("""(latlng) => { const p = window.onemap.map.latLngToContainerPoint(latlng);
        const r = document.getElementById("map").getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""", latlng)
    page.mouse.click(*pt)


def test_clicking_a_worker_draws_todays_track_and_lists_the_reports(server, page, web_url, artifacts):
    grid, lon, lat = a_grid(web_url, 300)
    worker = "W-MAP-01"
    res = httpx.post(server.base + "/workers", json={"id": worker, "name": "王海燕", "role": "full_time",
                                                    "grids": [grid]}, timeout=30)
    assert res.status_code == 201, res.text
    # 30 fixes over the last five minutes (all of them today in Shanghai), walking east then north
    now = datetime.now(UTC)
    start = max(now - timedelta(minutes=5), datetime.now(CITY_TZ).replace(hour=0, minute=0, second=1, microsecond=0))
    step = (now - timedelta(seconds=5) - start) / 29
    path = [metres(lon, lat, 6 * min(i, 15), 6 * max(0, i - 15)) for i in range(30)]
    rows = "\n".join(f"{worker},{(start + i * step).isoformat()},{x:.7f},{y:.7f}" for i, (x, y) in enumerate(path))
    res = httpx.post(server.base + "/workers/positions", content="worker_id,ts,lon,lat\n" + rows,
                     headers={"Content-Type": "text/csv"}, timeout=30)
    assert res.status_code == 200 and res.json()["inserted"] == 30, res.text
    reported = []
    for (x, y), text in ((path[8], "巡查发现井盖缺失，已设置警示"), (path[22], "绿化带内堆放建筑垃圾")):
        res = httpx.post(server.base + "/tickets", json={"channel": "patrol", "category": "0102", "description": text,
                                                        "lon": x, "lat": y, "source_ref": worker}, timeout=60)
        assert res.status_code == 201, res.text
        reported.append(res.json()["id"])

    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    last = [path[-1][1], path[-1][0]]
    open_at(page, last, 17)
    page.wait_for_function("""([id, at]) => { const m = window.onemap.map, p = m.latLngToContainerPoint(at);
        return window.onemap.workerSet.items.some((i) => i.data.id === id && m.latLngToContainerPoint(i.latlng).distanceTo(p) < 2); }""",
                           arg=[worker, last], timeout=15_000)
    click_at(page, last)
    popup = page.locator(f".worker-popup[data-worker='{worker}']")
    popup.locator("ol.reported li").first.wait_for(timeout=15_000)
    assert popup.locator("ol.reported li").count() == 2
    for ticket_id in reported:
        assert f"#{ticket_id}" in popup.text_content()
    assert "王海燕" in popup.text_content() and "专职网格员" in popup.text_content()
    track = json.loads(page.get_attribute("body", "data-track"))
    assert track == {"worker": worker, "fixes": 30, "tickets": 2}
    # the day's line (glow + line) and the two reported tickets are on the map, in their pane
    assert page.locator(".leaflet-track-pane path").count() == 4
    page.wait_for_timeout(600)  # the map fits the track
    page.screenshot(path=str(artifacts / "map-worker-track.png"))
    popup.locator("ol.reported li").first.click()  # a report → its ticket in the details panel
    page.wait_for_function(f"document.querySelector('#info h2').textContent.includes('#{reported[0]}')", timeout=10_000)
    page.click(".leaflet-popup-close-button")
    page.wait_for_function("document.querySelectorAll('.leaflet-track-pane path').length === 0", timeout=5_000)
    assert page.get_attribute("body", "data-track") is None

    # a new fix arrives (LISTEN/NOTIFY → server-sent event): the worker moves on the open page
    page.wait_for_selector("#live-state.on", timeout=10_000)
    x, y = metres(*path[-1], 40, 40)
    res = httpx.post(server.base + "/workers/positions", content=f"worker_id,ts,lon,lat\n{worker},"
                     f"{datetime.now(UTC).isoformat()},{x:.7f},{y:.7f}", headers={"Content-Type": "text/csv"}, timeout=30)
    assert res.status_code == 200 and res.json()["inserted"] == 1, res.text
    page.wait_for_function("""([id, lat, lng]) => window.onemap.workerSet.items.some((i) => i.data.id === id
        && Math.abs(i.latlng.lat - lat) < 2e-5 && Math.abs(i.latlng.lng - lng) < 2e-5)""", arg=[worker, y, x], timeout=15_000)


# ----------------------------------------------------------------------------- a camera's frame

@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("keyframes")


@pytest.fixture(scope="module")
def camera_server(web_url, frames_dir) -> Iterator[Server]:
    """The API reading latest frames from a folder of the test's own (not the developer's data folder)."""
    srv = Server(web_url, ONEMAP_AUTH="off", ONEMAP_KEYFRAME_DIR=str(frames_dir))
    yield srv
    srv.stop()


def store_frame(url: str, folder, camera: str, lon: float, lat: float) -> list[str]:
    """One analysed frame through the vision layer's own sink: a synthetic street scene with its objects
    as the detections (what YOLO would have found), their feet placed on the map in front of the
    camera; the sink stores the detections and writes the annotated latest frame."""
    from layers.cameras.rules import Seen
    from layers.vision.runner import Feed, Frame
    from layers.vision.store import DatabaseSink
    from layers.vision.synth import CAR, scene

    rng = np.random.default_rng(3)
    image, things = scene(rng, 480, 320, max_people=4, max_cars=2)
    while len(things) < 3 or len({t.cls for t in things}) < 2:
        image, things = scene(rng, 480, 320, max_people=4, max_cars=2)
    seen = [Seen("car" if t.cls == CAR else "person", 0.91 - 0.05 * i, t.box) for i, t in enumerate(things)]
    lonlat = np.array([metres(lon, lat, 15 + 8 * i, 4 * (i % 3) - 4) for i in range(len(seen))])
    engine = create_engine(url)
    with Session(engine) as session:
        DatabaseSink(session, keyframe_dir=folder, commit=True).frame(
            Frame(Feed(camera, None), time.time() - 2, image, seen, lonlat, []))
    engine.dispose()
    return [s.cls for s in seen]


def test_clicking_a_camera_shows_its_latest_frame_and_places_its_detections(camera_server, browser, web_url,
                                                                           frames_dir, artifacts):
    _grid, lon, lat = a_grid(web_url, 640)
    cameras = {"CAM-MAP-01": ("文化路与银海路口", lon, lat), "CAM-MAP-02": ("农圣街东段", *metres(lon, lat, 0, 260))}
    for cam, (name, x, y) in cameras.items():
        res = httpx.post(camera_server.base + "/cameras", json={"id": cam, "name": name, "lon": x, "lat": y,
                                                                "heading_deg": 90, "fov_deg": 70, "range_m": 90}, timeout=30)
        assert res.status_code == 201, res.text
    try:
        classes = store_frame(web_url, frames_dir, "CAM-MAP-01", lon, lat)
        context = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(camera_server.base + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        assert page.text_content("#n-cameras") == "2"

        # a camera that has sent nothing yet: the popup says so, with the server's reason
        quiet = [cameras["CAM-MAP-02"][2], cameras["CAM-MAP-02"][1]]
        open_at(page, quiet, 16)
        page.wait_for_timeout(300)
        click_at(page, quiet)
        page.wait_for_selector(".camera-popup[data-camera='CAM-MAP-02'] .frame[data-state=none]", timeout=10_000)
        assert "暂无画面" in page.text_content(".camera-popup .frame")
        assert page.locator(".leaflet-detections-pane path").count() == 0
        page.click(".leaflet-popup-close-button")

        # the camera with a frame: the annotated image, and its detections of the last minute on the map
        here = [lat, lon]
        open_at(page, here, 17)
        page.wait_for_timeout(300)
        click_at(page, here)
        img = page.locator(".camera-popup[data-camera='CAM-MAP-01'] .frame img")
        img.wait_for(timeout=10_000)
        page.wait_for_function("document.querySelector('.camera-popup .frame img').naturalWidth === 480", timeout=10_000)
        assert "画面时间" in page.text_content(".camera-popup .frame")
        page.wait_for_function(f"document.body.dataset.detections === '{len(classes)}'", timeout=10_000)
        summary = page.text_content(".camera-popup .detections")
        assert f"识别 {len(classes)} 个目标" in summary
        assert "行人" in summary and "车辆" in summary
        markers = page.locator(".leaflet-detections-pane path.leaflet-interactive")
        assert markers.count() == len(classes)
        colours = {markers.nth(i).get_attribute("fill") for i in range(markers.count())}
        assert colours == {"#ff9f1c", "#00e5ff"}  # one colour per class: person, car
        page.wait_for_timeout(400)
        page.screenshot(path=str(artifacts / "map-camera-frame.png"))
        page.click(".leaflet-popup-close-button")  # closing clears the detections (and the view wedge)
        page.wait_for_function("document.querySelectorAll('.leaflet-detections-pane path').length === 0", timeout=5_000)
        context.close()
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        for cam in cameras:
            httpx.delete(camera_server.base + f"/cameras/{cam}", timeout=30)
