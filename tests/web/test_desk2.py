"""Issue 16, the desk as a hotline operator and a clerk use it: departments and places by name (list,
detail, dispatch picker, timeline), the intake form (受理登记), the unplaced queue (未定位) placed by a
click on the inset map, photos, the server's urgency order; the export page's new layers. Screenshots
at 1366×768 and 1920×1080."""

from __future__ import annotations

import re
import struct
import zlib

import httpx
import pytest

pytestmark = pytest.mark.browser

SIZES = [(1366, 768), (1920, 1080)]


def png(width: int = 48, height: int = 32) -> bytes:
    """A real PNG (an orange-blue gradient) made here, so the upload is a photo and not a fixture file."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (255, 4 * y % 256, 8 * x % 256))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


_spot = iter(range(1000))


def report(server, **extra) -> dict:
    """A new report ~150 m from the last one (the same spot and category would be linked as a duplicate)."""
    k = next(_spot)
    body = {"channel": "hotline", "category": "0102", "severity": "general", "description": "菜市场门口垃圾堆积",
            "lon": 118.80 + 0.0017 * (k % 30), "lat": 36.93 + 0.0013 * (k // 30), "reporter_name": "王女士", **extra}
    res = httpx.post(server.base + "/tickets", timeout=60, json=body)
    assert res.status_code == 201, res.text
    return res.json()


@pytest.fixture
def sized(browser):
    """Pages at the two hall sizes; JavaScript errors fail the test."""
    made = []

    def open_page(width: int, height: int):
        context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        made.append((context, errors))
        return page
    yield open_page
    for context, errors in made:
        context.close()
        assert not errors, f"JavaScript errors: {errors}"


def desk(page, server, ticket_id: int | None = None) -> None:
    page.goto(f"{server.base}/desk" + (f"#{ticket_id}" if ticket_id else ""))
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    if ticket_id:
        page.wait_for_selector("#detail .timeline")


def click_map_centre(page) -> None:
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


@pytest.mark.parametrize("size", SIZES)
def test_departments_and_places_by_name_and_dispatch_to_a_department(server, sized, size, artifacts):
    t = report(server)
    page = sized(*size)
    desk(page, server, t["id"])
    groups = page.eval_on_selector_all("#assignee optgroup", "els => els.map(e => e.label)")
    assert groups == ["镇街", "职能部门", "公用企业"]
    assert page.eval_on_selector("#assignee", "el => el.value") == t["town_code"]
    assert "环境卫生服务中心" in page.text_content("#detail .facts .unit")  # the category's department, by name
    page.select_option("#assignee", "sanitation")
    page.click("#detail [data-move=dispatch]")
    page.wait_for_selector("#detail .timeline[data-events='2'], #move-result .message", timeout=30_000)
    assert page.locator("#move-result .message").count() == 0, page.text_content("#move-result")
    assert "承办：环境卫生服务中心" in page.text_content("#detail .timeline")
    assert page.text_content("#detail .facts .unit").startswith("环境卫生服务中心")
    page.wait_for_selector(f"#tickets tr[data-id='{t['id']}'] td.unit:has-text('环境卫生服务中心')")
    table = page.text_content("#tickets")
    assert "sanitation" not in table and not re.search(r"\d{12}", table)  # names, never codes
    facts = page.text_content("#detail .facts")
    assert not re.search(r"(?<!网格 )\b\d{12}\b", facts) and "sanitation" not in facts
    page.screenshot(path=str(artifacts / f"desk2-department-{size[0]}x{size[1]}.png"))


@pytest.mark.parametrize("size", SIZES)
def test_each_ticket_is_one_line_of_state_card_and_overdue(server, sized, size, artifacts):
    report(server)
    page = sized(*size)
    desk(page, server)
    page.wait_for_selector("#tickets tbody tr[data-id]")
    # a state, a card or an "overdue by" broken over several lines (处/置/中) made a 1366-px desk show
    # seven tickets where twelve fit: each of those cells is one line box
    lines = page.eval_on_selector_all("#tickets tbody tr[data-id]", """rows => rows.flatMap(r =>
        [1, 3, 4, 9].map(i => r.children[i - 1]).filter(td => td && td.textContent.trim()).map(td => {
            const range = document.createRange(); range.selectNodeContents(td);
            return new Set([...range.getClientRects()].map(b => Math.round(b.top))).size; }))""")
    assert lines and max(lines) == 1, lines
    page.screenshot(path=str(artifacts / f"desk2-list-{size[0]}x{size[1]}.png"))


def test_the_list_is_the_servers_urgency_order(server, page):
    report(server)
    with page.expect_request(lambda r: "/tickets?" in r.url and "sort=urgency" in r.url):
        desk(page, server)
    ids = [int(x) for x in page.eval_on_selector_all("#tickets tbody tr[data-id]", "els => els.map(e => e.dataset.id)")]
    want = httpx.get(server.base + "/tickets", params={"sort": "urgency", "limit": 20}, timeout=60).json()["items"]
    assert ids == [w["id"] for w in want] and ids


@pytest.mark.parametrize("size", SIZES)
def test_hotline_intake_form_files_a_ticket_and_opens_it(server, sized, size, artifacts):
    placed = report(server)  # opening it centres the inset map on a gridded street
    page = sized(*size)
    desk(page, server, placed["id"])
    page.click("[data-view=intake]")
    page.wait_for_selector("#intake")
    majors = page.eval_on_selector_all("#in-category optgroup", "els => els.map(e => e.label)")
    assert "市容环境" in majors and len(majors) > 3
    page.click("#in-submit")
    assert "请填写：事件类别、事件描述、地址或地图选点" in page.text_content("#intake-result")
    page.select_option("#in-channel", "hotline")
    page.select_option("#in-category", "0104")
    assert "立案条件" in page.text_content("#in-condition")
    page.select_option("#in-severity", "important")
    page.fill("#in-description", "来电反映：路口垃圾堆积，气味很大")
    page.fill("#in-name", "赵先生")
    page.fill("#in-phone", "13812345678")
    click_map_centre(page)
    assert "已在地图上选点" in page.text_content("#intake-where")
    page.screenshot(path=str(artifacts / f"desk2-intake-{size[0]}x{size[1]}.png"))
    page.click("#in-submit")
    page.wait_for_selector("#move-result .message.ok", timeout=30_000)
    new_id = int(page.evaluate("location.hash.slice(1)"))
    assert new_id > placed["id"] and f"工单 #{new_id}" in page.text_content("#detail h2")
    made = httpx.get(f"{server.base}/tickets/{new_id}", timeout=60).json()
    assert made["category"] == "0104" and made["severity"] == "important" and made["reporter_name"] == "赵先生"
    assert made["town_code"] == placed["town_code"] and not made["unplaced"]
    assert "赵先生" in page.text_content("#detail .facts") and "已受理" in page.text_content("#move-result")
    page.screenshot(path=str(artifacts / f"desk2-intake-done-{size[0]}x{size[1]}.png"))


@pytest.mark.parametrize("size", SIZES)
def test_unplaced_queue_is_placed_by_a_click_on_the_map_by_the_centre_only(server, sized, size, artifacts):
    placed = report(server)
    lost = report(server, lon=None, lat=None, address="查无此地的某某巷子深处", description="来电说不清楚位置的井盖缺失",
                  category="0102")
    assert lost["unplaced"]
    page = sized(*size)
    desk(page, server, placed["id"])
    # the queue's own answer, not the full list still on screen (which may show the lost ticket too)
    with page.expect_response(lambda r: "/tickets?" in r.url and "unplaced=true" in r.url):
        page.click("[data-view=unplaced]")
    page.wait_for_selector(f"#tickets tr[data-id='{lost['id']}']")
    page.wait_for_function("() => [...document.querySelectorAll('#tickets tbody tr[data-id]')]"
                           ".every(r => r.textContent.includes('未定位'))", timeout=10_000)
    rows = page.eval_on_selector_all("#tickets tbody tr[data-id]", "els => els.map(e => e.textContent)")
    assert rows and all("未定位" in r for r in rows)
    page.click(f"#tickets tr[data-id='{lost['id']}']")
    page.wait_for_selector("#place-hint")
    assert "地址未能匹配到标准地址" in page.text_content("#place-hint")
    assert not re.search(r"[A-Za-z]{4,}", page.text_content("#place-hint") + page.text_content("#nearest"))  # no English
    assert page.is_visible("#map-hint") and "定位" in page.text_content("#map-hint")
    page.select_option("#role", "town")  # the demo's role switch: a town may not place
    click_map_centre(page)
    assert "区、市指挥中心" in page.text_content("#move-result")
    assert httpx.get(f"{server.base}/tickets/{lost['id']}", timeout=60).json()["unplaced"]
    page.screenshot(path=str(artifacts / f"desk2-unplaced-refused-{size[0]}x{size[1]}.png"))
    page.select_option("#role", "district")
    click_map_centre(page)
    page.wait_for_selector("#move-result .message.ok", timeout=30_000)
    after = httpx.get(f"{server.base}/tickets/{lost['id']}", timeout=60).json()
    assert not after["unplaced"] and after["town_code"] == placed["town_code"]
    assert "已定位到" in page.text_content("#move-result") and after["timeline"][-1]["move"] == "place"
    assert not page.is_visible("#place-hint") and page.is_hidden("#map-hint")
    page.screenshot(path=str(artifacts / f"desk2-unplaced-placed-{size[0]}x{size[1]}.png"))


@pytest.mark.parametrize("size", SIZES)
def test_photos_show_as_thumbnails_and_upload_from_the_detail(server, sized, size, artifacts, tmp_path):
    t = report(server)
    first = httpx.post(f"{server.base}/tickets/{t['id']}/attachments", timeout=60,
                       files={"file": ("现场.png", png(), "image/png")}, data={"uploaded_by": "网格员"})
    assert first.status_code == 201, first.text
    page = sized(*size)
    desk(page, server, t["id"])
    page.wait_for_function("[...document.querySelectorAll('#detail .photos img')].every(i => i.complete && i.naturalWidth === 48)")
    assert page.locator("#detail .photos img").count() == 1
    text_file = tmp_path / "说明.txt"
    text_file.write_text("不是照片")
    page.set_input_files("#photo", str(text_file))
    page.click("#upload button")
    page.wait_for_selector("#upload-result .message.bad")
    assert "JPEG、PNG 或 WebP" in page.text_content("#upload-result")
    photo = tmp_path / "处置后.png"
    photo.write_bytes(png(64, 40))
    page.set_input_files("#photo", str(photo))
    page.click("#upload button")
    page.wait_for_selector("#upload-result .message.ok", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('#detail .photos img').length === 2 && "
                           "[...document.querySelectorAll('#detail .photos img')].every(i => i.complete && i.naturalWidth > 0)")
    assert "照片 处置后.png" in page.text_content("#detail .timeline")
    got = httpx.get(f"{server.base}/tickets/{t['id']}", timeout=60).json()["attachments"]
    assert [a["filename"] for a in got] == ["现场.png", "处置后.png"]
    page.screenshot(path=str(artifacts / f"desk2-photos-{size[0]}x{size[1]}.png"))


@pytest.mark.parametrize("size", SIZES)
def test_export_page_offers_tracks_detections_and_alarms(server, sized, size, artifacts):
    page = sized(*size)
    page.goto(f"{server.base}/exports")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    options = page.eval_on_selector_all("#layer option", "els => els.map(e => e.value)")
    assert {"worker_tracks", "detections", "alarms"} <= set(options)
    for layer, words in (("worker_tracks", "巡查轨迹"), ("detections", "视频识别"), ("alarms", "视频告警")):
        page.select_option("#layer", layer)
        assert words in page.text_content("#layer-about")
        assert page.is_visible("#from")  # each has a time filter
        page.wait_for_function("document.body.dataset.count !== ''")
        count = int(page.get_attribute("body", "data-count"))
        href = page.get_attribute("#download", "href")
        res = httpx.get(server.base + href.replace("format=shp", "format=geojson"), timeout=120)
        assert res.status_code == 200 and len(res.json()["features"]) == count
    page.select_option("#layer", "worker_tracks")
    page.wait_for_function("document.body.dataset.count !== ''")
    assert "个要素" in page.text_content("#count")
    page.screenshot(path=str(artifacts / f"export-tracks-{size[0]}x{size[1]}.png"))


def test_big_screen_links_open_the_ticket_or_the_grid(server, page):
    """The wall's cards link to /desk?ticket=ID and /desk?grid=CODE: the desk opens that ticket, or lists
    only that grid's tickets."""
    t = report(server)
    other = next(o for o in (report(server) for _ in range(30)) if o["grid_code"] != t["grid_code"])
    page.goto(f"{server.base}/desk?ticket={t['id']}")
    page.wait_for_selector("body[data-ready=true]")
    assert f"#{t['id']}" in page.text_content("#detail")
    page.goto(f"{server.base}/desk?grid={t['grid_code']}")
    page.wait_for_selector("body[data-ready=true]")
    assert "网格" in page.text_content("#grid-chip")
    ids = {int(x) for x in page.eval_on_selector_all("#tickets tbody tr[data-id]", "els => els.map(e => e.dataset.id)")}
    want = httpx.get(server.base + "/tickets", params={"grid": t["grid_code"], "limit": 20}, timeout=60).json()
    assert t["id"] in ids and other["id"] not in ids and ids == {w["id"] for w in want["items"]}
