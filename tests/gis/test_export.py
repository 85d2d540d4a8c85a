"""Exports opened by independent readers: GDAL (pyogrio), pyshp for the raw DBF bytes, csv, json."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapefile
import shapely
from pyproj import CRS
from shapely.geometry import LineString, Point

from gis import export as X
from gis.coords import from_wgs84, wgs84_to_gcj02
from gis.errors import InvalidGeometry, InvalidInput, UnknownCRS
from gis.export_crs import file_stem, output_crs
from gis.export_dbf import dbf_field_names
from gis.export_shp import MAX_PART_BYTES
from gis.export_source import Source
from gis.readers import read_features
from gis.registry import import_areas, import_grids, load_grids
from layers import catalog
from scripts.demo_load import read_demo
from tests import registry_city as city

TOWN = "370783001000"


def grids_frame() -> gpd.GeoDataFrame:
    frame = city.grids()
    frame["village_code"] = frame["code"].str[:12]
    frame["village_name"] = ["东关社区", "东关社区", "西关社区"]
    frame["valid_from"] = pd.Timestamp("2026-01-01T00:30:00Z")  # 08:30 in Shanghai
    return frame


def unzip(path: Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def dbf_reader(archive: zipfile.ZipFile, stem: str, encoding: str) -> shapefile.Reader:
    return shapefile.Reader(shp=io.BytesIO(archive.read(f"{stem}.shp")),
                            shx=io.BytesIO(archive.read(f"{stem}.shx")),
                            dbf=io.BytesIO(archive.read(f"{stem}.dbf")), encoding=encoding)


def raw_field_names(dbf: bytes) -> list[bytes]:
    """Field names straight from the DBF header: 32-byte descriptors after the 32-byte header."""
    names, pos = [], 32
    while dbf[pos] != 0x0D:
        names.append(dbf[pos: pos + 11].split(b"\x00")[0])
        pos += 32
    return names


# ----------------------------------------------------------------------------- field names


def test_field_names_fit_ten_bytes_in_each_encoding_without_collisions():
    columns = ["code", "village_code", "village_name", "网格名称", "网格编码长名", "网格编码长名称", "CODE"]
    utf8 = dbf_field_names(columns, "utf-8")
    gbk = dbf_field_names(columns, "gbk")
    assert utf8 == {"code": "code", "village_code": "village_co", "village_name": "village_na",
                    "网格名称": "网格名", "网格编码长名": "网格编", "网格编码长名称": "网格_1",
                    "CODE": "CODE_1"}
    assert gbk == {"code": "code", "village_code": "village_co", "village_name": "village_na",
                   "网格名称": "网格名称", "网格编码长名": "网格编码长", "网格编码长名称": "网格编码_1",
                   "CODE": "CODE_1"}
    for mapping, codec in ((utf8, "utf-8"), (gbk, "gbk")):
        assert all(len(short.encode(codec)) <= 10 for short in mapping.values())
        assert len({s.upper() for s in mapping.values()}) == len(columns)


def test_field_names_are_deterministic_and_refuse_what_gbk_cannot_hold():
    assert dbf_field_names(["a" * 12, "a" * 11]) == dbf_field_names(["a" * 12, "a" * 11])
    with pytest.raises(InvalidInput, match="cannot be written in GBK"):
        dbf_field_names(["名称😀"], "gbk")


# ------------------------------------------------------------------------------ shapefile


@pytest.mark.parametrize("encoding,cpg,ldid", [("utf-8", b"UTF-8", 0x00), ("gbk", b"936", 0x4D)])
def test_shapefile_zip_chinese_attributes_in_both_encodings(tmp_path, encoding, cpg, ldid):
    out = tmp_path / "grids.zip"
    source = Source("grids", grids_frame(), labels={"village_code": "村社区编码"}, key="code")
    summary = X.export(source, "shp", out, encoding=encoding)
    assert summary.rows == {"grids": 3}
    archive = unzip(out)
    assert sorted(archive.namelist()) == ["fields.csv", "grids.cpg", "grids.dbf", "grids.prj",
                                          "grids.shp", "grids.shx"]
    assert archive.read("grids.cpg") == cpg
    dbf = archive.read("grids.dbf")
    assert dbf[29] == ldid
    assert raw_field_names(dbf) == [n.encode(encoding) for n in
                                    ["code", "name", "households", "population", "village_co",
                                     "village_na", "valid_from", "valid_fr_1"]]
    assert "东关社区第1网格".encode(encoding) in dbf
    reader = dbf_reader(archive, "grids", encoding)
    record = reader.record(0)
    assert record["name"] == "东关社区第1网格" and record["village_na"] == "东关社区"
    assert record["valid_from"] == pd.Timestamp("2026-01-01").date()  # a DBF date (D)
    assert record["valid_fr_1"] == "2026-01-01T08:30:00+08:00"
    assert [f.field_type for f in reader.fields if f.name == "valid_from"] == ["D"]
    rows = list(csv.DictReader(io.StringIO(archive.read("fields.csv").decode("utf-8-sig"))))
    assert {r["short_name"]: r["full_name"] for r in rows}["village_co"] == "village_code"
    assert {r["short_name"]: r["label"] for r in rows}["village_co"] == "村社区编码"
    frame = pyogrio.read_dataframe(f"/vsizip/{out}/grids.shp")  # GDAL, guided by the .cpg
    assert list(frame["name"]) == list(grids_frame()["name"])


@pytest.mark.parametrize("crs,epsg", [("EPSG:4326", 4326), ("EPSG:4490", 4490), ("4528", 4528),
                                      ("EPSG:4548", 4548)])
def test_prj_is_esri_wkt_recognised_as_the_epsg_asked(tmp_path, crs, epsg):
    out = tmp_path / "g.zip"
    X.export({"grids": grids_frame()}, "shp", out, crs=crs)
    prj = unzip(out).read("grids.prj").decode()
    assert prj == CRS.from_epsg(epsg).to_wkt(version="WKT1_ESRI")
    assert CRS.from_wkt(prj).to_epsg() == epsg
    read = pyogrio.read_dataframe(f"/vsizip/{out}/grids.shp")
    assert read.crs.to_epsg() == epsg
    first = np.asarray(grids_frame().geometry.iloc[0].exterior.coords)[0]
    x, y = from_wgs84([first[0]], [first[1]], f"EPSG:{epsg}")
    got = shapely.get_coordinates(read.geometry.iloc[0])[0]
    assert np.allclose(got, [x[0], y[0]], atol=0.001 if epsg > 4500 else 1e-9)


def test_gcj02_shifts_coordinates_and_is_labelled_wgs84(tmp_path):
    out = tmp_path / "g.zip"
    X.export({"grids": grids_frame()}, "shp", out, crs="gcj02")
    read = pyogrio.read_dataframe(f"/vsizip/{out}/grids.shp")
    assert read.crs.to_epsg() == 4326
    lon, lat = np.asarray(grids_frame().geometry.iloc[0].exterior.coords)[0]
    glon, glat = wgs84_to_gcj02([lon], [lat])
    assert np.allclose(shapely.get_coordinates(read.geometry.iloc[0])[0], [glon[0], glat[0]], atol=1e-9)
    assert file_stem("网格", "gcj02") == "网格_gcj02"


def test_mixed_layer_becomes_one_file_per_geometry_type(tmp_path):
    frame = gpd.GeoDataFrame({"id": [1, 2, 3, 4, 5]}, crs=4326, geometry=[
        Point(118.8, 36.9), None, city.grids().geometry[0], LineString([(118.8, 36.9), (118.9, 36.8)]),
        Point(118.7, 36.8)])
    out = tmp_path / "m.zip"
    X.export(Source("mixed", frame, key="id"), "shp", out)
    names = sorted(unzip(out).namelist())
    assert [n for n in names if n.endswith(".shp")] == ["mixed_line.shp", "mixed_point.shp", "mixed_polygon.shp"]
    points = dbf_reader(unzip(out), "mixed_point", "utf-8")
    assert [r["id"] for r in points.records()] == [1, 5, 2]  # the geometry-less row: a null shape here
    assert points.shapeType == shapefile.POINT and points.shape(2).shapeType == shapefile.NULL
    assert dbf_reader(unzip(out), "mixed_polygon", "utf-8").shapeType == shapefile.POLYGON
    with pytest.raises(InvalidGeometry, match="GeometryCollection"):
        X.export({"bad": gpd.GeoDataFrame(geometry=[shapely.GeometryCollection([Point(1, 1)])], crs=4326)},
                 "shp", tmp_path / "bad.zip")


def test_long_text_is_cut_at_a_character_and_recorded(tmp_path):
    frame = grids_frame()
    long_text = "很长的说明" * 30  # 150 characters: 450 bytes in UTF-8, 300 in GBK
    frame["note"] = [long_text, None, "短"]
    for encoding, size in (("utf-8", 450), ("gbk", 300)):
        out = tmp_path / f"{encoding}.zip"
        summary = X.export(Source("grids", frame, key="code"), "shp", out, encoding=encoding)
        assert summary.truncated == 1
        archive = unzip(out)
        note = dbf_reader(archive, "grids", encoding).record(0)["note"]
        assert long_text.startswith(note) and len(note.encode(encoding)) <= 254
        assert len(note) == (84 if encoding == "utf-8" else 127)
        (row,) = csv.DictReader(io.StringIO(archive.read("truncated.csv").decode("utf-8-sig")))
        assert row == {"layer": "grids", "file": "grids.shp", "fid": "0", "key": "370783001001001",
                       "field": "note", "bytes": str(size), "full_value": long_text}


def test_gbk_refuses_a_character_it_cannot_hold_naming_the_record(tmp_path):
    frame = grids_frame()
    frame.loc[1, "name"] = "东关😀网格"
    with pytest.raises(InvalidInput) as caught:
        X.export(Source("grids", frame, key="code"), "shp", tmp_path / "g.zip", encoding="gbk")
    message = caught.value.message
    assert "record 2 (FID 1, code 370783001001002)" in message and "'name'" in message
    assert "'😀'" in message and "encoding=utf-8" in message
    X.export(Source("grids", frame, key="code"), "shp", tmp_path / "u.zip")  # UTF-8 holds it


def test_two_gigabyte_limit_is_checked_per_chunk(tmp_path):
    chunks = [grids_frame(), grids_frame(), grids_frame()]
    with pytest.raises(InvalidInput, match=r"passed the shapefile limit of 1,500 bytes after 3 records.*format=gpkg"):
        X.export({"grids": iter(chunks)}, "shp", tmp_path / "g.zip", max_part_bytes=1_500)
    assert MAX_PART_BYTES == 2**31 - 1


def test_chunks_are_appended_and_empty_selection_is_a_valid_empty_file(tmp_path):
    out = tmp_path / "g.zip"
    summary = X.export(Source("grids", iter([grids_frame(), grids_frame().iloc[:1]])), "shp", out)
    assert summary.rows == {"grids": 4}
    assert len(pyogrio.read_dataframe(f"/vsizip/{out}/grids.shp")) == 4
    empty = grids_frame().iloc[:0]
    X.export(Source("grids", empty, geometry_type="MultiPolygon"), "shp", tmp_path / "e.zip")
    reader = dbf_reader(unzip(tmp_path / "e.zip"), "grids", "utf-8")
    assert len(reader) == 0 and reader.shapeType == shapefile.POLYGON


# ---------------------------------------------------------------------- other formats


def test_geopackage_holds_several_layers_with_chinese_names(tmp_path):
    out = tmp_path / "sel.gpkg"
    grids = grids_frame().rename(columns={"code": "网格编码", "name": "网格名称"})
    points = gpd.GeoDataFrame({"编号": [7], "描述": ["井盖缺失"]}, geometry=[Point(118.8, 36.9)], crs=4326)
    X.export([Source("网格", grids), Source("事件工单", points)], "gpkg", out, crs="EPSG:4490")
    assert sorted(map(tuple, pyogrio.list_layers(out))) == [("事件工单", "Point"), ("网格", "Polygon")]
    read = pyogrio.read_dataframe(out, layer="网格")
    assert list(read["网格名称"]) == list(grids["网格名称"]) and read.crs.to_epsg() == 4490
    assert pyogrio.read_dataframe(out, layer="事件工单")["描述"].iloc[0] == "井盖缺失"


def test_geojson_is_rfc7946(tmp_path):
    out = tmp_path / "g.geojson"
    clockwise = grids_frame()
    clockwise["geometry"] = shapely.orient_polygons(clockwise.geometry.values, exterior_cw=True)
    X.export(Source("grids", iter([clockwise.iloc[:2], clockwise.iloc[2:]]), key="code"), "geojson", out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert "crs" not in data and len(data["features"]) == 3
    feature = data["features"][0]
    assert feature["id"] == "370783001001001" and feature["properties"]["name"] == "东关社区第1网格"
    assert feature["properties"]["valid_from"] == "2026-01-01T08:30:00+08:00"
    ring = shapely.LinearRing(feature["geometry"]["coordinates"][0])
    assert ring.is_ccw  # right-hand rule
    assert all(len(str(c).split(".")[1]) <= 7 for c in feature["geometry"]["coordinates"][0][0])
    with pytest.raises(InvalidInput, match="RFC 7946"):
        X.export({"grids": clockwise}, "geojson", tmp_path / "x.geojson", crs="EPSG:4528")


def test_csv_has_a_bom_and_wkt_or_lonlat(tmp_path):
    out = tmp_path / "g.csv"
    X.export({"grids": grids_frame()}, "csv", out)
    raw = out.read_bytes()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0]["name"] == "东关社区第1网格" and rows[0]["valid_from"] == "2026-01-01 08:30:00"
    assert shapely.from_wkt(rows[0]["wkt"]).equals_exact(grids_frame().geometry.iloc[0], 1e-7)
    X.export({"grids": grids_frame()}, "csv", out, geometry="lonlat", crs="EPSG:4528")
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    assert set(rows[0]) >= {"x", "y"}
    assert 40.3e6 < float(rows[0]["x"]) < 40.5e6 and 4.0e6 < float(rows[0]["y"]) < 4.2e6


def test_bad_format_crs_and_encoding(tmp_path):
    with pytest.raises(InvalidInput, match="known formats: shp, gpkg, geojson, csv"):
        X.export({"grids": grids_frame()}, "kml", tmp_path / "x")
    with pytest.raises(UnknownCRS, match="EPSG:4513-4554"):
        output_crs("EPSG:3857")
    with pytest.raises(InvalidInput, match="known: utf-8, gbk"):
        X.export({"grids": grids_frame()}, "shp", tmp_path / "x.zip", encoding="latin-9")
    with pytest.raises(InvalidInput, match="shapefiles only"):
        X.export({"grids": grids_frame()}, "csv", tmp_path / "x.csv", encoding="gbk")
    with pytest.raises(InvalidInput, match="one layer"):
        X.export({"a": grids_frame(), "b": grids_frame()}, "geojson", tmp_path / "x.geojson")


# ------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("fmt,crs", [("shp", "EPSG:4528"), ("gpkg", "EPSG:4490")])
def test_round_trip_demo_grids_into_a_fresh_registry(tmp_path, demo_session, session, fmt, crs):
    sources = catalog.export_sources(demo_session, ["grids"], area=TOWN)
    out = tmp_path / f"grids{X.SUFFIXES[fmt]}"
    X.export(sources, fmt, out, crs=crs)
    areas, _ = read_demo()
    import_areas(session, areas, who="test", why="round trip")
    read = read_features(out)
    assert read.source_crs == crs
    import_grids(session, read.frame, who="test", why="round trip")
    before = load_grids(demo_session, town=TOWN).set_index("code").sort_index()
    after = load_grids(session).set_index("code").sort_index()
    assert list(after.index) == list(before.index) and len(after) > 50
    assert list(after["name"]) == list(before["name"])
    assert list(after["households"]) == list(before["households"])
    b = before.geometry.to_crs(crs if crs != "EPSG:4490" else "EPSG:4528")
    a = after.geometry.to_crs(b.crs)
    assert max(shapely.hausdorff_distance(a.values, b.values)) < 0.01


def test_geopackage_from_chunks_some_empty(tmp_path):
    out = tmp_path / "c.gpkg"
    empty = grids_frame().iloc[:0]
    summary = X.export(Source("grids", iter([empty, grids_frame(), empty, grids_frame().iloc[:1]]),
                                geometry_type="MultiPolygon"), "gpkg", out)
    assert summary.rows == {"grids": 4}
    assert len(pyogrio.read_dataframe(out, layer="grids")) == 4
    X.export(Source("grids", iter([empty]), geometry_type="MultiPolygon"), "gpkg", out)
    assert pyogrio.read_info(out, layer="grids")["features"] == 0
    assert pyogrio.read_info(out, layer="grids")["geometry_type"] == "MultiPolygon"
