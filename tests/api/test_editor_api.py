"""The grid editor's HTTP API over the demo city: validate proposals, save reshape/split/merge/add."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import mapping
from sqlalchemy import text

from gis.coords import wgs84_to_gcj02
from gis.registry import load_grids

WHO = {"who": "规划科 王工", "why": "社区调整"}


@pytest.fixture
def pair(demo_session):
    """Two neighbouring grids of one village that share an edge, as (code, geometry) pairs."""
    a, b = demo_session.execute(text(
        "SELECT a.code, b.code FROM grids a JOIN grids b ON a.village_code = b.village_code AND a.code < b.code"
        " AND a.valid_to IS NULL AND b.valid_to IS NULL AND a.geom && b.geom"
        " WHERE ST_Length(ST_Intersection(a.geom, b.geom)::geography) > 200 ORDER BY a.code, b.code LIMIT 1")).one()
    frame = load_grids(demo_session, codes=[a, b]).set_index("code")
    return (a, frame.geometry[a]), (b, frame.geometry[b])


def fc(*features: tuple[dict, object]) -> dict:
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": p, "geometry": mapping(g)} for p, g in features]}


def test_validate_unchanged_grid_is_clean(demo_client, pair):
    (a, geom), _ = pair
    res = demo_client.post("/grids/validate", json=fc(({"code": a}, geom)))
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["ok"] is True and body["report"]["errors"] == 0
    assert body["closes"] == [a] and body["villages"] == [a[:12]]


def test_validate_overlap_returns_problem_geometry(demo_client, pair):
    (a, geom), _ = pair
    drawn = shapely.buffer(geom.representative_point(), 0.002)  # a new grid drawn over grid a
    res = demo_client.post("/grids/validate", json=fc(({"village_code": a[:12]}, drawn)))
    body = res.json()
    assert res.status_code == 200 and body["ok"] is False
    overlaps = [f for f in body["problems"]["features"] if f["properties"]["kind"] == "overlap"]
    assert overlaps and a in overlaps[0]["properties"]["codes"]
    ground = shapely.geometry.shape(overlaps[0]["geometry"])
    assert ground.area == pytest.approx(drawn.intersection(geom).area, rel=0.05)
    assert len(body["codes"]) == 1 and body["codes"][0].startswith(a[:12])  # a code proposed in reading order


def test_reshape_that_overlaps_is_refused_with_problems(demo_client, pair):
    (a, ga), (b, gb) = pair
    grown = ga.union(gb.intersection(ga.buffer(0.0005)))
    res = demo_client.post("/grids/edits/reshape", json={**WHO, "grids": fc(({"code": a}, grown))})
    assert res.status_code == 422
    body = res.json()
    assert body["report"]["counts"]["overlap"] >= 1
    assert any(f["geometry"] for f in body["problems"]["features"])
    assert len(demo_client.get(f"/grids/{a}/history").json()["features"]) == 1  # nothing saved


def test_reshape_moving_a_shared_edge_saves_new_versions(demo_client, pair):
    (a, ga), (b, gb) = pair
    part = gb.intersection(ga.buffer(0.0005))
    new_a, new_b = ga.union(part), gb.difference(part)
    res = demo_client.post("/grids/edits/reshape", json={**WHO, "grids": fc(({"code": a}, new_a), ({"code": b}, new_b))})
    assert res.status_code == 200, res.text
    body = res.json()
    assert sorted(body["opened"]) == sorted(body["closed"]) == sorted([a, b]) and body["edit_id"] > 0
    history = demo_client.get(f"/grids/{a}/history").json()["features"]
    assert [f["properties"]["who"] for f in history][-1] == WHO["who"]
    assert len(history) == 2 and history[0]["properties"]["valid_to"] is not None


def test_split_by_line_and_merge_back(demo_client, demo_session, pair):
    (a, ga), _ = pair
    village = a[:12]
    before = len(load_grids(demo_session, village=village))
    c = ga.centroid
    x0, y0, x1, y1 = ga.bounds
    line = shapely.LineString([(c.x, y0 - 0.001), (c.x, y1 + 0.001)])
    split = demo_client.post("/grids/edits/split", json={**WHO, "code": a, "line": mapping(line)})
    assert split.status_code == 200, split.text
    pieces = split.json()["opened"]
    assert split.json()["closed"] == [a] and len(pieces) == 2
    assert len(load_grids(demo_session, village=village)) == before + 1
    merged = demo_client.post("/grids/edits/merge", json={**WHO, "codes": pieces, "name": "合并网格"})
    assert merged.status_code == 200, merged.text
    (new_code,) = merged.json()["opened"]
    assert new_code not in pieces + [a]  # retired codes are never reissued
    assert load_grids(demo_session, codes=[new_code]).geometry[0].area == pytest.approx(ga.area, rel=1e-6)


def test_split_line_in_gcj02_is_converted_first(demo_client, pair):
    (a, ga), _ = pair
    c = ga.centroid
    x0, y0, x1, y1 = ga.bounds
    lon, lat = wgs84_to_gcj02([c.x, c.x], [y0 - 0.001, y1 + 0.001])
    line = {"type": "LineString", "coordinates": [[float(lon[0]), float(lat[0])], [float(lon[1]), float(lat[1])]]}
    res = demo_client.post("/grids/edits/split", json={**WHO, "code": a, "line": line, "crs": "gcj02", "dry_run": True})
    assert res.status_code == 200, res.text
    assert res.json()["dry_run"] is True and len(res.json()["opened"]) == 2


def test_add_overlapping_grid_is_refused_and_edits_need_who_and_why(demo_client, pair):
    (a, ga), _ = pair
    drawn = fc(({"village_code": a[:12]}, shapely.buffer(ga.representative_point(), 0.002)))
    refused = demo_client.post("/grids/edits/add", json={**WHO, "grids": drawn})
    assert refused.status_code == 422 and refused.json()["error"] == "TopologyError"
    anonymous = demo_client.post("/grids/edits/add", json={"who": "", "why": "x", "grids": drawn})
    assert anonymous.status_code == 422 and anonymous.json()["error"] == "InvalidInput"
    bad = demo_client.post("/grids/validate", json={"features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon"}}]})
    assert bad.status_code == 400 and "feature 1" in bad.json()["detail"]
