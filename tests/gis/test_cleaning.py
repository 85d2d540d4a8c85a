"""gis.cleaning: sub-m² artefacts removed in the file's metres; polygons broken by conversion repaired."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from gis.cleaning import clean_artefacts, repair_reprojected
from gis.coords import to_wgs84
from tests import registry_city as city

GK = "EPSG:4528"
X0, Y0 = city.X0, city.Y0


def lonlat(geoms):
    return shapely.transform(np.asarray(geoms, dtype=object),
                             lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], GK)))


def test_micro_holes_and_crumbs_go_real_ones_stay():
    shell = box(X0, Y0, X0 + 100, Y0 + 100)
    tiny = [(X0 + 10, Y0 + 10), (X0 + 10.5, Y0 + 10), (X0 + 10.5, Y0 + 10.5)]  # 0.125 m²
    real = [(X0 + 50, Y0 + 50), (X0 + 60, Y0 + 50), (X0 + 60, Y0 + 60), (X0 + 50, Y0 + 60)]  # 100 m²
    crumb = box(X0 + 200, Y0, X0 + 200.5, Y0 + 0.5)  # 0.25 m²
    geoms = np.array([Polygon(shell.exterior.coords, [tiny, real]), MultiPolygon([shell, crumb]),
                      box(X0, Y0, X0 + 0.5, Y0 + 0.5)], dtype=object)
    out, fixes = clean_artefacts(geoms, metric=True, to_lonlat=lonlat)
    assert [len(p.interiors) for p in [out[0]]] == [1] and out[0].interiors[0].coords[0] == real[0]
    assert out[1].equals(shell) and out[2].equals(geoms[2])  # a lone tiny polygon is kept whole
    assert [(f.row, f.what, round(f.area_m2, 3)) for f in fixes] == [(1, "micro-hole", 0.125), (2, "crumb", 0.25)]
    assert X0 + 10 < fixes[0].x < X0 + 10.5  # where, in the file's coordinates
    assert 118.7 < fixes[0].geometry.bounds[0] < 118.9  # and what, in lon/lat, for the problems file


def test_a_polygon_broken_only_by_conversion_is_repaired_and_reported():
    """A 6 m² hole touching the middle of a 1 km north edge: valid in EPSG:4528, self-intersecting in
    lon/lat (the straight edge bows under the projection). Repaired, not refused, and reported."""
    shell = [(X0, Y0), (X0 + 1000, Y0), (X0 + 1000, Y0 + 1000), (X0, Y0 + 1000)]
    hole = [(X0 + 500, Y0 + 1000), (X0 + 497, Y0 + 998), (X0 + 503, Y0 + 998)]
    source = np.array([Polygon(shell, [hole]), box(X0, Y0 - 100, X0 + 100, Y0)], dtype=object)
    converted = lonlat(source)
    assert source[0].is_valid and not converted[0].is_valid  # the failure the county analyst met
    repaired, fixes = repair_reprojected(source, converted)
    assert shapely.is_valid(repaired).all() and repaired[1] is converted[1]
    assert [(f.row, f.what) for f in fixes] == [(1, "reprojection")] and fixes[0].area_m2 < 0.01
