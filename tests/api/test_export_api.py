"""GET /export/{layer}: files opened by independent readers, filters, names, and bad input."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pyogrio
import pytest
import shapefile
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import text

from gis import registry
from layers.incidents.models import Ticket

TOWN = "370783001000"
UTC8 = timezone(timedelta(hours=8))


def add_tickets(session, *, description: str = "井盖缺失") -> list[Ticket]:
    """Three tickets in TOWN's first grid: two in November 2026, one in December."""
    grid = registry.load_grids(session, codes=["370783001001001"])
    point = grid.geometry.iloc[0].representative_point()
    times = [datetime(2026, 11, 3, 9, tzinfo=UTC8), datetime(2026, 11, 20, 15, tzinfo=UTC8),
             datetime(2026, 12, 2, 8, tzinfo=UTC8)]
    tickets = [Ticket(channel="hotline", category="0102", severity="general", description=description,
                      reporter_name="张三", reporter_phone="13800000000",
                      geom=from_shape(Point(point.x + i * 1e-5, point.y), srid=4326),
                      grid_code="370783001001001", village_code="370783001001", town_code=TOWN,
                      district_code="370783000000", department="sanitation", needs_town=True,
                      created_at=at) for i, at in enumerate(times)]
    session.add_all(tickets)
    session.flush()
    return tickets


def in_force_since_january(session) -> None:
    """Selections ending on 2026-12-01 take the grids in force then: the demo city's, as if registered
    at the start of 2026 rather than when this test run loaded it (rolled back with the test)."""
    session.execute(text("UPDATE grids SET valid_from = '2026-01-01T00:00+08:00' WHERE valid_to IS NULL"))


def test_grids_as_gbk_shapefile_with_chinese_filename(demo_client, demo_session):
    res = demo_client.get("/export/grids", params={"format": "shp", "area": TOWN, "encoding": "gbk",
                                                   "crs": "EPSG:4528"})
    assert res.status_code == 200 and res.headers["content-type"] == "application/zip"
    town_name = registry.load_areas(demo_session, codes=[TOWN])["name"].iloc[0]
    expected = registry.load_grids(demo_session, town=TOWN)
    assert res.headers["X-Feature-Count"] == str(len(expected))
    disposition = res.headers["content-disposition"]
    assert f'filename="grids_{TOWN}_4528.zip"' in disposition
    assert f"filename*=UTF-8''{quote(f'网格_{town_name}_4528.zip', safe='')}" in disposition
    archive = zipfile.ZipFile(io.BytesIO(res.content))
    assert archive.read("grids.cpg") == b"936"
    reader = shapefile.Reader(shp=io.BytesIO(archive.read("grids.shp")), dbf=io.BytesIO(archive.read("grids.dbf")),
                              shx=io.BytesIO(archive.read("grids.shx")), encoding="gbk")
    records = {r["code"]: r for r in reader.records()}
    assert set(records) == set(expected["code"])
    first = expected.iloc[0]
    assert records[first["code"]]["name"] == first["name"]
    assert records[first["code"]]["town_name"] == town_name


def test_selection_of_grids_and_tickets_in_one_geopackage_with_chinese_names(demo_client, demo_session, tmp_path):
    add_tickets(demo_session)
    in_force_since_january(demo_session)
    res = demo_client.get("/export/grids,tickets", params={
        "format": "gpkg", "area": "370783001001", "from": "2026-11-01", "to": "2026-12-01", "names": "zh"})
    assert res.status_code == 200, res.text
    path = tmp_path / "sel.gpkg"
    path.write_bytes(res.content)
    assert sorted(row[0] for row in pyogrio.list_layers(path)) == ["事件工单", "网格"]
    tickets = pyogrio.read_dataframe(path, layer="事件工单")
    assert len(tickets) == 2  # the December ticket is outside [from, to)
    assert set(tickets["事件名称"]) == {"暴露垃圾"} and set(tickets["事件描述"]) == {"井盖缺失"}
    assert "reporter_phone" not in tickets and "13800000000" not in res.content.decode("latin-1")
    grids = pyogrio.read_dataframe(path, layer="网格")
    assert set(grids["村社区编码"]) == {"370783001001"}
    assert res.headers["X-Feature-Count"] == str(len(grids) + 2)


