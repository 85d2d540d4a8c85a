"""The public report page (随手拍, /report) has a base map: the big screen's registry tiles (grid,
village and town outlines, town and village names) served by this server to a citizen without an
account (sign-in ON here), without grid names; nothing is fetched from anywhere else."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.web.conftest import Server, demo_copy

pytestmark = pytest.mark.browser
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2,
         "bypass_csp": True, "locale": "zh-CN", "timezone_id": "Asia/Shanghai"}


@pytest.fixture(scope="module")
def public_city(cluster) -> Iterator[tuple[Server, str]]:
    url = demo_copy(cluster, "reportbase")
    srv = Server(url, ONEMAP_AUTH="true", ONEMAP_SECRET_KEY="report-base-" + "k" * 40)
    yield srv, url
    srv.stop()


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int((lon + 180) / 360 * n), int(y)


def names(url: str, sql: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = [r[0] for r in conn.execute(text(sql))]
    engine.dispose()
    return out


def test_the_public_base_tiles_answer_without_an_account_and_carry_no_grid_names(public_city):
    srv, url = public_city
    ((lon, lat, town),) = [tuple(r) for r in create_engine(url).connect().execute(text(
        "SELECT ST_X(p), ST_Y(p), name FROM (SELECT ST_PointOnSurface(geom) p, name FROM areas"
        " WHERE level = 'town' AND valid_to IS NULL ORDER BY code LIMIT 1) s"))]
    x, y = tile_of(lon, lat, 8)  # one tile holds the whole demo city (and every town's label point)
    assert httpx.get(f"{srv.base}/tiles/base/8/{x}/{y}.pbf").status_code == 401  # the staff's tiles need sign-in
    res = httpx.get(f"{srv.base}/public/tiles/base/8/{x}/{y}.pbf")
    assert res.status_code == 200 and res.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    body = res.content
    for layer in (b"grids", b"villages", b"towns", b"towns_labels", b"villages_labels"):
        assert layer in body
    assert town.encode() in body
    grid_names = names(url, "SELECT name FROM grids WHERE valid_to IS NULL")
    assert not [n for n in grid_names if n.encode() in body]
    bad = httpx.get(f"{srv.base}/public/tiles/base/3/9/1.pbf")
    assert bad.status_code == 400 and "does not exist" in bad.json()["detail"]


def test_the_report_map_draws_the_base_from_this_server(public_city, browser, artifacts):
    srv, url = public_city
    ctx = browser.new_context(**PHONE)
    page = ctx.new_page()
    errors: list[str] = []
    asked: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: asked.append(r.url))
    page.goto(srv.base + "/report")
    page.wait_for_selector("#pick-map[data-ready='1'][data-base='1']", timeout=30_000)
    painted = """() => [...document.querySelectorAll('#pick-map canvas.mvt-tile')].filter((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 16) if (d[i] > 0) return true; return false; }).length"""
    page.wait_for_function(f"({painted})() > 0", timeout=15_000)
    page.wait_for_function("document.querySelector('#pick-map canvas.overlay-canvas') !== null")
    page.locator("#pick-map").scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "report-base-city-390.png"))
    # closer in: the grids and the village names show
    town = names(url, "SELECT ST_Y(ST_PointOnSurface(geom)) || ',' || ST_X(ST_PointOnSurface(geom)) FROM areas"
                      " WHERE level = 'village' AND valid_to IS NULL ORDER BY code LIMIT 1")[0]
    page.evaluate(f"reportMap.setView([{town}], 14, {{ animate: false }})")
    page.wait_for_function(f"({painted})() >= 2", timeout=15_000)
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "report-base-village-390.png"))
    assert page.evaluate("reportBase.labels('villages').length") > 0
    assert page.evaluate("reportBase.labels('grids').every((l) => l.props.name === undefined)")
    assert any("/public/tiles/base/" in u for u in asked)
    assert all(u.startswith(srv.base) for u in asked), [u for u in asked if not u.startswith(srv.base)]
    ctx.close()
    assert not errors, errors
