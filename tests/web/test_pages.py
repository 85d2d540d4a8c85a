"""The ticket desk and the export page in headless Chromium against the demo city."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def ticket(server) -> dict:
    res = httpx.post(server.base + "/tickets", timeout=60, json={
        "channel": "app", "category": "0102", "severity": "general", "description": "小区门口垃圾堆放三天未清运",
        "lon": 118.74, "lat": 36.88, "reporter_name": "李女士"})
    assert res.status_code == 201, res.text
    return res.json()


def test_desk_lists_a_ticket_and_dispatches_it(server, page, ticket, artifacts):
    page.goto(f"{server.base}/desk")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    row = page.locator(f"#tickets tr[data-id='{ticket['id']}']")
    assert "暴露垃圾" in row.text_content()
    row.click()
    page.wait_for_selector("#detail .timeline[data-events='1']")
    buttons = page.locator("#detail [data-move]")
    assert "dispatch" in [buttons.nth(i).get_attribute("data-move") for i in range(buttons.count())]
    page.fill("#param", ticket["town_code"])
    page.fill("#note", "请属地镇街处置")
    page.click("#detail [data-move=dispatch]")
    page.wait_for_selector("#detail .timeline[data-events='2'], #move-result .message", timeout=30_000)
    assert page.locator("#move-result .message").count() == 0, page.text_content("#move-result")
    assert "已派单" in page.text_content("#detail .facts")
    page.select_option("#filters [name=state]", "dispatched")
    page.click("#filters button")
    page.wait_for_function("[...document.querySelectorAll('#tickets tbody tr')].every(tr => tr.textContent.includes('已派单'))")
    assert page.locator(f"#tickets tr[data-id='{ticket['id']}']").count() == 1
    page.screenshot(path=str(artifacts / "desk-dispatched.png"))


def test_export_page_downloads_a_town_as_a_shapefile(server, page, artifacts):
    page.goto(f"{server.base}/exports")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.select_option("#layer", "grids")
    page.select_option("#town", index=1)
    page.select_option("#format", "shp")
    page.select_option("#encoding", "gbk")
    town = page.eval_on_selector("#town", "el => el.value")
    href = page.get_attribute("#download", "href")
    assert href.startswith("/export/grids?") and f"area={town}" in href and "encoding=gbk" in href
    page.screenshot(path=str(artifacts / "export-page.png"))
    with page.expect_download(timeout=60_000) as info:
        page.click("#download")
    data = open(info.value.path(), "rb").read()
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert any(n.endswith(".shp") for n in names) and any(n.endswith(".prj") for n in names)
    assert any(n.endswith(".cpg") for n in names)
    expected = httpx.get(server.base + f"/grids?town={town}", timeout=60).json()["features"]
    import shapefile

    shp = next(n for n in names if n.endswith(".shp"))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        reader = shapefile.Reader(shp=io.BytesIO(z.read(shp)), dbf=io.BytesIO(z.read(shp[:-4] + ".dbf")),
                                  encoding="gbk")
        assert len(reader) == len(expected)


@pytest.mark.browser
@pytest.mark.parametrize("path, ready", [("/", "body[data-ready=true]"), ("/desk", "body"), ("/editor", "body"),
                                         ("/exports", "body"), ("/login", "form")])
def test_pages_keep_their_csp(server, browser, path, ready):
    """Under the real Content-Security-Policy every page loads with no violation and no script error."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        response = page.goto(server.base + path)
        assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(ready, timeout=30_000)
        page.wait_for_timeout(1500)
    finally:
        context.close()
    assert not problems, problems
