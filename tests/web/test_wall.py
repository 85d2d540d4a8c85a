"""The command hall's wall (指挥大屏) as a commander uses it: clicks open cards that say who answers
(names, phones), deadlines and time left, status and card, with the desk one click away; the layout
fits 1366×768, 1920×1080 and 3840×2160; and `onemap demo`'s live stream keeps the wall moving.

The wall gets its own copy of the demo city with the demo's workers, sensors and cameras registered
and a first minute of the live stream (scripts/demo_live.py) behind it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from scripts.demo_live import LiveDemo
from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser
SIZES = {"laptop": (1366, 768), "hall": (1920, 1080), "wall": (3840, 2160)}
CODE = re.compile(r"\d{12,15}")


@pytest.fixture(scope="module")
def wall_url(cluster, tmp_path_factory) -> str:
    """The demo city with two days of tickets and its cameras (the live stream registers workers and sensors)."""
    from layers.incidents.simulate import simulate
    from scripts.demo_cameras import load_cameras

    url = demo_copy(cluster, "wall")
    engine = create_engine(url)
    with Session(engine) as session:
        simulate(session, days=2, per_day=150)  # two days of tickets: the feed, KPIs and ranking have rows
        load_cameras(session, video_root=tmp_path_factory.mktemp("videos"))
        session.commit()
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def wall(wall_url) -> Iterator[Server]:
    srv = Server(wall_url, ONEMAP_AUTH="off")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def stream(wall_url, wall) -> Iterator[LiveDemo]:
    """The live demo running against the wall's database for the module's tests."""
    engine = create_engine(wall_url)
    demo = LiveDemo(sessionmaker(engine), seed=5, echo=lambda _: None)
    stop = threading.Event()
    demo.prepare()

    def loop() -> None:
        while not stop.is_set():
            demo.step()
            stop.wait(demo.pace.tick_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield demo
    stop.set()
    thread.join(30)
    engine.dispose()


def counts(url: str, since: datetime) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {name: conn.execute(text(sql), {"t": since}).scalar_one() for name, sql in {
            "fixes": "SELECT count(*) FROM worker_positions WHERE ts >= :t",
            "readings": "SELECT count(*) FROM sensor_readings WHERE ts >= :t",
            "sensor_alarms": "SELECT count(*) FROM sensor_alarms WHERE raised_at >= :t",
            "camera_alarms": "SELECT count(*) FROM alarms WHERE started_at >= :t",
            "new_tickets": "SELECT count(*) FROM tickets WHERE created_at >= :t",
            "moves": "SELECT count(*) FROM ticket_events WHERE at >= :t AND move NOT IN ('receive', 'card', 'alarm')",
            "moved_workers": "SELECT count(DISTINCT worker_id) FROM worker_positions WHERE ts >= :t",
        }.items()}
    engine.dispose()
    return out


def test_twenty_seconds_of_the_live_demo_reach_the_database(wall_url):
    """GPS fixes, readings, a pollution alarm, a camera alarm, new tickets and ticket moves, all through
    the layers' own ingest and workflow, in 20 s of the default pace."""
    engine = create_engine(wall_url)
    demo = LiveDemo(sessionmaker(engine), seed=11, echo=lambda _: None)
    start = datetime.now(UTC)
    got = demo.run(threading.Event(), seconds=20)
    engine.dispose()
    db = counts(wall_url, start)
    assert got.errors == 0
    assert db["fixes"] >= len(demo.walkers) > 400  # everyone's first fix, then a share every 5 s
    assert db["moved_workers"] == len(demo.walkers)
    assert db["readings"] >= 60
    assert db["sensor_alarms"] >= 1 and db["camera_alarms"] >= 1
    assert db["new_tickets"] >= 3  # a report, the camera alarm's and the pollution alarm's tickets
    assert db["moves"] >= 2
    # the workers really walk: first and last fix of this run metres apart, never kilometres
    engine = create_engine(wall_url)
    with engine.connect() as conn:
        moved = conn.execute(text(
            "SELECT max(ST_Distance(ST_StartPoint(l)::geography, ST_EndPoint(l)::geography)) FROM"
            " (SELECT ST_MakeLine(geom ORDER BY ts) AS l FROM worker_positions WHERE ts >= :t AND flag IS NULL"
            " GROUP BY worker_id HAVING count(*) > 1) s"), {"t": start}).scalar_one()
    engine.dispose()
    assert moved is not None and 5 < moved < 500


