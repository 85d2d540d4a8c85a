"""The grid worker's phone and the public report page in headless Chromium at phone size (390×844,
touch, geolocation emulated), against a real server with sign-in ON and a real grid-worker account.

Walk: patrol start → fixes arrive → photo report → the ticket is on the desk (GET /tickets as the town)
and on the big screen's data (open-ticket points, workers' last positions) → offline report → online:
delivered exactly once (also when the answer to a report is lost) → an assigned ticket signed, started
and completed with a photo → a check-in. Then a citizen: public report → follow-up page → handled →
satisfaction captured.
"""

from __future__ import annotations

import time
from io import BytesIO
from pathlib import Path

import httpx
import psycopg
import pytest
from PIL import Image
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser
PASSWORD = "field test password 1"
ART = Path(__file__).resolve().parents[2] / "artifacts"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2,
         "bypass_csp": True, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}


@pytest.fixture(scope="module")
def city(cluster):
    url = demo_copy(cluster, "field")
    from layers.accounts.security import create_user

    engine = create_engine(url)
    with Session(engine) as s:
        from layers.workers.registry import create_worker

        row = s.execute(_sql("SELECT 'W9001', code, village_code, town_code, district_code, "
                             "ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
                             "WHERE valid_to IS NULL AND code LIKE '%001' ORDER BY code LIMIT 1")).one()
        grids = [row[1]]
        create_worker(s, id=row[0], name="王网格", grids=grids)
        create_user(s, username=row[0], password=PASSWORD, role="grid_worker", grid_codes=grids, display_name="网格员")
        create_user(s, username="town1", password=PASSWORD, role="town", area_code=row[3])
        create_user(s, username="centre", password=PASSWORD, role="city")
        s.commit()
    engine.dispose()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    srv = Server(url, ONEMAP_AUTH="true", ONEMAP_SECRET_KEY="field-test-" + "s" * 40, ONEMAP_PUBLIC_MIN_FILL_S="1")
    yield {"server": srv, "dsn": dsn, "worker": row[0], "grid": row[1], "village": row[2], "town": row[3],
           "lon": row[5], "lat": row[6]}
    srv.stop()


def _sql(q):
    from sqlalchemy import text

    return text(q)


def q(city, sql, *args):
    with psycopg.connect(city["dsn"]) as conn:
        return conn.execute(sql, args).fetchall()


