import json
import time

import numpy as np
import pandas as pd
import pytest
import shapely

from gis import metric
from gis.topology import Problem, Report, validate_areas, validate_grids
from tests.gis import geoms as G

V = G.VILLAGE
G1, G2, G3 = G.code(V, 1), G.code(V, 2), G.code(V, 3)


def only(report: Report, kind: str) -> list[Problem]:
    return [p for p in report.problems if p.kind == kind]


def kinds(report: Report) -> list[str]:
    return [p.kind for p in report.problems]


# ----------------------------------------------------------------------------- metric helpers

def test_local_zone_and_areas_in_square_metres():
    grids = G.three_grids()
    assert metric.local_crs(grids) == "EPSG:4528"
    np.testing.assert_allclose(metric.area_m2(grids), [20000.0] * 3, atol=1e-3)
    back = metric.from_metric(metric.to_metric(grids, 4528), "EPSG:4528")
    assert shapely.equals_exact(back, grids.geometry.values, tolerance=1e-9).all()


def test_local_zone_follows_longitude():
    far_west = [shapely.box(87.5, 43.7, 87.7, 43.9)]  # Ürümqi: zone 29, EPSG:4517
    assert metric.local_crs(far_west) == "EPSG:4517"


# ----------------------------------------------------------------------------- grids

def test_clean_village_passes():
    report = validate_grids(G.three_grids(), G.villages())
    assert report.ok and report.problems == []
    assert report.summary()["checked"] == {"grids": 3, "villages": 1}
    assert set(report.summary()["counts"].values()) == {0}
    assert report.to_text().startswith("OK: checked 3 grids, 1 villages; no problems")


def test_bowtie_is_invalid_and_its_missing_triangles_are_gaps():
    report = validate_grids(G.three_grids([G.THREE[0], G.bowtie(), G.THREE[2]]), G.villages())
    [bad] = only(report, "invalid")
    assert bad.codes == [G2] and "Self-intersection" in bad.message
    assert bad.geometry.distance(G.lonlat(shapely.Point(150, 100))) < 1e-7  # where it crosses
    # the repaired bowtie keeps its two triangles; the two it leaves out are gaps of 5,000 m²
    gaps = only(report, "gap")
    assert [p.codes for p in gaps] == [[V], [V]]
    np.testing.assert_allclose([p.area_m2 for p in gaps], [5000.0, 5000.0], atol=1.0)
    assert not report.ok and kinds(report) == ["invalid", "gap", "gap"]


def test_overlap_of_two_grids_has_its_area():
    tab = shapely.union_all([G.box(100, 0, 200, 200), G.box(90, 0, 100, 20)])  # 10 m × 20 m into 001
    report = validate_grids(G.three_grids([G.THREE[0], tab, G.THREE[2]]), G.villages())
    assert kinds(report) == ["overlap"]
    [overlap] = report.problems
    assert overlap.codes == [G1, G2]
    assert overlap.area_m2 == pytest.approx(200.0, abs=1.0)
    assert metric.area_m2([overlap.geometry])[0] == pytest.approx(200.0, abs=1.0)
    assert "001号网格" in overlap.message and "002号网格" in overlap.message


def test_gap_of_known_size():
    report = validate_grids(G.three_grids([G.THREE[0], G.box(100, 0, 200, 190), G.THREE[2]]), G.villages())
    assert kinds(report) == ["gap"]
    [gap] = report.problems
    assert gap.codes == [V] and gap.area_m2 == pytest.approx(1000.0, abs=1.0)
    assert "东关村" in gap.message


@pytest.mark.parametrize("height, reported", [(0.005, False), (0.015, True)])
def test_gap_tolerance_is_one_square_metre(height, reported):
    # 100 m × 5 mm = 0.5 m² is digitising noise; 100 m × 15 mm = 1.5 m² is a gap
    short = G.box(100, 0, 200, 200 - height)
    report = validate_grids(G.three_grids([G.THREE[0], short, G.THREE[2]]), G.villages())
    assert kinds(report) == (["gap"] if reported else [])
    if reported:
        assert report.problems[0].area_m2 == pytest.approx(1.5, abs=0.01)


def test_grid_sticking_out_of_its_village():
    report = validate_grids(G.three_grids([G.THREE[0], G.THREE[1], G.box(200, 0, 310, 200)]), G.villages())
    assert kinds(report) == ["outside_parent"]
    [out] = report.problems
    assert out.codes == [G3, V] and out.area_m2 == pytest.approx(2000.0, abs=1.0)


