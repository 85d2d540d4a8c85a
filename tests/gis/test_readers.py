"""gis.readers against boundary files written in each test: GBK shapefiles, zips, GeoPackages, GeoJSON."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, Polygon

from gis.coords import from_wgs84, gcj02_to_wgs84
from gis.errors import InvalidGeometry, InvalidInput, UnknownCRS
from gis.read_zip import _member_name
from gis.readers import read_features

# Two ~900 m grids in Shouguang (寿光), as WGS84 lon/lat corners; EPSG:4528 is CGCS2000 GK zone 40 (120°E).
LON0, LAT0, STEP = 118.78, 36.88, 0.01
CODES = ["370783001001001", "370783001001002"]
NAMES = ["圣城街道第一网格", "文家街道第二网格"]
FIELDS = {"code": "网格编码", "name": "网格名称"}


def corners(i: int) -> tuple[np.ndarray, np.ndarray]:
    lon = LON0 + i * STEP + np.array([0.0, STEP, STEP, 0.0])
    lat = LAT0 + np.array([0.0, 0.0, STEP, STEP])
    return lon, lat


def grid_frame(
    crs: str = "EPSG:4528", columns: tuple[str, str] = ("网格编码", "网格名称")
) -> gpd.GeoDataFrame:
    polygons = []
    for i in range(2):
        x, y = from_wgs84(*corners(i), crs)
        polygons.append(Polygon(zip(x, y, strict=True)))
    data = {columns[0]: CODES, columns[1]: NAMES}
    return gpd.GeoDataFrame(
        data, geometry=polygons, crs="EPSG:4326" if crs in ("gcj02", "bd09") else crs
    )


def write_shp(
    folder: Path, stem: str = "grids", *, encoding: str = "GBK", cpg: bool = False, **kw
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.shp"
    grid_frame(**kw).to_file(path, engine="pyogrio", encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink()
    return path


def zip_files(target: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return target


def shapefile_parts(shp: Path, prefix: str = "") -> dict[str, bytes]:
    return {prefix + p.name: p.read_bytes() for p in shp.parent.glob(shp.stem + ".*")}


def max_error_m(frame: gpd.GeoDataFrame) -> float:
    """Largest distance, in metres, between the read vertices and the known lon/lat corners."""
    worst = 0.0
    for i, geom in enumerate(frame.geometry):
        xy = shapely.get_coordinates(geom)[:4]
        lon, lat = corners(i)
        # the ring may start anywhere: compare each known corner with its nearest read vertex
        d = np.hypot(
            (xy[:, 0][None, :] - lon[:, None]) * 111_320 * np.cos(np.radians(LAT0)),
            (xy[:, 1][None, :] - lat[:, None]) * 110_574,
        )
        worst = max(worst, float(d.min(axis=1).max()))
    return worst


def assert_grids(result) -> None:
    frame = result.frame
    assert list(frame["code"]) == CODES
    assert list(frame["name"]) == NAMES
    assert list(frame.geometry.geom_type) == ["MultiPolygon", "MultiPolygon"]
    assert frame.crs.to_epsg() == 4326
    assert result.n_features == 2
    assert max_error_m(frame) < 0.5


# ------------------------------------------------------------------------------------ encodings


def test_gbk_shapefile_without_cpg_in_gauss_kruger_zone_40(tmp_path):
    shp = write_shp(tmp_path)
    dbf = shp.with_suffix(".dbf").read_bytes()
    assert not shp.with_suffix(".cpg").exists()
    assert NAMES[0].encode("gbk") in dbf and "网格编码".encode("gbk") in dbf
    assert NAMES[0].encode("utf-8") not in dbf

    result = read_features(shp, fields=FIELDS)

    assert_grids(result)
    assert result.detected_encoding == "gb18030"
    assert result.source_crs == "EPSG:4528"
    assert result.driver == "ESRI Shapefile"
    assert any("no .cpg" in w for w in result.warnings)


def test_gbk_shapefile_with_cpg(tmp_path):
    result = read_features(write_shp(tmp_path, cpg=True), fields=FIELDS)
    assert_grids(result)
    assert result.detected_encoding == "gbk"


def test_utf8_shapefile_without_cpg(tmp_path):
    # UTF-8 Chinese names longer than 3 characters do not fit the DBF's 10 bytes: use short ones
    shp = write_shp(tmp_path, encoding="UTF-8", columns=("编码", "名称"))
    assert NAMES[0].encode("utf-8") in shp.with_suffix(".dbf").read_bytes()
    result = read_features(shp, fields={"code": "编码", "name": "名称"})
    assert_grids(result)
    assert result.detected_encoding == "utf-8"


@pytest.mark.filterwarnings("ignore:Could not decode error message")
def test_utf8_field_names_cut_mid_character_are_read(tmp_path):
    # GDAL cuts 网格编码 (12 bytes in UTF-8) to 10 bytes, leaving half a character
    shp = write_shp(tmp_path, encoding="UTF-8", cpg=True)
    result = read_features(shp, fields={"code": "网格编", "name": "网格名"})
    assert_grids(result)
    assert any("cut" in w for w in result.warnings)


def test_explicit_encoding_wins_and_is_checked(tmp_path):
    shp = write_shp(tmp_path)
    assert read_features(shp, fields=FIELDS, encoding="GBK").detected_encoding == "gbk"
    with pytest.raises(InvalidInput, match="do not decode as utf-8"):
        read_features(shp, fields=FIELDS, encoding="utf-8")


def test_undecodable_text_is_refused_not_read_as_mojibake(tmp_path):
    frame = grid_frame(columns=("code", "name"))
    frame["name"] = ["ÿÿ", "þþ"]  # 0xFF/0xFE bytes in Latin-1: neither UTF-8 nor GB18030
    frame.to_file(tmp_path / "latin.shp", engine="pyogrio", encoding="latin1")
    (tmp_path / "latin.cpg").unlink()
    with pytest.raises(InvalidInput, match="--encoding") as err:
        read_features(tmp_path / "latin.shp")
    assert "record 1" in err.value.message
    assert list(read_features(tmp_path / "latin.shp", encoding="latin1").frame["name"]) == [
        "ÿÿ",
        "þþ",
    ]


def test_cpg_that_lies_falls_back_to_detection(tmp_path):
    shp = write_shp(tmp_path)
    shp.with_suffix(".cpg").write_text("UTF-8")
    result = read_features(shp, fields=FIELDS)
    assert_grids(result)
    assert result.detected_encoding == "gb18030"
    assert any(".cpg says 'UTF-8'" in w for w in result.warnings)


# ----------------------------------------------------------------------------------------- zips


def test_zip_with_the_shapefile(tmp_path):
    shp = write_shp(tmp_path / "src")
    archive = zip_files(tmp_path / "grids.zip", shapefile_parts(shp, prefix="寿光网格/"))
    result = read_features(archive, fields=FIELDS)
    assert_grids(result)
    assert result.detected_encoding == "gb18030"


def test_zip_with_path_traversal_is_refused(tmp_path):
    shp = write_shp(tmp_path / "src")
    for bad in ("../evil.shp", "/etc/evil.shp", "a/../../evil.shp", "C:/evil.shp"):
        files = shapefile_parts(shp)
        files[bad] = files.pop("grids.shp")
        with pytest.raises(InvalidInput, match="outside the folder"):
            read_features(zip_files(tmp_path / "evil.zip", files))
    assert not (tmp_path / "evil.shp").exists()


def test_zip_bomb_is_refused(tmp_path):
    shp = write_shp(tmp_path / "src")
    files = shapefile_parts(shp) | {"padding.bin": bytes(20 * 1024 * 1024)}
    archive = zip_files(tmp_path / "bomb.zip", files)
    with pytest.raises(InvalidInput, match="zip bomb"):
        read_features(archive)
    small = zip_files(tmp_path / "ok.zip", shapefile_parts(shp))
    with pytest.raises(InvalidInput, match="above the limit"):
        read_features(small, max_bytes=1000)


def test_zip_with_two_shapefiles_needs_a_layer(tmp_path):
    a = write_shp(tmp_path / "src", "grids")
    b = write_shp(tmp_path / "src", "other")
    archive = zip_files(tmp_path / "two.zip", shapefile_parts(a) | shapefile_parts(b))
    with pytest.raises(InvalidInput, match="several layers: .*grids.shp"):
        read_features(archive)
    assert_grids(read_features(archive, layer="grids", fields=FIELDS))


def test_gbk_member_names_from_chinese_windows_zips():
    info = zipfile.ZipInfo("placeholder")
    info.filename = "寿光网格/网格.shp".encode("gbk").decode(
        "cp437"
    )  # how Python reads such a name
    info.flag_bits = 0
    assert _member_name(info) == "寿光网格/网格.shp"


def test_not_a_zip_is_refused(tmp_path):
    (tmp_path / "x.zip").write_bytes(b"PK but not really")
    with pytest.raises(InvalidInput, match="not a readable zip"):
        read_features(tmp_path / "x.zip")


# ------------------------------------------------------------------------------------------ CRS


def test_missing_prj_is_refused_unless_crs_given(tmp_path):
    shp = write_shp(tmp_path)
    shp.with_suffix(".prj").unlink()
    with pytest.raises(InvalidInput, match="no coordinate reference system"):
        read_features(shp, fields=FIELDS)
    result = read_features(shp, fields=FIELDS, crs="EPSG:4528")
    assert_grids(result)
    assert result.source_crs == "EPSG:4528"


@pytest.mark.parametrize("crs", ["EPSG:4528", "EPSG:4549", "EPSG:4513", "EPSG:4490", "EPSG:32650"])
def test_epsg_inputs_are_reprojected(tmp_path, crs):
    # 4549: CGCS2000 GK CM 120E (no zone prefix); 4513: zone 25, far west of Shouguang; 32650: UTM 50N
    result = read_features(write_shp(tmp_path, crs=crs), fields=FIELDS)
    assert_grids(result)
    assert result.source_crs == crs


def test_unknown_epsg_is_refused(tmp_path):
    shp = write_shp(tmp_path)
    shp.with_suffix(".prj").unlink()
    with pytest.raises(UnknownCRS):
        read_features(shp, crs="EPSG:999999")


def test_crs_disagreeing_with_prj_is_refused_agreeing_is_fine(tmp_path):
    shp = write_shp(tmp_path)
    with pytest.raises(InvalidInput, match="ambiguous"):
        read_features(shp, crs="EPSG:4527")
    assert_grids(read_features(shp, crs="4528", fields=FIELDS))


def test_gauss_kruger_read_as_lonlat_is_outside_china(tmp_path):
    shp = write_shp(tmp_path)
    shp.with_suffix(".prj").unlink()
    with pytest.raises(InvalidGeometry, match="outside China"):
        read_features(shp, crs="EPSG:4326")


def test_gcj02_geojson_is_converted(tmp_path):
    frame = grid_frame(crs="gcj02", columns=("code", "name"))  # GCJ-02 lon/lat, labelled WGS84
    frame.to_file(tmp_path / "amap.geojson", engine="pyogrio")
    result = read_features(tmp_path / "amap.geojson", crs="gcj02")

    gcj = shapely.get_coordinates(frame.geometry.values)
    expected = np.column_stack(gcj02_to_wgs84(gcj[:, 0], gcj[:, 1]))
    got = shapely.get_coordinates(result.frame.geometry.values)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    shift_m = np.hypot((gcj[:, 0] - got[:, 0]) * 89_000, (gcj[:, 1] - got[:, 1]) * 110_574)
    assert 300 < shift_m.min() and shift_m.max() < 800  # GCJ-02 moves Shouguang ~500 m
    assert result.source_crs == "gcj02"
    assert any("read as gcj02" in w for w in result.warnings)


def test_cgcs2000_lonlat_geojson(tmp_path):
    frame = grid_frame(crs="EPSG:4490", columns=("code", "name"))
    frame.to_file(tmp_path / "cgcs.gpkg", engine="pyogrio")
    result = read_features(tmp_path / "cgcs.gpkg")
    assert_grids(result)
    assert result.source_crs == "EPSG:4490"


# ----------------------------------------------------------------------------- errors and checks


def test_point_layer_is_refused(tmp_path):
    points = gpd.GeoDataFrame({"code": CODES}, geometry=[Point(118.78, 36.88)] * 2, crs=4326)
    points.to_file(tmp_path / "pts.geojson", engine="pyogrio")
    with pytest.raises(InvalidGeometry, match="point layer given as grids: expected polygons"):
        read_features(tmp_path / "pts.geojson")


def test_null_geometries_are_refused_with_rows(tmp_path):
    frame = grid_frame(crs="EPSG:4326", columns=("code", "name"))
    frame.loc[1, "geometry"] = None
    frame.to_file(tmp_path / "holes.gpkg", engine="pyogrio")
    with pytest.raises(InvalidGeometry, match="without geometry at rows 2$"):
        read_features(tmp_path / "holes.gpkg")


def test_empty_feature_collection_is_refused(tmp_path):
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InvalidInput, match="holds no features"):
        read_features(path)


def test_not_json_is_refused_with_position(tmp_path):
    path = tmp_path / "bad.geojson"
    path.write_text('{"type": "FeatureCollection",\n  "features": [ oops')
    with pytest.raises(InvalidInput, match="not valid JSON: line 2, column 17"):
        read_features(path)


def test_truncated_shapefile_is_refused(tmp_path):
    shp = write_shp(tmp_path)
    data = shp.read_bytes()
    shp.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="grids.shp is truncated"):
        read_features(shp)


def test_missing_dbf_is_refused(tmp_path):
    shp = write_shp(tmp_path)
    shp.with_suffix(".dbf").unlink()
    with pytest.raises(InvalidInput, match="without its .dbf"):
        read_features(shp)


def test_missing_mapped_column_lists_available(tmp_path):
    with pytest.raises(InvalidInput, match="'编号' not found; available: 网格编码, 网格名称"):
        read_features(write_shp(tmp_path), fields={"code": "编号"})


def test_geopackage_with_two_layers_needs_layer(tmp_path):
    path = tmp_path / "two.gpkg"
    grid_frame(columns=("code", "name")).to_file(path, layer="grids", engine="pyogrio")
    points = gpd.GeoDataFrame({"code": CODES}, geometry=[Point(118.78, 36.88)] * 2, crs=4326)
    points.to_file(path, layer="cameras", engine="pyogrio")
    with pytest.raises(InvalidInput, match="several layers: grids, cameras"):
        read_features(path)
    with pytest.raises(InvalidInput, match="no layer 'roads'"):
        read_features(path, layer="roads")
    result = read_features(path, layer="grids")
    assert_grids(result)
    assert result.layer == "grids"


def test_numeric_codes_become_text_with_a_warning(tmp_path):
    frame = grid_frame(crs="EPSG:4326", columns=("code", "name"))
    frame["code"] = [370783001001001, 70783001001002]  # the second lost its leading zero
    frame.to_file(tmp_path / "num.geojson", engine="pyogrio")
    result = read_features(tmp_path / "num.geojson")
    assert list(result.frame["code"]) == ["370783001001001", "70783001001002"]
    assert any("leading zeros" in w for w in result.warnings)


def test_missing_path_and_unsupported_extension(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        read_features(tmp_path / "nope.shp")
    (tmp_path / "grids.kml").write_text("<kml/>")
    with pytest.raises(InvalidInput, match="unsupported file type '.kml'"):
        read_features(tmp_path / "grids.kml")


def test_polygons_and_multipolygons_mix_into_multipolygons(tmp_path):
    frame = grid_frame(crs="EPSG:4326", columns=("code", "name"))
    frame.loc[1, "geometry"] = shapely.MultiPolygon([frame.geometry[1]])
    frame.to_file(tmp_path / "mixed.gpkg", engine="pyogrio")
    assert_grids(read_features(tmp_path / "mixed.gpkg"))
