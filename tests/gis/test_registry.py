"""The registry on a real PostGIS: imports are all or nothing, edits are versioned, nothing is lost."""

from datetime import UTC, datetime

import pytest
import shapely
import shapely.affinity
from shapely.geometry import LineString
from sqlalchemy import func, select

from gis import edits, registry
from gis.errors import CodeError, Conflict, InvalidGeometry, NotFound, TopologyError
from gis.models import Grid, GridEdit
from tests import registry_city as city


def _counts(session):
    return (session.scalar(select(func.count()).select_from(Grid)),
            session.scalar(select(func.count()).select_from(GridEdit)))


@pytest.fixture
def loaded(session):
    registry.import_areas(session, city.areas(), who="tester", why="set-up")
    registry.import_grids(session, city.grids(), who="tester", why="set-up")
    return session


def test_import_then_load(loaded):
    grids = registry.load_grids(loaded)
    assert list(grids["code"]) == ["370783001001001", "370783001001002", "370783001002001"]
    assert list(grids["town_code"].unique()) == ["370783001000"]
    assert grids.iloc[0]["name"] == "东关社区第1网格"
    assert registry.validate_registry(loaded).ok
    version = registry.registry_version(loaded)
    registry.import_grids(loaded, city.grids(), who="t", why="again", replace=True)
    assert registry.registry_version(loaded) == version + 1


def _refused(session, exc, match, frame):
    before = _counts(session)
    with pytest.raises(exc, match=match):
        registry.import_grids(session, frame, who="t", why="t")
    assert _counts(session) == before


