"""The big screen's live feed (实时动态) reads as the command hall reads: every line in Chinese (no
internal move or event names such as ``attach``), and a camera that keeps raising the same alarm is one
line with a count (×N), not a column of 不予立案 duplicates. The records stay whole: every alarm still
opens its report, each duplicate closed and linked to the first."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser
CAMERA = "FEED-CAM-1"
ENGLISH = re.compile(r"[a-z_]{3,}")  # an internal name (attach, duplicate, verify_fix …) leaking into a line


@pytest.fixture(scope="module")
def feed_url(cluster) -> str:
    """The demo city with one street camera and its illegal-parking rule (no video: alarms are raised
    through the alarm layer's own path, as the YOLO runner raises them)."""
    from layers.cameras import service

    url = demo_copy(cluster, "wallfeed")
    engine = create_engine(url)
    with Session(engine) as session:
        lon, lat = session.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grids"
            " WHERE valid_to IS NULL ORDER BY code OFFSET 200 LIMIT 1) s")).one()
        service.create_camera(session, id=CAMERA, name="文化路口东向", lon=lon, lat=lat, heading_deg=90.0)
        service.add_rule(session, CAMERA, "parking", name="禁停路段违停", min_dwell_s=8.0)
        session.commit()
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def feed_server(feed_url) -> Iterator[Server]:
    srv = Server(feed_url, ONEMAP_AUTH="off")
    yield srv
    srv.stop()


@pytest.fixture
def hall(browser):
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def open_wall(page, server: Server) -> None:
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-complete=true]", timeout=60_000)
    page.wait_for_selector("#live-state.on", timeout=15_000)


def feed_lines(page) -> list[str]:
    return page.eval_on_selector_all("#alarms li", "els => els.map((e) => e.innerText.replace(/\\s+/g, ' '))")


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def test_every_feed_line_is_chinese_photos_dispatches_and_rejections_included(feed_server, hall, artifacts):
    open_wall(hall, feed_server)
    base = feed_server.base
    new = lambda lon, lat, what: httpx.post(base + "/tickets", json={  # noqa: E731
        "channel": "hotline", "category": "0102", "severity": "general", "description": what, "lon": lon, "lat": lat},
        timeout=60).json()
    first = new(118.79, 36.86, "路边暴露垃圾，气味较大")
    photo = httpx.post(f"{base}/tickets/{first['id']}/attachments",
                       files={"file": ("现场.jpg", jpeg(), "image/jpeg")}, timeout=60)
    assert photo.status_code == 201, photo.text
    hall.wait_for_function(f"[...document.querySelectorAll('#alarms li')].some((li) => li.innerText.includes('#{first['id']}')"
                           " && li.innerText.includes('上传照片'))", timeout=15_000)
    moved = httpx.post(f"{base}/tickets/{first['id']}/dispatch",
                       json={"role": "district", "payload": {"assignee": first["town_code"]}}, timeout=60)
    assert moved.status_code == 200, moved.text
    other = new(118.72, 36.93, "楼道堆放杂物")
    refused = httpx.post(f"{base}/tickets/{other['id']}/reject", json={"role": "district", "note": "非本区事项"}, timeout=60)
    assert refused.status_code == 200, refused.text
    # a manual 不予立案 is news (only the intake's duplicates fold): it shows, in Chinese
    hall.wait_for_function(f"[...document.querySelectorAll('#alarms li')].some((li) => li.innerText.includes('#{other['id']}')"
                           " && li.innerText.includes('不予立案'))", timeout=15_000)
    hall.wait_for_function(f"[...document.querySelectorAll('#alarms li')].some((li) => li.innerText.includes('#{first['id']}')"
                           " && li.innerText.includes('派遣'))", timeout=15_000)
    hall.wait_for_timeout(500)
    hall.screenshot(path=str(artifacts / "wall-feed-chinese-1920.png"))
    lines = feed_lines(hall)
    assert len(lines) >= 2
    leaked = [line for line in lines if ENGLISH.search(line)]
    assert not leaked, f"feed lines with internal names: {leaked}"


def raise_alarms(url: str, times: int) -> list[int]:
    """The camera raises the same illegal-parking alarm ``times`` times, each ending before the next
    (what a car parking and leaving again does); returns the alarms' ticket ids."""
    from layers.cameras import alarms
    from layers.cameras.models import Camera, CameraRule
    from layers.cameras.rules import AlarmEvent
    from layers.cameras.service import rule_of

    engine = create_engine(url)
    tickets = []
    with Session(engine) as session:
        rule = rule_of(session.query(CameraRule).filter_by(camera_id=CAMERA).one())
        camera = session.get(Camera, CAMERA)
        for _ in range(times):
            t = time.time()
            alarm = alarms.handle(session, camera, AlarmEvent("start", rule, t, 1, (), 9.0), at=datetime.now(UTC))
            session.commit()
            tickets.append(alarm.ticket_id)
            time.sleep(0.3)
            alarms.handle(session, camera, AlarmEvent("end", rule, t + 1, 0, (), 0.0), at=datetime.now(UTC))
            session.commit()
            time.sleep(0.3)
    engine.dispose()
    return tickets


def test_a_camera_repeating_its_alarm_is_one_line_with_a_count(feed_server, feed_url, hall, artifacts):
    open_wall(hall, feed_server)
    tickets = raise_alarms(feed_url, 5)
    root = tickets[0]
    assert set(tickets) == {root}  # each re-raised alarm joins the first, still open ticket
    hall.wait_for_selector(f"#alarms li[data-camera='{CAMERA}'][data-count='5']", timeout=20_000)
    hall.wait_for_selector(f"#alarms li[data-ticket='{root}'][data-count='5']", timeout=20_000)
    hall.wait_for_timeout(1500)  # the duplicates' own lookups have answered
    hall.screenshot(path=str(artifacts / "wall-feed-folded-1920.png"))
    lines = feed_lines(hall)
    assert len([line for line in lines if "违章停车" in line and "视频告警" in line]) == 1, lines
    assert not [line for line in lines if "不予立案" in line], lines
    assert "×5" in hall.inner_text(f"#alarms li[data-camera='{CAMERA}']")
    # the records are whole: five reports, four closed as duplicates of the first
    engine = create_engine(feed_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, duplicate_of, state FROM tickets WHERE source_ref = :r ORDER BY id"),
                            {"r": f"camera:{CAMERA}"}).all()
    engine.dispose()
    assert len(rows) == 5 and rows[0].id == root and rows[0].duplicate_of is None
    assert all(r.duplicate_of == root and r.state == "closed" for r in rows[1:])
