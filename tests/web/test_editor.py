"""The grid editor in headless Chromium, on its own database: an overlap is refused, a split is saved."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def editor_server(cluster):
    """Saved edits stay in this server's own copy of the demo city."""
    srv = Server(demo_copy(cluster, "web_editor"), ONEMAP_AUTH="off")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def big_grid(editor_server) -> str:
    """A large basic grid (easy to draw across at any screen position)."""
    engine = create_engine(editor_server.database_url)
    with engine.connect() as conn:
        code = conn.scalar(text("SELECT code FROM grids WHERE valid_to IS NULL AND kind = 'basic'"
                                " ORDER BY ST_Area(geom) DESC LIMIT 1"))
    engine.dispose()
    return code


def open_editor(page, server, code):
    page.goto(f"{server.base}/editor#{code}")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    box = page.locator("#map").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box


def test_drawing_over_a_grid_is_refused_with_the_overlap_drawn(editor_server, big_grid, page, artifacts):
    cx, cy, _ = open_editor(page, editor_server, big_grid)
    page.click("#tool-draw")
    corners = [(cx - 90, cy - 70), (cx + 90, cy - 70), (cx + 90, cy + 70), (cx - 90, cy + 70), (cx - 90, cy - 70)]
    for x, y in corners:
        page.mouse.click(x, y)
        page.wait_for_timeout(120)
    page.wait_for_selector("#validate:not([disabled])")
    page.click("#validate")
    page.wait_for_selector("#result .message.bad")
    assert int(page.get_attribute("#problems", "data-count")) >= 1
    assert "重叠" in page.text_content("#problems")
    page.fill("#who", "规划科 王工")
    page.fill("#why", "测试：新画网格压在已有网格上")
    page.click("#save")
    page.wait_for_selector("#result:has-text('保存被拒绝')")
    assert page.get_attribute("body", "data-last-status") == "422"
    page.screenshot(path=str(artifacts / "editor-overlap-refused.png"))


def test_splitting_a_grid_by_a_line_saves_a_new_version(editor_server, big_grid, page, artifacts):
    cx, cy, box = open_editor(page, editor_server, big_grid)
    page.click("#tool-split")
    top, bottom = box["y"] + 8, box["y"] + box["height"] - 8
    page.mouse.click(cx, top)
    page.wait_for_timeout(150)
    page.mouse.click(cx + 5, bottom)
    page.wait_for_timeout(150)
    page.mouse.click(cx + 5, bottom)  # clicking the last point again ends the line
    page.wait_for_selector("#save:not([disabled])")
    page.fill("#who", "规划科 王工")
    page.fill("#why", "小区拆分，户数超过500户")
    page.click("#save")
    page.wait_for_selector("#result .message.ok:has-text('已保存为新版本')", timeout=15_000)
    assert page.get_attribute("body", "data-last-status") == "200"
    assert big_grid in page.text_content("#result")  # the split grid is retired
    page.wait_for_selector("#history[data-versions='1'] li")  # the new piece's history is shown
    engine = create_engine(editor_server.database_url)
    with engine.connect() as conn:
        current = conn.scalar(text("SELECT count(*) FROM grids WHERE valid_to IS NULL"))
        why = conn.scalar(text("SELECT why FROM grid_edits ORDER BY id DESC LIMIT 1"))
    engine.dispose()
    assert current == 1348 and why == "小区拆分，户数超过500户"
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "editor-split-saved.png"))