def token(city, user):
    r = httpx.post(city["server"].base + "/auth/token", data={"username": user, "password": PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def photo(tmp_path, name="shot.jpg", colour=(30, 120, 60)) -> str:
    path = tmp_path / name
    Image.new("RGB", (640, 480), colour).save(path, "JPEG")
    return str(path)


def wait_for(check, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def phone_context(browser, city):
    ctx = browser.new_context(**PHONE, geolocation={"longitude": city["lon"], "latitude": city["lat"], "accuracy": 8},
                              permissions=["geolocation"])
    return ctx


def report_on_phone(page, text, shot):
    page.click("#tabs button[data-tab=report]")
    page.wait_for_function("document.getElementById('place').dataset.lon")
    page.select_option("#category", "0102")
    page.fill("#description", text)
    page.set_input_files("#photo", shot)
    page.click("#send-report")


def tickets_with(city, text):
    return q(city, "SELECT id, channel, grid_code, (SELECT count(*) FROM ticket_attachments a WHERE a.ticket_id = t.id) "
                   "FROM tickets t WHERE description = %s", text)


def test_the_grid_workers_phone(browser, city, tmp_path):
    base, wid = city["server"].base, city["worker"]
    ctx = phone_context(browser, city)
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/mobile?interval=2")
    page.wait_for_selector("#signin-form")
    page.fill("input[name=username]", wid)
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-form button")
    page.wait_for_selector("#app:not([hidden])")
    assert wid in page.text_content("#who")
    assert page.evaluate("document.querySelector('link[rel=manifest]').href").endswith("/static/mobile.webmanifest")
    page.screenshot(path=str(ART / "field-tasks.png"))

    # patrol: fixes every 2 s reach the ingest
    before = q(city, "SELECT count(*) FROM worker_positions WHERE worker_id = %s", wid)[0][0]
    page.click("#tabs button[data-tab=patrol]")
    page.tap("#patrol")
    ctx.set_geolocation({"longitude": city["lon"] + 0.0003, "latitude": city["lat"] + 0.0002, "accuracy": 8})
    wait_for(lambda: q(city, "SELECT count(*) FROM worker_positions WHERE worker_id = %s", wid)[0][0] >= before + 2,
             what="two fixes stored")
    page.screenshot(path=str(ART / "field-patrol.png"))

    # a photo report: the place is resolved on the phone before sending
    report_on_phone(page, "巡查发现路边垃圾堆积", photo(tmp_path))
    assert "网格" in page.text_content("#place") or page.get_attribute("#place", "data-grid")
    page.wait_for_function("document.getElementById('delivered').textContent.includes('已送达')")
    page.screenshot(path=str(ART / "field-report.png"))
    ((tid, channel, grid, photos),) = tickets_with(city, "巡查发现路边垃圾堆积")
    assert (channel, photos) == ("patrol", 1) and grid in (city["grid"], *[g for (g,) in q(
        city, "SELECT grid_code FROM worker_grids WHERE worker_id = %s", wid)])
    town = token(city, "town1")
    desk = httpx.get(base + "/tickets", params={"channel": "patrol", "limit": 200}, headers=town).json()
    assert tid in [t["id"] for t in desk["items"]]
    points = httpx.get(base + "/tickets/layer/points", headers=town).json()
    assert tid in [f["id"] for f in points["features"]]
    workers = httpx.get(base + "/workers", headers=town).json()
    assert wid in [f["id"] for f in workers["features"]]

    # offline: the report waits on the phone, then is delivered exactly once
    ctx.set_offline(True)
    page.wait_for_function("document.getElementById('net').textContent === '离线'")
    report_on_phone(page, "离线时发现井盖破损", photo(tmp_path, "b.jpg", (90, 90, 200)))
    page.wait_for_function("Number(document.getElementById('queue-count').textContent) >= 1")
    time.sleep(3)
    assert tickets_with(city, "离线时发现井盖破损") == []
    page.screenshot(path=str(ART / "field-offline.png"))
    ctx.set_offline(False)
    page.wait_for_function("document.getElementById('delivered').textContent.includes('离线时发现井盖破损'.slice(0, 8))",
                           timeout=30000)
    time.sleep(3)
    ((_, _, _, photos),) = tickets_with(city, "离线时发现井盖破损")
    assert photos == 1

    # the answer lost on the way back: the retry (same Idempotency-Key) makes no second ticket
    lost = {"n": 0}

    def drop_first_answer(route):
        if route.request.method == "POST" and lost["n"] == 0:
            lost["n"] += 1
            route.fetch()  # the server creates the ticket...
            route.abort("connectionreset")  # ...and the phone never hears
        else:
            route.continue_()

    page.route("**/tickets", drop_first_answer)
    report_on_phone(page, "答复丢失的上报", photo(tmp_path, "c.jpg", (200, 200, 40)))
    page.wait_for_function("document.getElementById('delivered').textContent.includes('答复丢失的上报')", timeout=40000)
    page.unroute("**/tickets")
    assert lost["n"] == 1 and len(tickets_with(city, "答复丢失的上报")) == 1

    # an assigned ticket: signed, started and completed with a photo on the phone
    centre = token(city, "centre")
    t = httpx.post(base + "/tickets", headers=centre, json={"channel": "hotline", "category": "0101",
                   "description": "群众反映私搭乱建", "lon": city["lon"], "lat": city["lat"]}).json()
    httpx.post(f"{base}/tickets/{t['id']}/dispatch", headers=centre, json={
        "actor": "centre", "role": "city", "payload": {"assignee": t["village_code"]}}).raise_for_status()
    page.click("#tabs button[data-tab=tasks]")
    page.click("#reload-tasks")
    page.tap(f"#tasks li[data-id='{t['id']}']")
    for move in ("sign", "start"):
        page.tap(f"#task-moves button[data-move={move}]")
    page.fill("#task-note", "已现场劝导拆除")
    page.set_input_files("#task-photo", photo(tmp_path, "d.jpg", (10, 10, 10)))
    page.tap("#task-moves button[data-move=complete]")
    page.tap("#task-checkin")
    page.screenshot(path=str(ART / "field-handle.png"))
    wait_for(lambda: q(city, "SELECT state FROM tickets WHERE id = %s", t["id"])[0][0] == "completed",
             what="ticket completed")
    moves = q(city, "SELECT move, role, actor FROM ticket_events WHERE ticket_id = %s AND move IN "
                    "('sign', 'start', 'complete') ORDER BY at", t["id"])
    assert [(m, r, a) for m, r, a in moves] == [(m, "grid_worker", wid) for m in ("sign", "start", "complete")]
    assert q(city, "SELECT count(*) FROM ticket_attachments WHERE ticket_id = %s", t["id"])[0][0] == 1
    wait_for(lambda: q(city, "SELECT distance_m FROM worker_checkins WHERE worker_id = %s AND ticket_id = %s",
                       wid, t["id"]), what="check-in stored")
    page.click("#tabs button[data-tab=patrol]")
    page.tap("#patrol")  # stop
    page.screenshot(path=str(ART / "field-done.png"))
    assert page.text_content("#queue-count") == "0"
    assert not errors, errors
    ctx.close()


SHELL = {"/mobile", "/static/mobile.js", "/static/filepick.js", "/static/mobile.css", "/static/mobile.webmanifest",
         "/static/icons/field-192.png", "/static/icons/field-512.png"}


def test_the_phone_installs_and_opens_offline(browser, city, tmp_path):
    """Installable PWA: the service worker controls /mobile, the manifest is what Chromium accepts, and a
    reload without network opens the cached app with the offline badge and the reports still queued."""
    base, wid = city["server"].base, city["worker"]
    ctx = browser.new_context(**PHONE, service_workers="allow", permissions=["geolocation"],
                              geolocation={"longitude": city["lon"], "latitude": city["lat"], "accuracy": 8})
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/mobile")
    page.fill("input[name=username]", wid)
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-form button")
    page.wait_for_selector("#app:not([hidden])")

    # the worker installed (the shell cached), activated and claimed this very page
    page.wait_for_function("navigator.serviceWorker.controller && navigator.serviceWorker.controller.state === 'activated'")
    reg = page.evaluate("navigator.serviceWorker.getRegistration().then(r => [r.scope, r.active.scriptURL])")
    assert reg == [base + "/mobile", base + "/mobile-sw.js"]
    assert page.evaluate("window.swError") is None
    cached = page.evaluate("caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k).then(c => c.keys()))))"
                           ".then(rs => rs.flat().map(r => new URL(r.url).pathname))")
    assert set(cached) == SHELL

    # the manifest: Chromium parses it without errors and finds nothing that stops installing
    href = page.evaluate("document.querySelector('link[rel=manifest]').href")
    answer = httpx.get(href)
    assert answer.headers["content-type"].startswith("application/manifest+json")
    manifest = answer.json()
    assert manifest["name"] == "OneMap 网格员" and manifest["display"] == "standalone"
    assert manifest["start_url"] == "/mobile" and manifest["start_url"].startswith(manifest["scope"])
    sizes = set()
    for icon in manifest["icons"]:
        r = httpx.get(base + icon["src"])
        assert r.status_code == 200 and r.headers["content-type"] == icon["type"] == "image/png"
        width, height = Image.open(BytesIO(r.content)).size
        assert f"{width}x{height}" == icon["sizes"]
        sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes
    cdp = ctx.new_cdp_session(page)
    parsed = cdp.send("Page.getAppManifest")
    assert parsed["url"] == href and parsed["errors"] == [], parsed["errors"]
    # a test context is an incognito profile, where Chromium never installs; the app itself must add nothing
    blockers = {e["errorId"] for e in cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]}
    assert blockers <= {"in-incognito"}, blockers

    # offline: a report waits in IndexedDB; a reload is answered by the worker from its cache
    ctx.set_offline(True)
    page.wait_for_function("document.getElementById('net').textContent === '离线'")
    report_on_phone(page, "离线保存后重新打开应用", photo(tmp_path, "sw.jpg", (150, 40, 40)))
    page.wait_for_function("document.getElementById('pending').textContent.includes('离线保存后重新打开应用')")
    response = page.reload()
    assert response is not None and response.from_service_worker and response.status == 200
    page.wait_for_selector("#app:not([hidden])")
    assert page.text_content("#net") == "离线" and page.get_attribute("#net", "class") == "offline"
    assert wid in page.text_content("#who")  # the last known worker, no network needed
    page.click("#tabs button[data-tab=report]")
    page.wait_for_function("document.getElementById('pending').textContent.includes('离线保存后重新打开应用')")
    assert int(page.text_content("#queue-count")) >= 1
    assert page.evaluate("document.querySelectorAll('#category option').length") > 10  # the picker, from the phone
    page.screenshot(path=str(ART / "field-offline-reload.png"))
    assert tickets_with(city, "离线保存后重新打开应用") == []

    # back online: the queued report goes out, once, with its photo
    ctx.set_offline(False)
    page.wait_for_function("document.getElementById('delivered').textContent.includes('离线保存后重新打开应用')")
    page.wait_for_function("document.getElementById('pending').children.length === 0")
    ((_, channel, _, photos),) = tickets_with(city, "离线保存后重新打开应用")
    assert (channel, photos) == ("patrol", 1)
    page.screenshot(path=str(ART / "field-back-online.png"))
    assert not errors, errors
    ctx.close()


def test_public_report_and_follow_up(browser, city, tmp_path):
    base = city["server"].base
    ctx = phone_context(browser, city)
    page = ctx.new_page()
    page.goto(base + "/report")
    page.wait_for_selector("#category optgroup", state="attached")
    page.select_option("#category", "0104")
    page.fill("#description", "市民随手拍：小区门口垃圾没人清")
    page.set_input_files("#photo", photo(tmp_path, "p.jpg"))
    page.click("#use-location")
    page.wait_for_function("document.getElementById('place').textContent.includes('已定位')")
    page.fill("input[name=phone]", "13912345678")
    time.sleep(1.2)  # the minimum fill time
    page.click("#send")
    page.wait_for_selector("#done:not([hidden])")
    code = page.text_content("#code")
    page.screenshot(path=str(ART / "report-sent.png"))
    ((tid, channel),) = q(city, "SELECT t.id, t.channel FROM public_reports p JOIN tickets t ON t.id = p.ticket_id "
                                "WHERE p.code = %s", code)
    assert channel == "app"
    assert q(city, "SELECT count(*) FROM ticket_attachments WHERE ticket_id = %s", tid)[0][0] == 1
    page.click("#follow-link")
    page.wait_for_function("document.getElementById('history').children.length >= 1")
    assert "已受理" in page.text_content("#history") and "13912345678" not in page.content()
    # handled by the town, reviewed by the centre (a town does not review its own work): the citizen
    # rates it on the follow-up page
    centre, town = token(city, "centre"), token(city, "town1")
    t = httpx.get(f"{base}/tickets/{tid}", headers=centre).json()
    steps = [(centre, "dispatch", "city", {"assignee": t["town_code"]}, None), (town, "sign", "town", {}, None),
             (town, "start", "town", {}, None), (town, "complete", "town", {}, "已清运"),
             (centre, "review_pass", "city", {}, None)]
    for who, move, role, payload, note in steps:
        r = httpx.post(f"{base}/tickets/{tid}/{move}", headers=who,
                       json={"actor": role, "role": role, "payload": payload, "note": note})
        assert r.status_code == 200, r.text
    page.reload()
    page.wait_for_selector("#rate:not([hidden])")
    page.screenshot(path=str(ART / "report-rate.png"))
    page.click("#stars button[data-score='4']")
    page.wait_for_function("document.getElementById('msg').textContent.includes('感谢')")
    page.screenshot(path=str(ART / "report-rated.png"))
    ((state, revisited, satisfied),) = q(city, "SELECT state, revisited, satisfied FROM tickets WHERE id = %s", tid)
    assert (state, revisited, satisfied) == ("revisited", True, True)
    assert q(city, "SELECT payload->>'satisfaction' FROM ticket_events WHERE ticket_id = %s AND move = 'revisit'",
             tid) == [("4",)]
    kpi = httpx.get(base + "/kpis", params={"level": "town", "code": t["town_code"]}, headers=centre).json()
    assert kpi["rows"], kpi
    ctx.close()


def test_a_citizen_places_the_report_on_the_map_and_sends_it_back_unsatisfied(browser, city, tmp_path):
    """/report with no location permission: a tap on the town map places it; the follow-up page shows the
    report; after handling, 不满意 sends it back for a second handling instead of closing it."""
    base = city["server"].base
    ctx = browser.new_context(**PHONE)  # no geolocation: the map is how this citizen gives the place
    page = ctx.new_page()
    page.set_default_timeout(30000)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/report")
    page.wait_for_selector("#pick-map[data-ready='1']")
    page.wait_for_selector("#category optgroup", state="attached")

    # the base map holds the towns' outlines and names, nothing from the grids
    outline = httpx.get(base + "/public/outline").json()
    towns = q(city, "SELECT name FROM areas WHERE level = 'town' AND valid_to IS NULL")
    assert sorted(f["properties"]["name"] for f in outline["features"]) == sorted(n for (n,) in towns)
    assert all(set(f["properties"]) == {"name"} for f in outline["features"])
    grid_names = {n for (n,) in q(city, "SELECT name FROM grids WHERE valid_to IS NULL")}
    assert not [n for n in grid_names if n in page.content() or n in str(outline)]
    assert page.evaluate("document.querySelectorAll('#pick-map path.leaflet-interactive').length") == len(towns)

    ((town_code, town_name, lon, lat),) = q(city, "SELECT code, name, ST_X(p), ST_Y(p) FROM (SELECT code, name, "
                                                  "ST_PointOnSurface(geom) p FROM areas WHERE level = 'town' AND "
                                                  "valid_to IS NULL ORDER BY code DESC LIMIT 1) s")
    box = page.locator("#pick-map").bounding_box()

    def tap_at_the_town():
        x, y = page.evaluate(f"(() => {{ const p = reportMap.latLngToContainerPoint([{lat}, {lon}]); "
                             "return [p.x, p.y]; })()")
        page.mouse.click(box["x"] + x, box["y"] + y)

    tap_at_the_town()  # on the whole city: placed roughly, and the map zooms in there
    page.wait_for_function("document.getElementById('place').textContent.includes('再点一次')")
    assert town_name in page.text_content("#place") and page.evaluate("reportMap.getZoom()") == 16
    page.wait_for_timeout(800)  # the zoom animation
    # the exact tap, a little off the centre: the report must land where this pixel is on the map
    px, py = box["width"] / 2 + 40, box["height"] / 2 + 30
    lat, lon = page.evaluate(f"(() => {{ const p = reportMap.containerPointToLatLng([{px}, {py}]); return [p.lat, p.lng]; }})()")
    ((town_code, town_name),) = q(city, "SELECT code, name FROM areas WHERE level = 'town' AND valid_to IS NULL AND "
                                        "ST_Contains(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))", lon, lat)
    box = page.locator("#pick-map").bounding_box()  # the longer place line above moved the map down
    page.mouse.click(box["x"] + px, box["y"] + py)
    page.wait_for_function("document.getElementById('place').textContent.includes('地图选点）')")
    assert town_name in page.text_content("#place")
    page.select_option("#category", "0104")
    page.fill("#description", "市民地图选点：桥下涵洞积水")
    time.sleep(1.2)  # the minimum fill time
    page.locator("#pick-map").scroll_into_view_if_needed()
    page.screenshot(path=str(ART / "report-map-pick.png"))
    page.click("#send")
    page.wait_for_selector("#done:not([hidden])")
    code = page.text_content("#code")
    ((tid, got_town, off_m),) = q(city, "SELECT t.id, t.town_code, ST_Distance(t.geom::geography, "
                                        "ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) FROM public_reports p "
                                        "JOIN tickets t ON t.id = p.ticket_id WHERE p.code = %s", lon, lat, code)
    assert got_town == town_code and off_m < 10, (got_town, off_m)  # a pixel at zoom 16 is ~2 m
    page.click("#follow-link")
    page.wait_for_function("document.getElementById('history').children.length >= 1")
    assert town_name in page.text_content("#summary") and "桥下涵洞积水" in page.text_content("#summary")
    assert "已受理" in page.text_content("#history")
    page.screenshot(path=str(ART / "report-follow.png"))

    # handled by that town, reviewed by the centre; the citizen is not satisfied
    from layers.accounts.security import create_user

    engine = create_engine(city["dsn"].replace("postgresql://", "postgresql+psycopg://", 1))
    with Session(engine) as s:
        create_user(s, username="town-map", password=PASSWORD, role="town", area_code=town_code)
        s.commit()
    engine.dispose()
    centre, town = token(city, "centre"), token(city, "town-map")
    steps = [(centre, "dispatch", "city", {"assignee": town_code}, None), (town, "sign", "town", {}, None),
             (town, "start", "town", {}, None), (town, "complete", "town", {}, "已疏通"),
             (centre, "review_pass", "city", {}, None)]
    for who, move, role, payload, note in steps:
        r = httpx.post(f"{base}/tickets/{tid}/{move}", headers=who, json={"role": role, "payload": payload, "note": note})
        assert r.status_code == 200, r.text
    page.reload()
    page.wait_for_selector("#rate:not([hidden])")
    page.click("#stars button[data-score='2']")
    page.wait_for_function("document.getElementById('msg').textContent.includes('已退回')")
    assert page.is_hidden("#rate") and "重新办理" in page.text_content("#history")
    page.screenshot(path=str(ART / "report-unsatisfied.png"))
    ((state, satisfied, rework),) = q(city, "SELECT state, satisfied, rework_count FROM tickets WHERE id = %s", tid)
    assert (state, satisfied, rework) == ("handling", False, 1)
    # the second handling, reviewed again: the page asks again
    for who, move, role, note in [(town, "complete", "town", "二次处置：已加装排水泵"), (centre, "review_pass", "city", None)]:
        r = httpx.post(f"{base}/tickets/{tid}/{move}", headers=who, json={"role": role, "payload": {}, "note": note})
        assert r.status_code == 200, r.text
    page.reload()
    page.wait_for_selector("#rate:not([hidden])")
    assert "请再次评价" in page.text_content("#state")
    page.click("#stars button[data-score='5']")
    page.wait_for_function("document.getElementById('msg').textContent.includes('感谢')")
    assert q(city, "SELECT state, satisfied FROM tickets WHERE id = %s", tid) == [("revisited", True)]
    assert not errors, errors
    ctx.close()
