"""The in-process resolver against the slow shapely reference, on hand-made and generated grids."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis.coords import from_wgs84, gauss_kruger_epsg
from gis.errors import CodeError, InvalidGeometry
from gis.resolve import MATCHES, GridIndex
from gis.resolve_reference import resolve_reference
from scripts.bench_resolve import random_points, synthetic_grids

A, B, C = "370783001001001", "370783001001002", "370783001201001"


@pytest.fixture(scope="module")
def three() -> gpd.GeoDataFrame:
    """东关社区 two squares side by side (A west, B east) over one strip (C) sharing vertex (118.71, 36.90)."""
    a = shapely.Polygon([(118.70, 36.90), (118.71, 36.90), (118.71, 36.91), (118.70, 36.91)])
    b = shapely.Polygon([(118.71, 36.90), (118.72, 36.90), (118.72, 36.91), (118.71, 36.91)])
    c = shapely.Polygon(
        [(118.70, 36.89), (118.72, 36.89), (118.72, 36.90), (118.71, 36.90), (118.70, 36.90)]
    )
    # listed out of code order on purpose: the tie-break must not depend on row order
    return gpd.GeoDataFrame(
        {"code": [C, B, A], "name": ["村网格", "第2网格", "第1网格"]}, geometry=[c, b, a], crs=4326
    )


@pytest.fixture(scope="module")
def three_index(three) -> GridIndex:
    return GridIndex.from_frame(three, version=7)


def _gk_distance(grids: gpd.GeoDataFrame, code: str, lon: float, lat: float) -> float:
    """Independent metres: pyproj to the city's Gauss-Krüger zone, then shapely distance."""
    epsg = gauss_kruger_epsg(float(np.mean(grids.total_bounds[[0, 2]])))
    geom = grids.to_crs(epsg).set_index("code").geometry[code]
    x, y = from_wgs84(lon, lat, f"EPSG:{epsg}")
    return float(shapely.distance(geom, shapely.Point(float(x), float(y))))


def _same(res, ref) -> None:
    assert list(res.match) == list(ref.match)
    assert list(res.grid_code) == list(ref.grid_code)
    np.testing.assert_allclose(res.distance_m, ref.distance_m, rtol=0, atol=1e-6, equal_nan=True)


def test_inside_boundary_and_ties_on_hand_made_grids(three, three_index):
    pts = {
        (118.705, 36.905): (A, "inside"),
        (118.715, 36.895): (C, "inside"),
        (118.71, 36.90): (A, "boundary"),  # vertex shared by all three
        (118.71, 36.905): (A, "boundary"),  # A|B edge
        (118.715, 36.90): (B, "boundary"),  # B|C edge
        (118.705, 36.90): (A, "boundary"),  # A|C edge
        (118.72, 36.895): (C, "boundary"),  # outer edge of C only
        (118.70, 36.91): (A, "boundary"),  # outer corner
    }
    lon, lat = np.array(list(pts)).T
    res = three_index.resolve(lon, lat)
    assert list(zip(res.grid_code, res.match, strict=True)) == list(pts.values())
    assert list(res.distance_m) == [0.0] * len(pts)
    _same(res, resolve_reference(three, lon, lat))
    for (x, y), (code, match) in pts.items():
        assert three_index.resolve_one(x, y) == (code, match, 0.0)


def test_snapping_in_metres(three, three_index):
    lon = np.array([118.705, 118.715, 118.705, 118.725, 118.70 - 0.0004])
    lat = np.array([36.9103, 36.9104, 36.912, 36.895, 36.895])
    res = three_index.resolve(lon, lat)
    assert list(res.match) == ["snapped", "snapped", "outside", "outside", "snapped"]
    assert list(res.grid_code) == [A, B, None, None, C]
    for k in (0, 1, 4):
        assert res.distance_m[k] == pytest.approx(
            _gk_distance(three, res.grid_code[k], lon[k], lat[k]), abs=0.1
        )
    assert res.distance_m[0] == pytest.approx(33.3, abs=0.5)  # 0.0003 deg of latitude
    assert res.distance_m[4] == pytest.approx(35.6, abs=0.5)  # 0.0004 deg of longitude at 36.9 N
    assert math.isnan(res.distance_m[2]) and math.isnan(res.distance_m[3])
    _same(res, resolve_reference(three, lon, lat))
    code, match, dist = three_index.resolve_one(118.705, 36.9103)
    assert (code, match) == (A, "snapped") and dist == pytest.approx(res.distance_m[0], abs=1e-9)


def test_snapping_tie_goes_to_the_lowest_code():
    """Two grids under a roof: a point above the ridge vertex is equally near both."""
    ridge = (118.71, 36.905)
    west = shapely.Polygon([(118.70, 36.90), ridge, (118.71, 36.89), (118.70, 36.89)])
    east = shapely.Polygon([ridge, (118.72, 36.90), (118.72, 36.89), (118.71, 36.89)])
    grids = gpd.GeoDataFrame({"code": [B, A]}, geometry=[west, east], crs=4326)
    index = GridIndex.from_frame(grids)
    res = index.resolve([118.71], [36.9052])
    assert (res.grid_code[0], res.match[0]) == (A, "snapped")
    assert res.distance_m[0] == pytest.approx(_gk_distance(grids, B, 118.71, 36.9052), abs=1e-9)
    assert res.distance_m[0] == pytest.approx(_gk_distance(grids, A, 118.71, 36.9052), abs=1e-9)
    _same(res, resolve_reference(grids, [118.71], [36.9052]))


