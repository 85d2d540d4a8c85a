"""The committed demo city (data/grid_boundaries/) is what the generator promises.

Read from the files, not from a fresh build: these files are what the loader, the viewer and every
integration test use. One test rebuilds with the default seed and checks the files are current.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gis import codes as C
from gis.coords import gauss_kruger_epsg
from scripts import demo_city

DATA = Path(__file__).resolve().parents[2] / "data" / "grid_boundaries"
EPSG = gauss_kruger_epsg(118.8)  # 4528
SLIVER_M2 = 1.0


@pytest.fixture(scope="module")
def areas() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "areas.geojson", engine="pyogrio")


@pytest.fixture(scope="module")
def grids() -> gpd.GeoDataFrame:
    return gpd.read_file(DATA / "grids.geojson", engine="pyogrio")


@pytest.fixture(scope="module")
def metric(areas, grids) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    return areas.to_crs(EPSG), grids.to_crs(EPSG)


def test_counts_282_community_and_1065_village_grids(grids, areas):
    assert len(grids) == 1347
    kinds = grids["village_code"].map(C.village_kind)
    assert (kinds == "community").sum() == 282
    assert (kinds == "village").sum() == 1065
    assert 20 <= (grids["kind"] == "dedicated").sum() <= 40
    levels = areas["level"].value_counts()
    assert levels["district"] == 1 and 12 <= levels["town"] <= 18
    towns = areas[areas["level"] == "town"]
    assert 4 <= (towns["kind"] == "street").sum() <= 6 and 9 <= (towns["kind"] == "town").sum() <= 11


def test_codes_valid_unique_and_parented(grids, areas):
    level = dict(zip(areas["code"], areas["level"], strict=True))
    for row in areas.itertuples():
        C.validate_area_code(row.code, row.level, row.parent_code if row.level != "district" else None)
        if row.level == "district":
            assert row.code == "370783000000" and row.name == "寿光市" and pd.isna(row.parent_code)
        else:
            assert level[row.parent_code] == ("district" if row.level == "town" else "town")
            kind_of = C.town_kind if row.level == "town" else C.village_kind
            assert row.kind == kind_of(row.code)
    for row in grids.itertuples():
        C.validate_grid_code(row.code, village_code=row.village_code, kind=row.kind)
        assert level.get(row.village_code) == "village"
    assert not C.find_duplicates(grids["code"]) and not C.find_duplicates(areas["code"])


def test_grid_attributes(grids):
    basic = grids[grids["kind"] == "basic"]
    assert basic["households"].between(300, 500).all()
    ratio = grids["population"] / grids["households"].where(grids["households"] > 0)
    assert ratio.dropna().between(2.49, 3.01).all()
    dedicated = grids[grids["kind"] == "dedicated"]
    assert dedicated["name"].str.endswith("专属网格").all()
    assert "寿光市第一中学专属网格" in set(dedicated["name"])
    assert grids["name"].str.contains("网格").all() and grids["name"].is_unique


def test_polygons_valid_ccw_and_realistic_vertex_counts(grids, areas):
    for frame in (grids, areas):
        geoms = frame.geometry.values
        assert (shapely.get_type_id(geoms) == 3).all()  # Polygon
        assert shapely.is_valid(geoms).all()
        assert shapely.is_ccw(shapely.get_exterior_ring(geoms)).all()  # RFC 7946 right-hand rule
    vertices = shapely.get_num_coordinates(grids.geometry.values) - 1  # the ring closes on itself
    assert vertices.min() >= 50 and vertices.max() <= 200


def test_files_are_rfc7946_with_seven_decimals():
    for name in ("areas.geojson", "grids.geojson"):
        text = (DATA / name).read_text(encoding="utf-8")
        assert "crs" not in json.loads(text)
        assert not re.search(r"\d\.\d{8,}", text)
        assert (DATA / name).stat().st_size < 4_000_000


def test_no_overlap_anywhere(metric):
    _, grids = metric
    geoms = grids.geometry.values
    a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = a < b
    overlap = shapely.area(shapely.intersection(geoms[a[keep]], geoms[b[keep]]))
    assert keep.sum() > 3000  # neighbours really were compared
    assert overlap.max() < SLIVER_M2


def _tiles(children: gpd.GeoDataFrame, parents: gpd.GeoDataFrame, key: str) -> None:
    """Each parent is exactly the union of its children: no gap, no overlap, nothing outside."""
    union = children.dissolve(by=key).geometry
    parent = parents.set_index("code").geometry.loc[union.index]
    child_sum = children.geometry.area.groupby(children[key]).sum().loc[union.index]
    assert len(union) == len(parents)
    assert np.abs(child_sum.values - parent.area.values).max() < SLIVER_M2
    assert shapely.area(shapely.symmetric_difference(union.values, parent.values)).max() < SLIVER_M2


def test_grids_tile_villages_villages_tile_towns_towns_tile_county(metric):
    areas, grids = metric
    villages = areas[areas["level"] == "village"]
    towns = areas[areas["level"] == "town"]
    _tiles(grids, villages, "village_code")
    _tiles(villages, towns, "parent_code")
    _tiles(towns, areas[areas["level"] == "district"], "parent_code")


def test_county_is_the_real_boundary_in_wgs84(metric, areas):
    county_m = metric[0].loc[metric[0]["level"] == "district"].geometry.iloc[0]
    real = gpd.GeoSeries([demo_city.county_boundary()], crs=4326).to_crs(EPSG).iloc[0]
    assert county_m.area == pytest.approx(real.area, rel=0.01)
    assert county_m.area / 1e6 == pytest.approx(1962, rel=0.01)
    assert county_m.symmetric_difference(real).area < 0.001 * real.area
    centroid = areas.loc[areas["level"] == "district"].geometry.iloc[0].centroid
    assert abs(centroid.x - 118.8) < 0.05 and abs(centroid.y - 36.9) < 0.15


def test_community_grids_are_small_and_urban(metric):
    _, grids = metric
    community = grids["village_code"].map(C.village_kind) == "community"
    area_km2 = grids.geometry.area / 1e6
    assert area_km2[community].median() < 0.6 < area_km2[~community].median()
    centre = gpd.GeoSeries(shapely.points([118.79], [36.86]), crs=4326).to_crs(EPSG).iloc[0]
    assert grids.geometry[community].centroid.distance(centre).max() < 9000


def test_files_are_what_the_generator_builds(areas, grids):
    """Deterministic for the seed: a rebuild reproduces the committed files.

    Coordinates are compared within 1e-6° (~0.1 m) rather than bit for bit, so a PROJ or GEOS
    release that moves a last digit does not fail CI; a real change of the net still does.
    """
    new_areas, new_grids = demo_city.build(7)
    for old, new in ((areas, new_areas), (grids, new_grids)):
        assert list(old["code"]) == list(new["code"])
        assert list(old["name"]) == list(new["name"])
        assert shapely.equals_exact(old.geometry.values, new.geometry.values, tolerance=1e-6).all()
