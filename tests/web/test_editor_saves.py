"""Issue 16, editor: a reshape the page sends can be saved; a shared vertex drags its neighbour;
search, split preview, undo, progress and the moved-assets list. Each fails on the page before it."""

from __future__ import annotations

import pytest
import shapely
from sqlalchemy import create_engine, text

from gis.registry import load_grids
from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def srv(cluster):
    s = Server(demo_copy(cluster, "web_editor16"), ONEMAP_AUTH="off")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def db(srv):
    engine = create_engine(srv.database_url)
    yield engine
    engine.dispose()


def pair(db, offset=0):
    """Two grids of one village sharing an edge, and a vertex inside that edge (index in a's ring)."""
    with db.connect() as conn:
        a, b = conn.execute(text(
            "SELECT a.code, b.code FROM grids a JOIN grids b ON a.village_code = b.village_code AND a.code < b.code"
            " AND a.valid_to IS NULL AND b.valid_to IS NULL AND a.geom && b.geom WHERE"
            " ST_Length(ST_Intersection(a.geom, b.geom)::geography) > 300 ORDER BY a.code, b.code"
            " OFFSET :o LIMIT 1"), {"o": offset}).one()
    from sqlalchemy.orm import Session
    with Session(db) as session:
        g = load_grids(session, codes=[a, b]).set_index("code").geometry
    ring = list(g[a].geoms[0].exterior.coords)
    others = set(map(tuple, shapely.get_coordinates(g[b])))
    k = next(i for i in range(2, len(ring) - 2) if all(tuple(ring[j]) in others for j in (i - 1, i, i + 1)))
    return a, b, k


def open_editor(page, srv, code):
    page.goto(f"{srv.base}/editor#{code}")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.wait_for_selector(f"body[data-selected='{code}']")


def who_why(page, why="边界微调"):
    page.fill("#who", "规划科 王工")
    page.fill("#why", why)


def test_an_untouched_reshape_saves(srv, db, page, artifacts):
    a, _, _ = pair(db, 0)
    open_editor(page, srv, a)
    page.click("#tool-reshape")
    who_why(page)
    page.click("#validate")
    page.wait_for_selector("#result .message:has-text('校验通过'), #result .message:has-text('校验未通过')",
                           timeout=30_000)
    assert "校验通过" in page.text_content("#result"), page.text_content("#result")
    page.click("#save")
    page.wait_for_selector("#result .message.ok:has-text('已保存为新版本')", timeout=30_000)
    assert "随之迁移" in page.text_content("#result")
    page.screenshot(path=str(artifacts / "editor-reshape-saved.png"))


def test_dragging_a_shared_vertex_moves_the_neighbour_and_undo_restores_both(srv, db, page, artifacts):
    a, b, k = pair(db, 3)
    open_editor(page, srv, a)
    page.click("#tool-reshape")
    page.evaluate("""k => { const l = window.onemap.state.editing[0]; const ll = l.getLatLngs();
        const ring = Array.isArray(ll[0][0]) ? ll[0][0] : ll[0];
        ring[k] = L.latLng(ring[k].lat + 0.0002, ring[k].lng + 0.0003); l.setLatLngs(ll); }""", k)
    who_why(page, "拖动共用顶点")
    page.click("#save")
    page.wait_for_selector("#progress:not([hidden])", timeout=5_000)  # progress while saving
    page.wait_for_selector("#result .message:has-text('已保存'), #result .message:has-text('被拒绝')",
                           timeout=30_000)
    result = page.text_content("#result")
    assert "已保存为新版本" in result and b in result, result
    with db.connect() as conn:
        edits = conn.execute(text("SELECT DISTINCT edit_id FROM grids WHERE code IN (:a, :b) AND valid_to IS NULL"),
                             {"a": a, "b": b}).scalars().all()
    assert len(edits) == 1
    page.screenshot(path=str(artifacts / "editor-shared-vertex-saved.png"))
    page.click("#undo")
    page.wait_for_selector("#result .message.ok:has-text('已撤销编辑')", timeout=30_000)
    with db.connect() as conn:
        why = conn.scalar(text("SELECT why FROM grids WHERE code = :b AND valid_to IS NULL"), {"b": b})
    assert why.startswith(f"撤销编辑 #{edits[0]}")


def test_search_finds_a_grid_and_split_previews_its_pieces(srv, db, page, artifacts):
    with db.connect() as conn:
        code, name = conn.execute(text("SELECT code, name FROM grids WHERE valid_to IS NULL AND kind = 'basic'"
                                       " ORDER BY ST_Area(geom) DESC LIMIT 1")).one()
    page.goto(f"{srv.base}/editor")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.fill("#search", name)
    page.wait_for_selector(f"#search-results li[data-code='{code}']")
    page.click(f"#search-results li[data-code='{code}']")
    page.wait_for_selector(f"body[data-selected='{code}']")
    page.wait_for_function("Number(document.body.dataset.labels || 0) > 0")  # grid names drawn on the map
    box = page.locator("#map").bounding_box()
    cx = box["x"] + box["width"] / 2
    page.click("#tool-split")
    page.mouse.click(cx, box["y"] + 8)
    page.wait_for_timeout(150)
    page.mouse.click(cx + 5, box["y"] + box["height"] - 8)
    page.wait_for_timeout(150)
    page.mouse.click(cx + 5, box["y"] + box["height"] - 8)
    page.wait_for_selector("#result .message:has-text('将拆为')", timeout=30_000)
    assert page.evaluate("document.querySelectorAll('.leaflet-overlay-pane path').length") > 2
    page.screenshot(path=str(artifacts / "editor-split-preview.png"))
