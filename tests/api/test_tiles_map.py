"""The big screen's data: lean registry tiles cached for good per registry version, the open tickets
per grid that colour them on the client, and the workers' positions as tiles — counts, headers, scope."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from layers import maptiles as tiles
from tests.api.mvt import decode
from tests.api.test_auth import api, bearer, city  # noqa: F401 - fixtures
from tests.api.test_scope import world  # noqa: F401 - fixture
from tests.api.test_tiles import (  # noqa: F401 - fixtures
    _add_tickets,
    fresh_caches,
    layers_over_city,
    tickets_table,
    tile_of,
)

YEAR = 365 * 24 * 3600


def test_base_tiles_hold_the_registry_and_nothing_else(demo_client, demo_session):
    found = layers_over_city(demo_client, "base", 10)
    assert set(found) == {"grids", "grids_labels", "villages", "villages_labels", "towns", "towns_labels", "districts"}
    labels = [f["properties"] for f in found["grids_labels"]]
    assert len(labels) == len({p["code"] for p in labels}) == 1347  # each grid's label once
    assert all(set(p) == {"code", "name"} and p["name"] for p in labels)
    assert {frozenset(f["properties"]) for f in found["grids"]} == {frozenset({"code"})}  # no ticket counts
    villages = demo_session.scalar(text("SELECT count(*) FROM areas WHERE level = 'village' AND valid_to IS NULL"))
    assert len({f["properties"]["code"] for f in found["villages_labels"]}) == villages
    assert sorted(f["properties"]["name"] for f in found["towns_labels"]) == sorted(demo_session.scalars(text(
        "SELECT name FROM areas WHERE level = 'town' AND valid_to IS NULL")))
    assert found["districts"] and all(f["type"] == 3 for f in found["districts"])


def test_layer_info_names_the_registry_version_and_counts(demo_client, demo_session):
    info = demo_client.get("/tiles").json()
    assert info["registry_version"] == demo_session.scalar(text("SELECT coalesce(max(id), 0) FROM grid_edits"))
    assert info["counts"]["grids"] == 1347 and info["counts"]["towns"] == 15
    assert info["stats"] == "/tiles/grid-stats"
    west, south, east, north = info["bounds"]
    assert 118.4 < west < east < 119.2 and 36.6 < south < north < 37.4


def test_base_tiles_are_immutable_for_the_current_registry_version_and_ignore_tickets(demo_client, demo_session,
                                                                                  tickets_table):  # noqa: F811
    version = demo_client.get("/tiles").json()["registry_version"]
    x, y = tile_of(118.79, 36.86, 12)
    url = f"/tiles/base/12/{x}/{y}.pbf"
    current = demo_client.get(url, params={"r": version})
    assert current.headers["cache-control"] == f"public, max-age={YEAR}, immutable"
    stale = demo_client.get(url, params={"r": version + 1000})  # a client that missed an edit: short-lived
    assert stale.headers["cache-control"] == "public, max-age=300"
    assert demo_client.get(url, params={"r": version}, headers={"If-None-Match": current.headers["etag"]}).status_code == 304
    grid, lon, lat = demo_session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids WHERE valid_to IS NULL"
        " AND geom && ST_MakeEnvelope(118.78, 36.85, 118.80, 36.87, 4326) ORDER BY code LIMIT 1) s")).one()
    _add_tickets(demo_session, [(lon, lat, grid, "received", "red")])
    tiles.clear_caches()
    assert demo_client.get(url, params={"r": version}).content == current.content  # tickets change nothing here


def test_grid_stats_count_the_open_tickets_per_grid(demo_client, demo_session, tickets_table):  # noqa: F811
    empty = demo_client.get("/tiles/grid-stats").json()
    assert empty["tickets"] is True and empty["totals"]["open"] == 0
    grid, lon, lat = demo_session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids"
        " WHERE valid_to IS NULL ORDER BY code LIMIT 1) s")).one()
    _add_tickets(demo_session, [(lon, lat, grid, "received", "ok"), (lon, lat, grid, "handling", "red"),
                                (lon, lat, grid, "dispatched", "yellow"), (lon, lat, grid, "closed", "red")])
    tiles.clear_caches()
    res = demo_client.get("/tiles/grid-stats")
    assert res.status_code == 200 and res.headers["cache-control"] == f"public, max-age={int(tiles.TICKET_TTL_S)}"
    stats = res.json()
    assert stats["columns"] == ["open", "card", "red", "yellow"]
    assert stats["grids"] == {grid: [3, 2, 1, 1]}  # three open, the worst card red; the closed one not counted
    assert stats["totals"] == {"open": 3, "red": 1, "yellow": 1, "grids": 1}
    assert demo_client.get("/tiles/grid-stats", headers={"If-None-Match": res.headers["etag"]}).status_code == 304
    _add_tickets(demo_session, [(lon, lat, grid, "received", "ok")])
    assert demo_client.get("/tiles/grid-stats", params={"v": 1}).json()["grids"][grid][0] == 4  # a new live version
    assert demo_client.get("/tiles/grid-stats", params={"v": -1}).status_code == 422


def test_worker_tiles_carry_the_last_positions(demo_client, demo_session):
    from layers.workers import registry

    grid, lon, lat = demo_session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p FROM grids"
        " WHERE valid_to IS NULL ORDER BY code OFFSET 40 LIMIT 1) s")).one()
    registry.create_worker(demo_session, id="W-TILE", name="李娜", role="grid_chief", grids=[grid])
    fix = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    demo_session.execute(text(
        "INSERT INTO worker_last_positions (worker_id, ts, geom, grid_code, town_code) VALUES"
        " ('W-TILE', :ts, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g, :t)"), {"ts": fix, "x": lon, "y": lat,
                                                                                "g": grid, "t": grid[:9] + "000"})
    assert "workers" in [layer["name"] for layer in demo_client.get("/tiles").json()["layers"]]
    x, y = tile_of(lon, lat, 11)
    res = demo_client.get(f"/tiles/workers/11/{x}/{y}.pbf")
    assert res.status_code == 200 and res.headers["cache-control"] == f"public, max-age={int(tiles.WORKER_TTL_S)}"
    mine = [f for f in decode(res.content)["workers"] if f["properties"]["id"] == "W-TILE"]
    assert len(mine) == 1 and mine[0]["type"] == 1
    assert mine[0]["properties"] == {"id": "W-TILE", "name": "李娜", "role": "grid_chief", "on_duty": True,
                                     "fix_at": int(fix.timestamp())}


def test_the_counts_and_workers_are_the_callers_own(api, world, demo_session):  # noqa: F811
    town_a = bearer(api, "town_a")
    res = api.get("/tiles/grid-stats", headers=town_a)
    assert res.headers["cache-control"].startswith("private")
    stats = res.json()
    expected = demo_session.scalar(text(
        "SELECT count(*) FROM tickets WHERE town_code = :t AND state NOT IN ('closed', 'signed_off')"
        " AND duplicate_of IS NULL AND grid_code IS NOT NULL"), {"t": world["A"]})
    assert stats["totals"]["open"] == expected >= 1
    assert {code[:9] + "000" for code in stats["grids"]} == {world["A"]}
    everyone = api.get("/tiles/grid-stats", headers=bearer(api, "city_admin")).json()
    assert {world["A"], world["B"]} <= {code[:9] + "000" for code in everyone["grids"]}

    def workers_at(worker: str, headers: dict) -> set[str]:
        lon, lat = demo_session.execute(text(
            "SELECT ST_X(geom), ST_Y(geom) FROM worker_last_positions WHERE worker_id = :w"), {"w": worker}).one()
        x, y = tile_of(lon, lat, 12)
        res = api.get(f"/tiles/workers/12/{x}/{y}.pbf", headers=headers)
        assert res.status_code == 200 and res.headers["cache-control"].startswith("private")
        return {f["properties"]["id"] for f in decode(res.content).get("workers", [])}

    assert "W-A" in workers_at("W-A", town_a) and "W-B" not in workers_at("W-B", town_a)
    assert "W-B" in workers_at("W-B", bearer(api, "city_admin"))