def test_overlap_is_refused_and_nothing_written(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    bad = city.grids(**{"370783001001002": ("南", city.rect(0, 0, 500, 320))})  # 20 m into the north grid
    before = _counts(session)
    with pytest.raises(TopologyError) as info:
        registry.import_grids(session, bad, who="t", why="t")
    report = info.value.detail
    overlaps = [p for p in report.problems if p.kind == "overlap"]
    assert len(overlaps) == 1 and overlaps[0].area_m2 == pytest.approx(500 * 20, rel=1e-3)
    assert _counts(session) == before


def test_gap_is_refused(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    bad = city.grids(**{"370783001001002": ("南", city.rect(0, 0, 500, 290))})  # a 10 m strip uncovered
    with pytest.raises(TopologyError) as info:
        registry.import_grids(session, bad, who="t", why="t")
    gaps = [p for p in info.value.detail.problems if p.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].area_m2 == pytest.approx(5000, rel=1e-3)


def test_self_intersecting_polygon_is_refused(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    bowtie = shapely.Polygon([(city.X0, city.Y0), (city.X0 + 500, city.Y0 + 300),
                              (city.X0 + 500, city.Y0), (city.X0, city.Y0 + 300)])
    frame = city.grids(**{"370783001001002": ("南", bowtie)})
    with pytest.raises(TopologyError) as info:
        registry.import_grids(session, frame, who="t", why="t")
    invalid = [p for p in info.value.detail.problems if p.kind == "invalid"]
    assert invalid and "Self-intersection" in invalid[0].message


def test_bad_codes_are_refused(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    frame = city.grids()
    frame.loc[0, "code"] = "37078300100100"
    _refused(session, CodeError, "exactly 15 digits", frame)
    frame = city.grids()
    frame.loc[1, "code"] = frame.loc[0, "code"]
    _refused(session, CodeError, "duplicate grid codes", frame)
    frame = city.grids()
    frame["village_code"] = "370783001002"
    _refused(session, CodeError, "does not start with", frame)


def test_grid_in_unregistered_village_is_refused(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    frame = city.grids()
    frame.loc[2, "code"] = "370783001003001"
    _refused(session, CodeError, "370783001003 is not registered", frame)


def test_point_layer_is_refused(session):
    frame = city.grids()
    frame["geometry"] = frame.geometry.representative_point()
    _refused(session, InvalidGeometry, "expected polygons", frame)


def test_reimport_conflicts_unless_replace(loaded):
    with pytest.raises(Conflict, match="already registered"):
        registry.import_grids(loaded, city.grids(), who="t", why="again")
    done = registry.import_grids(loaded, city.grids(), who="t", why="redraw", replace=True)
    assert sorted(done.closed) == sorted(done.opened)
    assert len(registry.grid_history(loaded, "370783001001001")) == 2


def test_codes_assigned_when_missing(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    frame = city.grids()
    frame["code"] = None
    done = registry.import_grids(session, frame, who="t", why="t")
    assert sorted(done.opened) == ["370783001001001", "370783001001002", "370783001002001"]
    north = registry.load_grids(session, codes=["370783001001001"]).geometry.iloc[0]
    assert north.centroid.y > registry.load_grids(session, codes=["370783001001002"]).geometry.iloc[0].centroid.y


def test_split_merge_reshape_are_versioned(loaded):
    t0 = datetime.now(UTC)
    x = city.X0 + 250
    line = city.to_wgs(__import__("geopandas").GeoDataFrame(
        geometry=[LineString([(x, city.Y0 - 10), (x, city.Y0 + 310)])])).geometry.iloc[0]
    done = edits.split(loaded, "370783001001002", line, who="规划员", why="人口增长")
    assert done.closed == ["370783001001002"]
    assert sorted(done.opened) == ["370783001001003", "370783001001004"]  # 002 retired, never reused
    current = registry.load_grids(loaded)
    west, east = (current.set_index("code").geometry[c].centroid.x for c in sorted(done.opened))
    assert west < east  # numbered west → east
    assert "370783001001002" not in set(current["code"]) and len(current) == 4
    assert registry.validate_registry(loaded).ok
    # as of before the split, the old grid is there
    old = registry.load_grids(loaded, as_of=t0)
    assert "370783001001002" in set(old["code"]) and len(old) == 3
    merged = edits.merge(loaded, ["370783001001003", "370783001001004"], who="规划员", why="合并")
    assert merged.opened == ["370783001001005"]
    history = registry.grid_history(loaded, "370783001001002")
    assert history.iloc[0]["valid_to"] is not None
    edit = loaded.scalar(select(GridEdit).order_by(GridEdit.id.desc()).limit(1))
    assert edit.who == "规划员" and edit.kind == "merge"


def test_reshape_moving_a_shared_edge(loaded):
    north = city.to_wgs(__import__("geopandas").GeoDataFrame(geometry=[city.rect(0, 280, 500, 600)])).geometry.iloc[0]
    south = city.to_wgs(__import__("geopandas").GeoDataFrame(geometry=[city.rect(0, 0, 500, 280)])).geometry.iloc[0]
    with pytest.raises(TopologyError):  # moving one side alone overlaps the neighbour
        edits.reshape(loaded, {"370783001001001": north}, who="p", why="w")
    done = edits.reshape(loaded, {"370783001001001": north, "370783001001002": south}, who="p", why="w")
    assert sorted(done.opened) == ["370783001001001", "370783001001002"]
    assert len(registry.grid_history(loaded, "370783001001001")) == 2


def test_merge_refuses_grids_of_two_villages(loaded):
    with pytest.raises(CodeError, match="different villages"):
        edits.merge(loaded, ["370783001001001", "370783001002001"], who="p", why="w")


def test_unknown_grid(loaded):
    with pytest.raises(NotFound):
        registry.grid_history(loaded, "370783001001777")


def test_grid_far_outside_the_county_is_refused(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    frame = city.grids()
    frame.loc[2, "geometry"] = shapely.affinity.translate(frame.geometry.iloc[2], xoff=-2.4, yoff=3.0)  # Beijing
    before = _counts(session)
    with pytest.raises(TopologyError) as info:
        registry.import_grids(session, frame, who="t", why="t")
    kinds = {p.kind for p in info.value.detail.problems}
    assert "outside_parent" in kinds and "gap" in kinds
    assert _counts(session) == before
