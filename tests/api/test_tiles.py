"""Vector tiles from PostGIS over the demo city: counts, labels once per feature, caching, GCJ-02 shift."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from sqlalchemy import text

from gis import tiles as T
from layers import maptiles as tiles
from tests.api.mvt import decode

CITY = (118.45, 36.70, 119.15, 37.30)  # lon/lat box around the demo city (寿光市)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def city_tiles(z: int) -> list[tuple[int, int, int]]:
    x0, y0 = tile_of(CITY[0], CITY[3], z)
    x1, y1 = tile_of(CITY[2], CITY[1], z)
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def layers_over_city(client, layer: str, z: int, **params) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for tz, x, y in city_tiles(z):
        res = client.get(f"/tiles/{layer}/{tz}/{x}/{y}.pbf", params=params)
        assert res.status_code == 200, res.text
        assert res.headers["content-type"] == T.MVT
        for name, feats in decode(res.content).items():
            out.setdefault(name, []).extend(feats)
    return out


@pytest.fixture(autouse=True)
def fresh_caches():
    """Tiles are cached per process; each test starts from what its own transaction holds."""
    tiles.clear_caches()


def test_grid_tiles_label_every_grid_once(demo_client):
    found = layers_over_city(demo_client, "grids", 11)
    labels = [f["properties"]["code"] for f in found["grids_labels"]]
    assert len(labels) == 1347
    assert len(set(labels)) == 1347  # a label only in the tile that holds its point
    polygons = {f["properties"]["code"] for f in found["grids"]}
    assert polygons == set(labels)  # clipped pieces may repeat across tiles, but all are there
    assert {f["type"] for f in found["grids"]} == {3}
    first = found["grids"][0]["properties"]
    assert set(first) >= {"code", "name", "kind", "village_code", "town_code", "open", "card"}
    assert first["open"] == 0 and first["card"] == 0  # no tickets yet


def test_town_and_village_tiles(demo_client, demo_session):
    towns = layers_over_city(demo_client, "towns", 9)
    assert len({f["properties"]["code"] for f in towns["towns_labels"]}) == len(towns["towns_labels"]) == 15
    names = {f["properties"]["name"] for f in towns["towns_labels"]}
    assert all(isinstance(n, str) and n for n in names)
    villages = layers_over_city(demo_client, "villages", 10)
    expected = demo_session.scalar(text("SELECT count(*) FROM areas WHERE level='village' AND valid_to IS NULL"))
    assert len(villages["villages_labels"]) == expected


def test_all_layers_in_one_tile_and_the_layer_list(demo_client):
    found = layers_over_city(demo_client, "all", 10)
    assert {"grids", "grids_labels", "villages", "villages_labels", "towns", "towns_labels"} <= set(found)
    assert len(found["grids_labels"]) == 1347 and len(found["towns_labels"]) == 15
    names = [layer["name"] for layer in demo_client.get("/tiles").json()["layers"]]
    assert names == ["towns", "villages", "grids", "tickets", "all", "districts", "base", "workers"]


@pytest.mark.parametrize("layer", ["base", "grids"])
def test_tile_headers_cache_and_not_modified(demo_client, monkeypatch, layer):
    # ticket-coloured tiles are keyed by a 5-second time bucket: hold the bucket still, or a slow
    # first render that crosses a bucket boundary makes the second request a (correct) miss
    monkeypatch.setattr(tiles, "ticket_stamp", lambda client_version=0: f"frozen.{client_version}")
    z, x, y = city_tiles(10)[0]
    first = demo_client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf")
    assert first.headers["cache-control"].startswith("public, max-age=")
    etag = first.headers["etag"]
    again = demo_client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf")
    assert again.headers["x-tile-cache"] == "hit" and again.content == first.content
    unchanged = demo_client.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304


def test_bad_tiles_are_refused(demo_client):
    assert demo_client.get("/tiles/grids/3/8/0.pbf").status_code == 400  # x beyond 2**3 - 1
    missing = demo_client.get("/tiles/roads/10/0/0.pbf")
    assert missing.status_code == 404 and "roads" in missing.json()["detail"]
    assert demo_client.get("/tiles/grids/10/0/0.pbf?crs=bd09").status_code == 422
    assert demo_client.get("/tiles/grids/12/0/0.pbf").content == b""  # empty ocean tile


def test_gcj02_tiles_are_shifted_by_the_offset_at_the_tile_centre(demo_client):
    z = 14
    x, y = tile_of(118.79, 36.86, z)
    plain = {f["properties"]["code"]: f for f in decode(demo_client.get(f"/tiles/grids/{z}/{x}/{y}.pbf").content)["grids_labels"]}
    shifted_tile = demo_client.get(f"/tiles/grids/{z}/{x}/{y}.pbf?crs=gcj02").content
    shifted = {f["properties"]["code"]: f for f in decode(shifted_tile)["grids_labels"]}
    common = sorted(set(plain) & set(shifted))
    assert common
    off = T.crs_offset(z, x, y, "gcj02")
    unit_m = T.WORLD_M / 2**z / T.EXTENT
    assert 300 < math.hypot(off["dx"], off["dy"]) < 800  # GCJ-02 shifts Shouguang by ~500 m
    for code in common:
        (px, py), (sx, sy) = _point(plain[code]), _point(shifted[code])
        assert sx - px == pytest.approx(off["dx"] / unit_m, abs=1.0)
        assert sy - py == pytest.approx(-off["dy"] / unit_m, abs=1.0)  # tile y grows southwards


def _point(feature: dict) -> tuple[int, int]:
    _cmd, dx, dy = feature["geometry"][:3]
    return (dx >> 1) ^ -(dx & 1), (dy >> 1) ^ -(dy & 1)


@pytest.fixture
def tickets_table(demo_session):
    """The tickets table (created from its model inside the rolled-back test if not migrated yet)."""
    from layers.incidents.models import Ticket

    Ticket.__table__.create(bind=demo_session.connection(), checkfirst=True)
    return Ticket


def _add_tickets(session, rows: list[tuple[float, float, str, str, str]]) -> None:
    for lon, lat, grid, state, card in rows:
        session.execute(text(
            "INSERT INTO tickets (channel, category, severity, description, geom, grid_code, state, department,"
            " needs_town, card, co_units, rework_count, revisited, unplaced)"
            " VALUES ('hotline', '0102', 'general', '测试', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :grid,"
            " :state, 'sanitation', true, :card, '{}', 0, false, false)"),
            {"lon": lon, "lat": lat, "grid": grid, "state": state, "card": card})


def test_ticket_tiles_aggregate_by_grid_then_show_single_tickets(demo_client, demo_session, tickets_table):
    grid, lon, lat = demo_session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids"
        " WHERE valid_to IS NULL ORDER BY code LIMIT 1) s")).one()
    _add_tickets(demo_session, [(lon, lat, grid, "received", "ok"), (lon, lat, grid, "handling", "red"),
                                (lon, lat, grid, "dispatched", "yellow"), (lon, lat, grid, "closed", "red")])
    tiles.clear_caches()
    agg = layers_over_city(demo_client, "tickets", 10)["tickets"]
    assert {(f["properties"]["grid_code"], f["properties"]["count"], f["properties"]["card"],
             f["properties"]["red"], f["properties"]["yellow"]) for f in agg} == {(grid, 3, 2, 1, 1)}
    z = tiles.TICKET_POINT_ZOOM + 2
    x, y = tile_of(lon, lat, z)
    singles = decode(demo_client.get(f"/tiles/tickets/{z}/{x}/{y}.pbf").content)["tickets"]
    assert Counter(f["properties"]["state"] for f in singles) == {"received": 1, "handling": 1, "dispatched": 1}
    coloured = [f for f in layers_over_city(demo_client, "grids", 10)["grids_labels"] if f["properties"]["open"]]
    assert [(f["properties"]["code"], f["properties"]["open"], f["properties"]["card"]) for f in coloured] == [(grid, 3, 2)]