def open_wall(browser, server: Server, size: tuple[int, int]):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    asked: list[str] = []
    page.on("request", lambda req: asked.append(req.url))
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-complete=true]", timeout=60_000)
    return context, page, errors, asked


def click_latlng(page, latlng) -> None:
    pt = page.evaluate("""(latlng) => { const p = window.onemap.map.latLngToContainerPoint(latlng);
        const r = document.getElementById("map").getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""", latlng)
    page.mouse.click(*pt)


def test_clicking_a_ticket_opens_its_card_with_who_answers_and_the_desk(wall, stream, wall_url, browser, artifacts):
    engine = create_engine(wall_url)
    with engine.connect() as conn:  # an open ticket in a grid with a worker
        tid, lon, lat, grid = conn.execute(text(
            "SELECT t.id, ST_X(t.geom), ST_Y(t.geom), t.grid_code FROM tickets t"
            " WHERE t.state NOT IN ('closed', 'signed_off') AND t.duplicate_of IS NULL AND t.geom IS NOT NULL"
            " AND EXISTS (SELECT 1 FROM worker_grids a WHERE a.grid_code = t.grid_code) ORDER BY t.id LIMIT 1")).one()
        worker = conn.execute(text("SELECT w.name FROM workers w JOIN worker_grids a ON a.worker_id = w.id"
                                   " WHERE a.grid_code = :g ORDER BY w.id LIMIT 1"), {"g": grid}).scalar_one()
    engine.dispose()
    context, page, errors, asked = open_wall(browser, wall, SIZES["hall"])
    page.evaluate("([lat, lon]) => window.onemap.map.setView([lat, lon], 16, { animate: false })", [lat, lon])
    page.wait_for_function("window.onemap.tickets && window.onemap.tickets.loadedCount > 0", timeout=15_000)
    page.wait_for_timeout(500)
    click_latlng(page, [lat, lon])
    page.wait_for_selector(f"#info dl.duty[data-ticket='{tid}']", timeout=15_000)
    info = page.text_content("#info")
    assert f"工单 #{tid}" in info and "undefined" not in info
    assert not [u for u in asked if "/tickets/undefined" in u]
    assert worker in info  # the grid's worker by name, with a phone
    assert re.search(r"1\d{10}", info)
    assert re.search(r"(剩余|已超时) \d+|无进行中的时限", info)
    assert page.locator("#info .badge").count() == 1  # 正常 / 黄牌警示 / 红牌督办
    assert page.get_attribute("#info a.desk-link", "href") == f"/desk?ticket={tid}"
    assert not CODE.search(page.text_content("#info dl.duty"))  # names, not codes
    page.screenshot(path=str(artifacts / "wall-ticket-card.png"))
    context.close()
    assert not errors, errors