def test_duplicate_code():
    grids = G.three_grids()
    grids.loc[2, "code"] = G2
    report = validate_grids(grids, G.villages())
    assert kinds(report) == ["duplicate_code"]
    assert report.problems[0].codes == [G2] and "rows 2, 3" in report.problems[0].message
    assert metric.area_m2([report.problems[0].geometry])[0] == pytest.approx(40000.0, abs=1.0)


@pytest.mark.parametrize("bad, message", [
    ("37078310520100", "exactly 15 digits"),  # 14 digits
    ("370783105202003", "does not start with its village/community code 370783105201"),
    ("370783105201950", "dedicated code but the grid is basic"),
    (None, "has no grid code"),
])
def test_bad_codes(bad, message):
    grids = G.three_grids()
    grids.loc[2, "code"] = bad
    report = validate_grids(grids, G.villages())
    assert kinds(report) == ["bad_code"]
    assert report.problems[0].codes == [bad or ""] and message in report.problems[0].message


def test_unknown_grid_kind():
    grids = G.three_grids()
    grids.loc[0, "kind"] = "专属"
    report = validate_grids(grids, G.villages())
    assert kinds(report) == ["bad_code"] and "unknown grid kind '专属'" in report.problems[0].message


def test_village_without_grids_is_one_gap():
    villages = G.villages([(V, G.VILLAGE_BOX), (G.VILLAGE_2, G.box(300, 0, 600, 200))])
    report = validate_grids(G.three_grids(), villages)
    assert kinds(report) == ["gap"] and report.problems[0].codes == [G.VILLAGE_2]
    assert "西关村 has no grids" in report.problems[0].message
    assert report.problems[0].area_m2 == pytest.approx(60000.0, abs=1.0)


def test_point_given_as_grid_is_wrong_type_and_leaves_a_gap():
    report = validate_grids(G.three_grids([G.THREE[0], G.THREE[1], shapely.Point(250, 100)]), G.villages())
    assert kinds(report) == ["wrong_type", "gap"]
    assert report.problems[0].codes == [G3] and "Point" in report.problems[0].message
    assert report.problems[1].area_m2 == pytest.approx(20000.0, abs=1.0)


def test_empty_geometry():
    report = validate_grids(G.three_grids([G.THREE[0], G.THREE[1], shapely.Polygon()]), G.villages())
    assert kinds(report) == ["empty", "gap"]


def test_grid_of_a_village_not_in_the_set():
    other = G.frame([G.grid(1, G.box(300, 0, 400, 200), village=G.VILLAGE_2)])
    grids = G.three_grids()
    report = validate_grids(pd.concat([grids, other], ignore_index=True), G.villages())
    assert kinds(report) == ["missing_parent"]
    assert report.problems[0].codes == [G.code(G.VILLAGE_2, 1), G.VILLAGE_2]


def test_overlap_across_villages():
    villages = G.villages([(V, G.VILLAGE_BOX), (G.VILLAGE_2, G.box(300, 0, 600, 200))])
    west = G.box(290, 0, 600, 200)  # village 2's only grid reaches 10 m into village 1's grid 003
    grids = pd.concat([G.three_grids(), G.frame([G.grid(1, west, village=G.VILLAGE_2)])], ignore_index=True)
    report = validate_grids(grids, villages)
    assert kinds(report) == ["overlap", "outside_parent"]
    assert report.problems[0].codes == [G3, G.code(G.VILLAGE_2, 1)]
    assert [p.area_m2 for p in report.problems] == pytest.approx([2000.0, 2000.0], abs=1.0)


def test_slivers_are_warnings():
    thin = G.box(150, 20, 151.5, 180)  # 1.5 m × 160 m: 240 m², mean width 1.49 m
    speck = G.box(120, 190, 125, 195)  # 25 m²
    holed = G.box(100, 0, 200, 200).difference(thin).difference(speck)
    third = shapely.MultiPolygon([G.THREE[2], thin, speck])
    report = validate_grids(G.three_grids([G.THREE[0], holed, third]), G.villages())
    assert kinds(report) == ["sliver", "sliver"] and report.ok
    assert sorted(p.area_m2 for p in report.problems) == pytest.approx([25.0, 240.0], abs=0.1)
    assert report.summary()["warnings"] == 2 and report.summary()["errors"] == 0


