"""Reshapes the browser can save: rounded outlines snap back, shared vertices move together; undo."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import mapping
from sqlalchemy import text

from gis import edits
from gis.registry import load_grids

WHO = {"who": "规划科 王工", "why": "社区调整"}


@pytest.fixture
def pair(demo_session):
    """Two neighbouring grids of one village sharing an edge, and a vertex of a's they share."""
    a, b = demo_session.execute(text(
        "SELECT a.code, b.code FROM grids a JOIN grids b ON a.village_code = b.village_code AND a.code < b.code"
        " AND a.valid_to IS NULL AND b.valid_to IS NULL AND a.geom && b.geom"
        " WHERE ST_Length(ST_Intersection(a.geom, b.geom)::geography) > 200 ORDER BY a.code, b.code LIMIT 1")).one()
    frame = load_grids(demo_session, codes=[a, b]).set_index("code")
    return (a, frame.geometry[a]), (b, frame.geometry[b])


def rounded(geom, digits=6):
    """What the editor page used to send: Leaflet's toGeoJSON() rounds to 6 decimals."""
    return shapely.set_precision(geom, 10**-digits, mode="pointwise")


def fc(code, geom):
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"code": code},
                                                      "geometry": mapping(geom)}]}


def shared_vertex(ga, gb):
    """A vertex of a's outer ring inside the edge it shares with b (a and b only), not a ring's seam."""
    ring = list(ga.geoms[0].exterior.coords)
    others = set(map(tuple, shapely.get_coordinates(gb)))
    return next(i for i in range(2, len(ring) - 2)
                if all(tuple(ring[j]) in others for j in (i - 1, i, i + 1)))


def test_an_unchanged_outline_rounded_to_six_decimals_saves_without_slivers(demo_client, demo_session, pair):
    (a, ga), _ = pair
    res = demo_client.post("/grids/edits/reshape", json={**WHO, "grids": fc(a, rounded(ga))})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["report"]["errors"] == 0 and body["neighbours"] == []
    saved = load_grids(demo_session, codes=[a]).geometry.iloc[0]
    assert shapely.equals_exact(saved, ga, tolerance=0)  # snapped back onto the stored vertices


def test_dragging_a_shared_vertex_moves_the_neighbour_in_the_same_edit(demo_client, demo_session, pair):
    (a, ga), (b, gb) = pair
    k = shared_vertex(ga, gb)
    coords = list(ga.geoms[0].exterior.coords)
    x, y = coords[k]
    moved = (x + 0.0003, y + 0.0002)  # ~30 m
    coords[k] = moved
    drawn = rounded(shapely.MultiPolygon([shapely.Polygon(coords)]))
    before = load_grids(demo_session, villages=[a[:12]]).set_index("code").geometry
    res = demo_client.post("/grids/edits/reshape", json={**WHO, "grids": fc(a, drawn)})
    assert res.status_code == 200, res.text
    body = res.json()
    assert b in body["neighbours"] and set(body["opened"]) >= {a, b}
    after = load_grids(demo_session, codes=body["opened"]).set_index("code").geometry
    assert after[a].intersection(after[b]).area < 1e-12  # no overlap
    old = shapely.union_all([before[c] for c in body["opened"] if c in before.index])
    assert shapely.symmetric_difference(old, shapely.union_all(after.values)).area < 1e-12  # no gap
    assert shapely.distance(shapely.Point(moved), shapely.points(shapely.get_coordinates(after[b]))).min() < 1e-6
    edit_ids = demo_session.execute(text("SELECT DISTINCT edit_id FROM grids WHERE code IN (:a, :b)"
                                         " AND valid_to IS NULL"), {"a": a, "b": b}).scalars().all()
    assert len(edit_ids) == 1


def test_without_following_the_drag_leaves_a_gap_and_is_refused(demo_client, pair):
    (a, ga), (b, gb) = pair
    k = shared_vertex(ga, gb)
    coords = list(ga.geoms[0].exterior.coords)
    coords[k] = (coords[k][0] + 0.0003, coords[k][1] + 0.0002)
    drawn = shapely.MultiPolygon([shapely.Polygon(coords)])
    res = demo_client.post("/grids/edits/reshape",
                           json={**WHO, "grids": fc(a, drawn), "follow_shared": False, "dry_run": True})
    assert res.status_code == 422


def test_undo_restores_the_outlines_and_codes_as_a_new_version(demo_client, demo_session, pair):
    (a, ga), (b, gb) = pair
    line = shapely.LineString([(ga.bounds[0] - 0.01, ga.centroid.y), (ga.bounds[2] + 0.01, ga.centroid.y)])
    split = demo_client.post("/grids/edits/split", json={**WHO, "code": a, "line": mapping(line)}).json()
    recent = demo_client.get("/grids/edits/recent", params={"limit": 1}).json()
    assert recent[0]["id"] == split["edit_id"] and recent[0]["kind"] == "split"
    res = demo_client.post(f"/grids/edits/{split['edit_id']}/revert", json={**WHO, "why": "拆错了"})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["opened"] == [a] and sorted(body["closed"]) == sorted(split["opened"])
    back = load_grids(demo_session, codes=[a]).iloc[0]
    assert shapely.equals_exact(back.geometry, ga, tolerance=0) and back.edit_id == body["edit_id"]
    assert back.why.startswith(f"撤销编辑 #{split['edit_id']}")
    again = demo_client.post(f"/grids/edits/{split['edit_id']}/revert", json=WHO)
    assert again.status_code == 409 and "later edits" in again.json()["detail"]
    assert demo_client.post("/grids/edits/999999999/revert", json=WHO).status_code == 404


def test_the_search_finds_grids_by_name_and_code(demo_client, demo_session, pair):
    (a, _), _ = pair
    name = demo_session.scalar(text("SELECT name FROM grids WHERE code = :c AND valid_to IS NULL"), {"c": a})
    by_code = demo_client.get("/grids/edits/find", params={"q": a[:13]}).json()
    assert by_code and all(r["code"].startswith(a[:13]) for r in by_code)
    by_name = demo_client.get("/grids/edits/find", params={"q": name}).json()
    assert a in [r["code"] for r in by_name] and by_name[0]["village_name"]


def test_snap_moves_only_vertices_within_the_tolerance():
    square = shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    drawn = shapely.Polygon([(0.000001, 0), (1, 0.000002), (1.5, 1), (0, 1)])
    out = edits.snap(drawn, shapely.get_coordinates(square))
    assert list(out.exterior.coords)[:4] == [(0, 0), (1, 0), (1.5, 1), (0, 1)]
