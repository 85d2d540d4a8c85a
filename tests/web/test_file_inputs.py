"""Every page with a file input shows a Chinese button and the chosen file's name, not the browser's
own "Choose File / No file chosen": the public report page and the phone at 390×844, the desk's photo
upload at 1920×1080. Choosing a file names it; the file still goes out with the form."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2,
         "bypass_csp": True, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}
WORKER = "W7001"


@pytest.fixture(scope="module")
def files_server(cluster) -> Iterator[Server]:
    from layers.workers.registry import create_worker

    url = demo_copy(cluster, "filepick")
    engine = create_engine(url)
    with Session(engine) as session:
        grid = session.execute(text("SELECT code FROM grids WHERE valid_to IS NULL ORDER BY code LIMIT 1")).scalar_one()
        create_worker(session, id=WORKER, name="李网格", grids=[grid])
        session.commit()
    engine.dispose()
    srv = Server(url, ONEMAP_AUTH="off")
    yield srv
    srv.stop()


@pytest.fixture
def photo_file(tmp_path) -> str:
    path = tmp_path / "井盖破损.jpg"
    Image.new("RGB", (320, 240), (40, 90, 160)).save(path, "JPEG")
    return str(path)


def check_picker(page, input_sel: str, photo: str) -> None:
    """The input is hidden, its label shows a Chinese button and 未选择…, then the chosen file's name."""
    label = page.locator(f"label.file-pick:has({input_sel})")
    assert label.count() == 1
    box = page.locator(input_sel).bounding_box()
    assert box is None or (box["width"] <= 2 and box["height"] <= 2)  # the browser's English control is not shown
    button, name = label.locator(".file-button"), label.locator(".file-name")
    assert button.is_visible() and "照片" in button.inner_text()
    assert name.inner_text().startswith("未选择")
    page.set_input_files(input_sel, photo)
    page.wait_for_function("(sel) => document.querySelector(sel).closest('.file-pick').querySelector('.file-name')"
                           ".textContent === '井盖破损.jpg'", arg=input_sel)
    text_shown = label.inner_text()
    assert "Choose" not in text_shown and "No file" not in text_shown


def every_file_input_is_wrapped(page) -> None:
    assert page.evaluate("[...document.querySelectorAll('input[type=file]')].every((i) => i.closest('label.file-pick'))")


def test_the_public_report_page_picks_a_photo_in_chinese(files_server, browser, photo_file, artifacts):
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    page.goto(files_server.base + "/report")
    page.wait_for_selector("#category optgroup", state="attached")
    every_file_input_is_wrapped(page)
    page.locator("#photo").evaluate("(i) => i.closest('label').scrollIntoView()")
    page.screenshot(path=str(artifacts / "file-pick-report-empty-390.png"))
    check_picker(page, "#photo", photo_file)
    page.screenshot(path=str(artifacts / "file-pick-report-chosen-390.png"))
    ctx.close()


def test_the_phone_picks_a_photo_in_chinese_and_clears_after_sending(files_server, browser, photo_file, artifacts):
    ctx = browser.new_context(**PHONE, geolocation={"longitude": 118.79, "latitude": 36.86, "accuracy": 8},
                              permissions=["geolocation"])
    page = ctx.new_page()
    page.goto(files_server.base + "/mobile")
    page.fill("#signin-form input[name=username]", WORKER)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#tabs:not([hidden])")
    every_file_input_is_wrapped(page)
    page.click("#tabs button[data-tab=report]")
    check_picker(page, "#photo", photo_file)
    page.screenshot(path=str(artifacts / "file-pick-mobile-chosen-390.png"))
    page.evaluate("document.getElementById('report-form').reset()")
    page.wait_for_function("document.querySelector('#photo').closest('.file-pick').querySelector('.file-name')"
                           ".textContent === '未选择照片'")
    ctx.close()


def test_the_desk_uploads_a_photo_picked_in_chinese(files_server, browser, photo_file, artifacts):
    base = files_server.base
    res = httpx.post(base + "/tickets", json={"channel": "hotline", "category": "0102", "severity": "general",
                                              "description": "井盖破损，有安全隐患", "lon": 118.79, "lat": 36.86}, timeout=60)
    assert res.status_code == 201, res.text
    tid = res.json()["id"]
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/desk?ticket={tid}")
    page.wait_for_selector("#upload")
    page.wait_for_load_state("networkidle")  # the detail is drawn for good (a later redraw would empty the input)
    page.wait_for_selector("#upload")
    every_file_input_is_wrapped(page)
    check_picker(page, "#photo", photo_file)
    page.locator("#upload").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "file-pick-desk-chosen-1920.png"))
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#upload-result .message.ok", timeout=15_000)
    photos = httpx.get(f"{base}/tickets/{tid}", timeout=30).json()["attachments"]
    assert [p["filename"] for p in photos] == ["井盖破损.jpg"]
    ctx.close()
    assert not errors, errors