def test_snapping_can_be_switched_off(three):
    index = GridIndex.from_frame(three, snap_m=0)
    lon, lat = [118.705, 118.715, 118.705], [36.9103, 36.9104, 36.905]
    res = index.resolve(lon, lat)
    assert list(res.match) == ["outside", "outside", "inside"]
    assert list(res.grid_code) == [None, None, A]
    _same(res, resolve_reference(three, lon, lat, snap_m=0))
    assert index.resolve_one(118.705, 36.9103)[:2] == (None, "outside")


def test_invalid_and_far_points(three_index):
    res = three_index.resolve([np.nan, 118.705, 0.0, np.inf], [36.9, np.nan, 0.0, 36.9])
    assert list(res.match) == ["invalid", "invalid", "outside", "invalid"]
    assert list(res.grid_code) == [None] * 4
    assert np.isnan(res.distance_m).all()
    assert three_index.resolve_one(math.nan, 36.9) == (
        None,
        "invalid",
        pytest.approx(math.nan, nan_ok=True),
    )
    assert three_index.resolve_one(100.0, 20.0)[:2] == (None, "outside")
    assert len(three_index.resolve([], [])) == 0


def test_index_attributes_and_bad_input(three, three_index):
    assert three_index.version == 7
    assert list(three_index.codes) == [A, B, C]
    with pytest.raises(CodeError):
        GridIndex.from_frame(
            gpd.GeoDataFrame({"code": [A, A]}, geometry=list(three.geometry[:2]), crs=4326)
        )
    with pytest.raises(InvalidGeometry):
        GridIndex.from_frame(
            gpd.GeoDataFrame({"code": [A]}, geometry=[shapely.Point(118.7, 36.9)], crs=4326)
        )
    with pytest.raises(ValueError):
        GridIndex.from_frame(three, snap_m=-1)


@pytest.fixture(scope="module")
def city() -> gpd.GeoDataFrame:
    return synthetic_grids(n=80, vertices=60, seed=3)


def _probe_points(grids: gpd.GeoDataFrame, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random points over the bounding box, every vertex (shared ones are ties), edge midpoints,
    and points jittered 1-80 m off the vertices (in and out of the snapping band)."""
    lon, lat = random_points(grids, n, seed=5)
    xy = shapely.get_coordinates(grids.geometry.values)
    mid = (xy[:-1] + xy[1:]) / 2
    rng = np.random.default_rng(9)
    jitter = xy + rng.normal(0, 0.0004, xy.shape)
    return np.concatenate([lon, xy[:, 0], mid[:, 0], jitter[:, 0]]), np.concatenate(
        [lat, xy[:, 1], mid[:, 1], jitter[:, 1]]
    )


@pytest.mark.parametrize("cell_m", [None, 7.0, 150.0])
def test_agrees_with_reference_point_for_point(city, cell_m):
    index = GridIndex.from_frame(city, cell_m=cell_m)
    lon, lat = _probe_points(city, 100_000)
    res, ref = index.resolve(lon, lat), resolve_reference(city, lon, lat)
    _same(res, ref)
    counts = {m: int((ref.match == m).sum()) for m in ("inside", "boundary", "snapped", "outside")}
    assert min(counts.values()) > 100, counts  # every kind of answer is exercised
    some = np.random.default_rng(2).choice(len(lon), 2000, replace=False)
    for k in some:
        code, match, dist = index.resolve_one(float(lon[k]), float(lat[k]))
        assert (code, match) == (ref.grid_code[k], ref.match[k])
        assert dist == pytest.approx(ref.distance_m[k], abs=1e-6, nan_ok=True)
    grid, match, dist = index.resolve_positions(lon, lat)  # positions: the same answers as integers
    codes = np.append(index.codes, None)
    assert (codes[grid] == res.grid_code).all() and (MATCHES[match] == res.match).all()
    np.testing.assert_array_equal(dist, res.distance_m)


def test_overlapping_bad_data_still_matches_reference(city):
    """Overlaps break the shortcuts the index takes for clean data; answers must stay exact."""
    bad = city.copy()
    bad.loc[0, "geometry"] = shapely.buffer(bad.geometry[0], 0.004)  # overlaps its neighbours
    bad.loc[1, "geometry"] = shapely.segmentize(bad.geometry[1], 0.0003)  # hairline slivers
    index = GridIndex.from_frame(bad)
    lon, lat = _probe_points(bad, 30_000)
    _same(index.resolve(lon, lat), resolve_reference(bad, lon, lat))


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "EPSG:4528", "EPSG:3857"])
def test_other_coordinate_systems_land_in_the_same_grid(city, crs):
    index = GridIndex.from_frame(city)
    lon, lat = random_points(city, 5_000, seed=11)
    wgs = index.resolve(lon, lat)
    edges = shapely.union_all(shapely.boundary(city.geometry.values))
    clear = shapely.distance(edges, shapely.points(lon, lat)) > 1e-5  # > ~1 m from any edge
    x, y = from_wgs84(lon, lat, crs)
    other = index.resolve(x, y, crs=crs)
    assert clear.sum() > 4000
    assert list(other.grid_code[clear]) == list(wgs.grid_code[clear])
    assert list(other.match[clear]) == list(wgs.match[clear])
    k = int(np.flatnonzero(clear & (wgs.match == "inside"))[0])
    assert index.resolve_one(float(x[k]), float(y[k]), crs=crs) == (wgs.grid_code[k], "inside", 0.0)


def test_demo_sized_grid_set_builds_in_seconds():
    """The bench's synthetic city: 1,347 grids of ~100 vertices (speed itself is the bench's job)."""
    grids = synthetic_grids()
    index = GridIndex.from_frame(grids)
    lon, lat = random_points(grids, 20_000, seed=4)
    _same(index.resolve(lon, lat), resolve_reference(grids, lon, lat))