def test_without_villages_holes_are_gaps():
    holed = G.box(100, 0, 200, 200).difference(G.box(140, 90, 160, 110))
    report = validate_grids(G.three_grids([G.THREE[0], holed, G.THREE[2]]))
    assert kinds(report) == ["gap"]
    assert report.problems[0].codes == [V] and report.problems[0].area_m2 == pytest.approx(400.0, abs=0.5)
    assert report.summary()["checked"] == {"grids": 3}


def test_geojson_and_text_output():
    tab = shapely.union_all([G.box(100, 0, 200, 200), G.box(90, 0, 100, 20)])
    grids = G.three_grids([G.THREE[0], tab, G.box(200, 0, 300, 190)])
    grids.loc[0, "code"] = "37078310520100"
    report = validate_grids(grids, G.villages())
    assert kinds(report) == ["bad_code", "overlap", "gap"]
    collection = json.loads(json.dumps(report.to_geojson(), ensure_ascii=False))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 3
    first = collection["features"][1]
    assert first["geometry"]["type"] == "Polygon"
    assert set(first["properties"]) >= {"kind", "codes", "area_m2", "message"}
    assert first["properties"]["kind"] == "overlap"
    text = report.to_text()
    assert text.startswith("FAILED: checked 3 grids, 1 villages; found 1 bad_code, 1 overlap, 1 gap")
    assert len(text.splitlines()) == 4 and "东关村" in text


def test_problem_kinds_are_checked():
    with pytest.raises(ValueError, match="unknown problem kind"):
        Problem("overlapping", [], None, "")


def test_synthetic_city_of_1369_grids_is_clean_and_fast():
    grids, villages = G.synthetic_city(n=37, vertices=100, n_villages=3)
    assert len(grids) == 1369 and shapely.get_num_coordinates(grids.geometry.iloc[0]) == 101
    start = time.perf_counter()
    report = validate_grids(grids, villages)
    elapsed = time.perf_counter() - start
    assert report.ok and report.problems == []
    assert elapsed < 5.0, f"validation of 1,369 grids took {elapsed:.2f} s"


def test_synthetic_city_finds_one_planted_overlap():
    grids, villages = G.synthetic_city(n=12, vertices=100, n_villages=2)
    row = 40
    grids.loc[row, "geometry"] = grids.geometry.iloc[row].buffer(0.0001, join_style="mitre")  # ~9-11 m wider
    report = validate_grids(grids, villages)
    overlaps = only(report, "overlap")
    assert len(overlaps) == 8 and all(grids.loc[row, "code"] in p.codes for p in overlaps)


# ----------------------------------------------------------------------------- areas

def test_clean_hierarchy_passes():
    report = validate_areas(G.areas())
    assert report.ok and report.problems == []
    assert report.summary()["checked"] == {"districts": 1, "towns": 1, "villages": 2}


@pytest.mark.parametrize("village2, kind, codes, area", [
    (G.box(290, 0, 600, 200), "overlap", [G.VILLAGE, G.VILLAGE_2], 2000.0),
    (G.box(310, 0, 600, 200), "gap", [G.TOWN], 2000.0),
    (G.box(300, 0, 610, 200), "outside_parent", [G.VILLAGE_2, G.TOWN], 2000.0),
])
def test_hierarchy_overlap_gap_outside(village2, kind, codes, area):
    areas = G.areas()
    areas.loc[3, "geometry"] = G.lonlat(village2)
    report = validate_areas(areas)
    assert kinds(report) == [kind]
    assert report.problems[0].codes == codes
    assert report.problems[0].area_m2 == pytest.approx(area, abs=1.0)


def test_hierarchy_codes_and_parents():
    areas = G.areas()
    areas.loc[3, "code"] = "370783106202"  # names town 106, while its parent_code says town 105
    areas.loc[2, "parent_code"] = "370783107000"  # a town not in the set
    report = validate_areas(areas)
    assert kinds(report) == ["bad_code", "bad_code", "missing_parent", "gap"]
    assert "parent" in report.problems[0].message and "西关村" in report.problems[1].message
    assert report.problems[2].codes == [G.VILLAGE, "370783107000"]
    # the town lost village 1 to the missing town, so its western half is uncovered
    assert report.problems[3].codes == [G.TOWN] and report.problems[3].area_m2 == pytest.approx(60000.0, abs=1)
