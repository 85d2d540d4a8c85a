"""Issue 16, ticket desk and export page: dispatch by picking, deadline columns, standard terms, the
demo-only role switch; export rows that stay hidden, Chinese descriptions and a count before download.
Screenshots of the three pages at the command hall's screen sizes."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture
def ticket(server) -> dict:
    res = httpx.post(server.base + "/tickets", timeout=60, json={
        "channel": "hotline", "category": "0102", "severity": "general", "description": "路口垃圾桶满溢",
        "lon": 118.83, "lat": 36.93, "reporter_name": "张先生"})
    assert res.status_code == 201, res.text
    return res.json()


def open_desk(page, server, ticket):
    page.goto(f"{server.base}/desk#{ticket['id']}")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector("#detail .timeline")


def test_desk_dispatches_by_picking_a_town_with_standard_terms(server, page, ticket, artifacts):
    open_desk(page, server, ticket)
    assert page.locator("#tickets th:has-text('时限')").count() == 1 and page.locator("#tickets th:has-text('超时')").count() == 1
    buttons = page.locator("#detail [data-move]").all_text_contents()
    assert "派遣" in buttons and "派单" not in buttons and "核实" in buttons  # 核实 before dispatch
    assert page.locator("#demo-banner").count() == 1 and page.locator("#detail #role").count() == 1
    assert page.eval_on_selector("#assignee", "el => el.value") == ticket["town_code"]  # a picker, no typing
    page.wait_for_selector("#nearest:not(:has-text('正在查找'))")
    page.click("#detail [data-move=dispatch]")
    page.wait_for_selector("#detail .timeline[data-events='2'], #move-result .message", timeout=30_000)
    assert page.locator("#move-result .message").count() == 0, page.text_content("#move-result")
    assert "派遣" in page.text_content("#detail .timeline")
    page.screenshot(path=str(artifacts / "desk-dispatch-picker.png"))


def test_export_page_hides_rows_says_what_a_layer_is_and_counts_before_download(server, page, artifacts):
    page.goto(f"{server.base}/exports")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.select_option("#layer", "grids")
    page.select_option("#format", "geojson")
    assert not page.is_visible("#encoding")  # a shapefile-only row stays hidden
    assert not page.is_visible("#from")  # grids have no time filter
    assert "网格" in page.text_content("#layer-about") and "Grids" not in page.text_content("#layer-about")
    page.wait_for_function("document.body.dataset.count !== ''")
    total = int(page.get_attribute("body", "data-count"))
    assert total == len(httpx.get(server.base + "/grids", timeout=60).json()["features"])
    page.select_option("#town", index=1)
    page.wait_for_function(f"document.body.dataset.count !== '' && Number(document.body.dataset.count) < {total}")
    assert "个要素" in page.text_content("#count")
    page.screenshot(path=str(artifacts / "export-count.png"))


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080), (3840, 2160)])
def test_work_pages_at_hall_sizes(server, browser, ticket, size, artifacts):
    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    try:
        for name, path in (("desk", f"/desk#{ticket['id']}"), ("editor", "/editor"), ("export", "/exports")):
            page.goto(server.base + path)
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.wait_for_timeout(800)
            overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            assert not overflow, f"{name} scrolls sideways at {width}×{height}"
            page.screenshot(path=str(artifacts / f"{name}-{width}x{height}.png"))
    finally:
        context.close()