def test_tickets_as_csv_for_excel_and_geojson(demo_client, demo_session):
    made = add_tickets(demo_session)
    res = demo_client.get("/export/tickets", params={"format": "csv", "geometry": "lonlat",
                                                     "from": "2026-11-01T00:00:00+08:00"})
    assert res.status_code == 200 and res.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(res.content.decode("utf-8-sig"))))
    assert [int(r["id"]) for r in rows] == [t.id for t in made]
    assert rows[0]["created_at"] == "2026-11-03 09:00:00" and rows[0]["category_name"] == "暴露垃圾"
    where = to_shape(made[0].geom)
    assert (float(rows[0]["lon"]), float(rows[0]["lat"])) == pytest.approx((where.x, where.y), abs=1e-7)
    res = demo_client.get("/export/tickets", params={"format": "geojson", "to": "2026-12-01"})
    data = json.loads(res.content)
    assert [f["id"] for f in data["features"]] == [t.id for t in made[:2]]
    assert data["features"][0]["properties"]["created_at"] == "2026-11-03T09:00:00+08:00"


def test_empty_selection_is_a_valid_empty_file(demo_client, demo_session):
    res = demo_client.get("/export/tickets", params={"format": "shp", "from": "2001-01-01", "to": "2001-02-01"})
    assert res.status_code == 200 and res.headers["X-Feature-Count"] == "0"
    archive = zipfile.ZipFile(io.BytesIO(res.content))
    reader = shapefile.Reader(shp=io.BytesIO(archive.read("tickets.shp")), dbf=io.BytesIO(archive.read("tickets.dbf")),
                              shx=io.BytesIO(archive.read("tickets.shx")))
    assert len(reader) == 0 and reader.shapeType == shapefile.POINT
    assert "id" in [f.name for f in reader.fields]


def test_gbk_cannot_hold_an_emoji_names_the_ticket(demo_client, demo_session):
    made = add_tickets(demo_session, description="路灯不亮😡")
    res = demo_client.get("/export/tickets", params={"format": "shp", "encoding": "gbk"})
    assert res.status_code == 400
    detail = res.json()["detail"]
    assert f"id {made[0].id}" in detail and "'description'" in detail and "encoding=utf-8" in detail
    assert demo_client.get("/export/tickets", params={"format": "shp"}).status_code == 200


@pytest.mark.parametrize("path,params,status,needle", [
    ("/export/roads", {"format": "shp"}, 404, "known layers: alarms, areas, detections, grids"),
    ("/export/grids", {"format": "kml"}, 400, "known formats: shp, gpkg, geojson, csv"),
    ("/export/grids", {"area": "370783199000"}, 404, "no area with code 370783199000"),
    ("/export/grids", {"area": "3707"}, 400, "12 digits"),
    ("/export/tickets", {"from": "2026-12-01", "to": "2026-11-01"}, 400, "reversed"),
    ("/export/grids", {"crs": "EPSG:3857"}, 400, "EPSG:4513-4554"),
    ("/export/grids", {"format": "geojson", "crs": "EPSG:4528"}, 400, "RFC 7946"),
    ("/export/grids", {"encoding": "big5"}, 400, "utf-8, gbk"),
    ("/export/grids,towns", {"format": "csv"}, 400, "one layer"),
])
def test_bad_input(demo_client, path, params, status, needle):
    res = demo_client.get(path, params=params)
    assert res.status_code == status, res.text
    assert needle in res.json()["detail"]


def test_catalog_listing(client):
    body = client.get("/export").json()
    names = [layer["name"] for layer in body["layers"]]
    assert {"grids", "areas", "towns", "villages", "tickets"} <= set(names)
    assert body["formats"] == ["shp", "gpkg", "geojson", "csv"]