def test_grid_worker_sensor_and_camera_cards_speak_chinese_and_name_people(wall, stream, wall_url, browser, artifacts):
    engine = create_engine(wall_url)
    with engine.connect() as conn:
        grid, glon, glat = conn.execute(text(
            "SELECT g.code, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)) FROM grids g"
            " WHERE g.valid_to IS NULL AND EXISTS (SELECT 1 FROM worker_grids a WHERE a.grid_code = g.code)"
            " ORDER BY g.code OFFSET 200 LIMIT 1")).one()
        chief = conn.execute(text("SELECT w.name FROM workers w JOIN worker_grids a ON a.worker_id = w.id"
                                  " WHERE a.grid_code = :g ORDER BY w.id LIMIT 1"), {"g": grid}).scalar_one()
    engine.dispose()
    context, page, errors, _ = open_wall(browser, wall, SIZES["hall"])
    # a grid: its name, the worker answering for it with a phone, the desk; base data only when served (404 today)
    page.evaluate("([lat, lon]) => window.onemap.map.setView([lat, lon], 15, { animate: false })", [glat, glon])
    page.wait_for_timeout(800)
    page.evaluate("window.onemap.workerSet.visible = false; window.onemap.bubbles.visible = false;"
                  " for (const t of Object.values(window.onemap.things)) t.layer.visible = false;")
    click_latlng(page, [glat, glon])
    page.wait_for_selector(f"#info dl.duty[data-grid='{grid}']", timeout=15_000)
    assert chief in page.text_content("#info") and "网格员" in page.text_content("#info")
    assert "基础数据" not in page.text_content("#info")  # GET /grids/{code}/base-summary answers 404 here
    assert page.locator("#info a.desk-link").count() == 1
    assert not CODE.search(page.text_content("#info"))
    # the same card once the grid's base data (人、地、事、物、组织) is loaded: the register's own figures show
    from scripts.demo_basedata import load_basedata

    engine = create_engine(wall_url)
    with Session(engine) as session:
        load_basedata(session, grid_codes=[grid])
        session.commit()
        households = session.scalar(text("SELECT count(*) FROM households WHERE grid_code = :g"), {"g": grid})
    engine.dispose()
    click_latlng(page, [glat, glon])
    page.wait_for_selector("#info .figures.base", timeout=10_000)
    assert f"{households}" in page.text_content("#info .figures.base").replace(",", "")
    assert "常住人口" in page.text_content("#info") and households >= 100

    # a sensor in alarm: Chinese names, units, limits, the alarm and its ticket
    page.wait_for_function("window.onemap.things.sensors && window.onemap.things.sensors.layer.items.length > 0")
    engine = create_engine(wall_url)
    with engine.connect() as conn:
        sensor, slon, slat = conn.execute(text(
            "SELECT s.id, ST_X(s.geom), ST_Y(s.geom) FROM sensors s JOIN sensor_alarms a ON a.sensor_id = s.id"
            " AND a.state = 'open' ORDER BY a.id LIMIT 1")).one()
    engine.dispose()
    page.reload()
    page.wait_for_selector("body[data-complete=true]", timeout=60_000)
    page.evaluate("([lat, lon]) => window.onemap.map.setView([lat, lon], 17, { animate: false })", [slat, slon])
    page.wait_for_timeout(600)
    page.evaluate("window.onemap.workerSet.visible = false; window.onemap.things.cameras.layer.visible = false;")
    click_latlng(page, [slat, slon])
    popup = page.locator(f".sensor-popup[data-sensor='{sensor}']")
    popup.locator(".alarm-box").wait_for(timeout=10_000)
    text_ = popup.text_content()
    assert "细颗粒物" in text_ and "µg/m³" in text_ and "限值 75" in text_ and "告警中" in text_
    assert re.search(r"工单 #\d+", text_)
    page.wait_for_selector(f"#info dl.duty[data-sensor='{sensor}']", timeout=10_000)
    assert "告警工单" in page.text_content("#info")
    page.screenshot(path=str(artifacts / "wall-sensor-card.png"))
    page.click(".leaflet-popup-close-button")

    # a worker: name, phone, grids by name, the desk
    item = page.evaluate("""() => { const it = window.onemap.workerSet.items[0];
        return { id: it.data.id, name: it.data.name, lat: it.latlng.lat, lng: it.latlng.lng }; }""")
    page.evaluate("window.onemap.workerSet.visible = true;")
    page.evaluate("([lat, lon]) => window.onemap.map.setView([lat, lon], 17, { animate: false })", [item["lat"], item["lng"]])
    page.wait_for_timeout(600)
    item = page.evaluate(f"""() => {{ const it = window.onemap.workerSet.items.find((i) => i.data.id === {item['id']!r});
        return {{ lat: it.latlng.lat, lng: it.latlng.lng }}; }}""")
    click_latlng(page, [item["lat"], item["lng"]])
    page.wait_for_selector("#info dl.duty[data-worker]", timeout=10_000)
    worker_card = page.text_content("#info")
    assert re.search(r"电话\s*1\d{10}", worker_card) and "责任网格" in worker_card and "网格" in worker_card
    assert not CODE.search(worker_card)
    context.close()
    assert not errors, errors


def visible_inside(page, selector: str, container: str) -> list[bool]:
    """Whether each element is wholly inside the container's visible box and the viewport."""
    return page.evaluate("""([sel, box]) => { const c = document.querySelector(box).getBoundingClientRect();
        return [...document.querySelectorAll(sel)].map((el) => { const r = el.getBoundingClientRect();
          return r.height > 0 && r.top >= c.top - 1 && r.bottom <= c.bottom + 1 && r.bottom <= innerHeight && r.right <= innerWidth; }); }""",
                         [selector, container])


