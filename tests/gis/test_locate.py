"""The resolver service on the demo city: PostGIS agrees point for point; edits are seen at once."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
import shapely

from gis import edits, registry
from gis.coords import wgs84_to_bd09, wgs84_to_gcj02
from gis.errors import InvalidInput
from gis.locate import locate, locate_many, locate_table, postgis_resolve


def _random_points(session, n, seed=11):
    grids = registry.load_grids(session)
    minx, miny, maxx, maxy = grids.total_bounds
    rng = np.random.default_rng(seed)
    return rng.uniform(minx - 0.01, maxx + 0.01, n), rng.uniform(miny - 0.01, maxy + 0.01, n)


@pytest.mark.slow
def test_postgis_agrees_on_200k_random_points(demo_session):
    lon, lat = _random_points(demo_session, 200_000)
    ours = locate_many(demo_session, lon, lat)
    theirs = postgis_resolve(demo_session, lon, lat)
    covered = ours["match"].isin(["inside", "boundary"]).to_numpy()
    expected = np.where(covered, ours["grid_code"].to_numpy(dtype=object), None)
    disagree = np.flatnonzero(expected != theirs)
    assert covered.sum() > 100_000  # most points fall in the city
    assert len(disagree) == 0, f"{len(disagree)} disagreements, e.g. {lon[disagree[:3]]}, {lat[disagree[:3]]}"


def test_shared_vertices_agree_with_postgis(demo_session):
    grids = registry.load_grids(demo_session, town="370783001000")
    coords = shapely.get_coordinates(grids.geometry.values)[::7]
    ours = locate_many(demo_session, coords[:, 0], coords[:, 1])
    assert set(ours["match"]) <= {"boundary"}  # every vertex lies on a grid edge
    theirs = postgis_resolve(demo_session, coords[:, 0], coords[:, 1])
    assert list(ours["grid_code"]) == list(theirs)


def test_one_point_all_crs(demo_session):
    grid = registry.load_grids(demo_session).iloc[100]
    p = grid.geometry.representative_point()
    wgs = locate(demo_session, p.x, p.y)
    assert wgs.grid_code == grid.code and wgs.match == "inside" and wgs.distance_m == 0
    assert wgs.town_code == grid.town_code and wgs.town_name and wgs.village_name
    gx, gy = wgs84_to_gcj02(p.x, p.y)
    bx, by = wgs84_to_bd09(p.x, p.y)
    assert locate(demo_session, float(gx), float(gy), crs="gcj02").grid_code == grid.code
    assert locate(demo_session, float(bx), float(by), crs="bd09").grid_code == grid.code


def test_snapped_and_outside(demo_session):
    grids = registry.load_grids(demo_session)
    county = shapely.union_all(grids.geometry.values)
    west = shapely.get_coordinates(county)[:, 0].argmin()
    x, y = shapely.get_coordinates(county)[west]
    near = locate(demo_session, x - 0.0002, y)  # ~18 m west of the westernmost vertex
    assert near.match == "snapped" and 10 < near.distance_m < 50
    far = locate(demo_session, x - 0.01, y)
    assert far.match == "outside" and far.grid_code is None


def test_edit_is_seen_at_once_and_as_of_keeps_the_past(demo_session):
    grids = registry.load_grids(demo_session, village=registry.load_grids(demo_session).iloc[0].village_code)
    a, b = grids.iloc[0], grids.iloc[1]
    before = datetime.now(UTC)
    if not a.geometry.touches(b.geometry):
        pytest.fail("demo village's first two grids should be neighbours")
    merged = edits.merge(demo_session, [a.code, b.code], who="t", why="t").opened[0]
    p = a.geometry.representative_point()
    assert locate(demo_session, p.x, p.y).grid_code == merged
    assert locate(demo_session, p.x, p.y, as_of=before).grid_code == a.code


def test_table_keeps_every_row_with_errors(demo_session):
    grid = registry.load_grids(demo_session).iloc[5]
    p = grid.geometry.representative_point()
    frame = pd.DataFrame({"id": [1, 2, 3, 4], "lon": [str(p.x), "abc", "", str(p.x)],
                          "lat": [str(p.y), "36.9", "36.9", "95"]})
    out = locate_table(demo_session, frame)
    assert list(out["row"]) == [1, 2, 3, 4]
    assert out.loc[0, "grid_code"] == grid.code and out.loc[0, "error"] is None
    assert "lon is missing or not a number" == out.loc[1, "error"] == out.loc[2, "error"]
    assert "latitude" in out.loc[3, "error"]
    with pytest.raises(InvalidInput, match="column 'x' not found"):
        locate_table(demo_session, frame, lon_col="x")


def test_committed_edit_in_another_session_is_seen_by_the_next_call(scratch_url):
    """The version probe (its own autocommit connection, no pooled session) never answers from a stale
    index: an edit committed elsewhere changes the very next answer, and a session holding its own
    uncommitted edit is answered from that edit."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from gis.locate import PROBE
    from scripts.migrate import upgrade
    from tests import registry_city

    upgrade(scratch_url)
    eng = create_engine(scratch_url)
    try:
        with Session(eng) as writer:
            registry.import_areas(writer, registry_city.areas(), who="t", why="t")
            registry.import_grids(writer, registry_city.grids(), who="t", why="t")
            writer.commit()
        grids = registry.load_grids(Session(eng))
        village = grids.village_code.iloc[0]
        pair = grids[grids.village_code == village].iloc[:2]
        p = pair.geometry.iloc[0].representative_point()
        with Session(eng) as reader:  # the first call builds this version's index through the session
            locate(reader, p.x, p.y)
        with Session(eng) as reader:  # bound to the engine: the probe answers the version
            first = locate(reader, p.x, p.y)
            assert not reader.in_transaction()  # the caller's session was never used
        assert first.grid_code == pair.code.iloc[0]
        with Session(eng) as writer:
            merged = edits.merge(writer, list(pair.code), who="t", why="t").opened[0]
            with Session(eng) as reader:  # not committed yet: others still see the old grid
                assert locate(reader, p.x, p.y).grid_code == pair.code.iloc[0]
            assert locate(writer, p.x, p.y).grid_code == merged  # the writer sees its own edit
            writer.commit()
        with Session(eng) as reader:
            after = locate(reader, p.x, p.y)
        assert after.grid_code == merged and after.registry_version > first.registry_version
        assert scratch_url.split("/")[-1] in " ".join(PROBE.databases())
    finally:
        eng.dispose()


def test_an_empty_registry_answers_outside(session):
    """Before any grid is imported (a fresh install registering its first sensors or cameras), every
    point is outside — not an error about grid geometries."""
    assert registry.load_grids(session).empty
    assert locate(session, 118.8, 36.88).match == "outside"
    many = locate_many(session, [118.8, 118.9], [36.88, 36.9])
    assert list(many["match"]) == ["outside", "outside"] and many["grid_code"].isna().all()