def overlaps(page) -> list[tuple[str, str]]:
    return page.evaluate("""() => {
      const sels = ["#bar", "#stats", "#left", "#right", "#info", ".leaflet-control-zoom", ".leaflet-control-scale"];
      const boxes = sels.map((s) => [s, document.querySelector(s)]).filter(([, el]) => el && el.offsetParent !== null)
        .map(([s, el]) => [s, el.getBoundingClientRect()]);
      const out = [];
      for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const [a, p] = boxes[i], [b, q] = boxes[j];
        if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1) out.push([a, b]);
      }
      for (const [s, r] of boxes) if (r.right > innerWidth + 1 || r.bottom > innerHeight + 1 || r.left < -1) out.push([s, "viewport"]);
      return out; }""")


def test_the_wall_fits_a_laptop_a_hall_screen_and_a_4k_wall(wall, stream, browser, artifacts):
    drawn = {}
    for name, size in SIZES.items():
        context, page, errors, _ = open_wall(browser, wall, size)
        page.wait_for_selector("#kpis table.kpi")
        page.wait_for_function("document.querySelectorAll('#ranking tbody tr').length === 15")
        page.wait_for_function("document.querySelectorAll('#alarms li').length >= 8", timeout=30_000)
        page.wait_for_timeout(1000)
        assert overlaps(page) == [], name  # panels, the counts strip, the details card and map controls
        if name != "laptop":  # every KPI row, the whole ranking, ≥ 8 feed items without scrolling
            kpi_rows = page.locator("#kpis tbody th").all_text_contents()
            assert "办结率" in kpi_rows and "群众满意率" in kpi_rows
            assert all(visible_inside(page, "#kpis tbody tr", "#kpi-panel")), name
            assert all(visible_inside(page, "#ranking tbody tr", "#ranking-panel")), name
            assert sum(visible_inside(page, "#alarms li", "#alarm-panel")) >= 8, name
        smallest = page.evaluate("""() => { let min = 1e9;
            for (const el of document.querySelectorAll("#bar *, #stats *, #left *, #right *, #info *")) {
              if (!el.offsetParent || ![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
              min = Math.min(min, parseFloat(getComputedStyle(el).fontSize) * el.currentCSSZoom); }
            return min; }""")
        if name == "wall":
            assert smallest >= 26, f"text at {smallest:.1f} px on a 4K wall"
        drawn[name] = page.evaluate("window.onemap.minorLabels.drawn")
        page.screenshot(path=str(artifacts / f"wall-{size[0]}x{size[1]}.png"))
        context.close()
        assert not errors, errors
    assert drawn["wall"] <= drawn["hall"]  # village labels thin out on the 4K wall (same view, more pixels)


def test_the_live_demo_moves_the_wall(wall, stream, browser, artifacts):
    """With the live stream running, the feed gains items within seconds, an alarm flashes red, and
    workers' positions change on the open page."""
    context, page, errors, _ = open_wall(browser, wall, SIZES["hall"])
    page.wait_for_selector("#live-state.on", timeout=15_000)
    before = int(page.get_attribute("body", "data-feed-items") or 0)
    positions = page.evaluate("Object.fromEntries(window.onemap.workerSet.items.map((i) => [i.data.id, [i.latlng.lat, i.latlng.lng]]))")
    start = time.monotonic()
    page.wait_for_function(f"Number(document.body.dataset.feedItems) >= {before + 3}", timeout=40_000)
    page.wait_for_selector("#alarms li.feed-alarm", timeout=90_000)
    page.wait_for_function("""(old) => window.onemap.workerSet.items.some((i) => old[i.data.id]
        && (Math.abs(old[i.data.id][0] - i.latlng.lat) > 1e-6 || Math.abs(old[i.data.id][1] - i.latlng.lng) > 1e-6))""",
                           arg=positions, timeout=30_000)
    page.wait_for_selector("#alarms li.card-red", timeout=90_000)  # a new alarm (or red card): red, flashing
    assert int(page.get_attribute("body", "data-live-events")) >= 3
    feed_text = page.text_content("#alarms")
    assert not CODE.search(feed_text), feed_text  # grid and town names, not codes
    page.screenshot(path=str(artifacts / "wall-live.png"))
    assert time.monotonic() - start < 180
    context.close()
    assert not errors, errors
