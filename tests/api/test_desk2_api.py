"""The desk's read endpoints (departments, categories), ``sort=urgency`` across pages, and the workers'
tracks, camera detections and alarms as export layers (GeoJSON and shapefile, Chinese field names)."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import shapefile
from geoalchemy2.shape import from_shape
from shapely.geometry import Point

from gis import registry
from layers.cameras.models import Alarm, Camera, Detection
from layers.incidents.models import Ticket
from layers.workers import ingest
from layers.workers.exports import TRACK_LABELS
from layers.workers.registry import create_worker

UTC8 = timezone(timedelta(hours=8))
GRID, VILLAGE, TOWN = "370783001001001", "370783001001", "370783001000"
OTHER_TOWN = "370783002000"


def test_departments_are_named_in_chinese(client):
    res = client.get("/tickets/departments")
    assert res.status_code == 200
    by_code = {d["code"]: d for d in res.json()}
    assert by_code["sanitation"]["name"] == "环境卫生服务中心" and by_code["sanitation"]["kind"] == "department"
    assert by_code["water"]["kind"] == "utility"


def test_categories_carry_their_major_class(client):
    rows = client.get("/tickets/categories").json()
    by_code = {c["code"]: c for c in rows}
    assert by_code["0102"]["name"] == "暴露垃圾" and by_code["0102"]["major_name"] == "市容环境"
    assert by_code["0102"]["department"] == "sanitation" and by_code["0102"]["limits"]["urgent"] == 2
    assert len({c["major_code"] for c in rows}) > 3


def _ticket(session, *, card: str, state: str, due_h: float | None, created: datetime) -> Ticket:
    point = registry.load_grids(session, codes=[GRID]).geometry.iloc[0].representative_point()
    now = datetime.now(UTC8)
    due = None if due_h is None else now + timedelta(hours=due_h)
    t = Ticket(channel="hotline", category="0102", severity="general", description="排序", state=state, card=card,
               geom=from_shape(Point(point.x, point.y), srid=4326), grid_code=GRID, village_code=VILLAGE,
               town_code=TOWN, district_code="370783000000", department="sanitation", needs_town=True,
               created_at=created, dispatch_due=due if state == "received" else None,
               sign_due=due if state == "dispatched" else None,
               complete_due=due if state in ("signed", "handling") else due)
    session.add(t)
    session.flush()
    return t


def test_sort_by_urgency_spans_all_pages(demo_client, demo_session):
    base = datetime(2031, 1, 1, tzinfo=UTC8)  # after everything the demo made: since= selects only these
    ok_soon = _ticket(demo_session, card="ok", state="handling", due_h=2, created=base + timedelta(hours=6))
    ok_overdue = _ticket(demo_session, card="ok", state="received", due_h=-5, created=base + timedelta(hours=5))
    closed = _ticket(demo_session, card="ok", state="closed", due_h=None, created=base + timedelta(hours=4))
    yellow = _ticket(demo_session, card="yellow", state="dispatched", due_h=30, created=base + timedelta(hours=3))
    red_late = _ticket(demo_session, card="red", state="signed", due_h=10, created=base + timedelta(hours=2))
    red_early = _ticket(demo_session, card="red", state="handling", due_h=-1, created=base)  # oldest: last by date
    want = [red_early, red_late, yellow, ok_overdue, ok_soon, closed]
    pages = []
    for offset in range(0, 6, 2):
        res = demo_client.get("/tickets", params={"sort": "urgency", "since": base.isoformat(), "limit": 2,
                                                  "offset": offset})
        assert res.status_code == 200 and res.json()["total"] == 6
        pages += [t["id"] for t in res.json()["items"]]
    assert pages == [t.id for t in want]
    newest = demo_client.get("/tickets", params={"since": base.isoformat(), "limit": 1}).json()["items"]
    assert newest[0]["id"] == ok_soon.id  # the default stays newest first
    bad = demo_client.get("/tickets", params={"sort": "loudest"})
    assert bad.status_code == 422


# ------------------------------------------------------------------------------------- exports

def _fixes(session) -> str:
    create_worker(session, id="WX1", name="李巡查", role="full_time", phone="13900000000", grids=[GRID])
    point = registry.load_grids(session, codes=[GRID]).geometry.iloc[0].representative_point()
    t0 = datetime(2026, 11, 5, 9, tzinfo=UTC8)
    rows = [{"worker_id": "WX1", "ts": (t0 + timedelta(seconds=30 * i)).isoformat(),
             "lon": point.x + 0.0001 * i, "lat": point.y, "accuracy": 10} for i in range(12)]
    rows += [{"worker_id": "WX1", "ts": (t0 + timedelta(days=1, seconds=30 * i)).isoformat(),
              "lon": point.x, "lat": point.y + 0.0001 * i, "accuracy": 10} for i in range(5)]
    result = ingest.ingest_positions(session, rows, now=t0 + timedelta(days=2), publish=False)
    assert result.inserted == 17
    return "WX1"


def _vision(session) -> tuple[Camera, list[Detection], Alarm]:
    point = registry.load_grids(session, codes=[GRID]).geometry.iloc[0].representative_point()
    camera = Camera(id="CAM-X1", name="东城路口球机", source="", geom=from_shape(point, srid=4326), grid_code=GRID,
                    village_code=VILLAGE, town_code=TOWN, district_code="370783000000")
    session.add(camera)
    session.flush()
    at = datetime(2026, 11, 5, 10, tzinfo=UTC8)
    dets = [Detection(camera_id=camera.id, at=at + timedelta(seconds=i), class_name=name, confidence=0.8,
                      x1=0, y1=0, x2=10, y2=10, track_id=i, grid_code=GRID,
                      geom=from_shape(Point(point.x, point.y), srid=4326)) for i, name in enumerate(["person", "car"])]
    dets.append(Detection(camera_id=camera.id, at=at + timedelta(days=20), class_name="person", confidence=0.9,
                          x1=0, y1=0, x2=1, y2=1, grid_code=GRID, geom=from_shape(Point(point.x, point.y), srid=4326)))
    alarm = Alarm(camera_id=camera.id, kind="crowd", state="ended", started_at=at, last_seen_at=at + timedelta(minutes=3),
                  ended_at=at + timedelta(minutes=4), count=6, max_count=7, dwell_s=180.0, updates=3, grid_code=GRID,
                  geom=from_shape(Point(point.x, point.y), srid=4326))
    session.add_all([*dets, alarm])
    session.flush()
    return camera, dets, alarm


def _shp(content: bytes, encoding: str = "gbk"):
    """The zip's one shapefile (read by pyshp, not by our writer) and its fields.csv."""
    archive = zipfile.ZipFile(io.BytesIO(content))
    [shp] = [n for n in archive.namelist() if n.endswith(".shp")]
    stem = shp[:-4]
    reader = shapefile.Reader(shp=io.BytesIO(archive.read(stem + ".shp")), dbf=io.BytesIO(archive.read(stem + ".dbf")),
                              shx=io.BytesIO(archive.read(stem + ".shx")), encoding=encoding)
    return reader, archive.read("fields.csv").decode("utf-8-sig")


WINDOW = {"from": "2026-11-05T00:00:00+08:00", "to": "2026-11-06T00:00:00+08:00"}


def test_worker_tracks_export_as_geojson_and_shapefile_in_chinese(demo_client, demo_session):
    _fixes(demo_session)
    res = demo_client.get("/export/worker_tracks", params={"format": "geojson", "area": TOWN, "names": "zh", **WINDOW})
    assert res.status_code == 200, res.text
    feats = [f for f in json.loads(res.content)["features"] if f["properties"]["网格员编号"] == "WX1"]
    assert len(feats) == 1  # the next day's fixes fall outside [from, to)
    props = feats[0]["properties"]
    assert props["姓名"] == "李巡查" and props["角色"] == "专职网格员" and props["定位点数"] == 12
    assert props["日期"] == "2026-11-05" and props["网格编码"] == GRID
    assert props["轨迹长度米"] == pytest.approx(11 * 0.0001 * 111_320 * np.cos(np.radians(36.9)), rel=0.05)
    assert feats[0]["geometry"]["type"] == "LineString" and len(feats[0]["geometry"]["coordinates"]) == 12
    assert "13900000000" not in res.content.decode()
    elsewhere = demo_client.get("/export/worker_tracks", params={"format": "geojson", "area": OTHER_TOWN, **WINDOW})
    assert all(f["properties"]["worker_id"] != "WX1" for f in json.loads(elsewhere.content)["features"])
    shp = demo_client.get("/export/worker_tracks", params={"format": "shp", "area": VILLAGE, "names": "zh",
                                                           "encoding": "gbk", **WINDOW})
    assert shp.status_code == 200, shp.text
    reader, fields = _shp(shp.content)
    names = [f[0] for f in reader.fields[1:]]
    assert set(TRACK_LABELS.values()) <= set(names)  # every Chinese name fits a DBF field in GBK (+ times' _t)
    mine = [r.as_dict() for r in reader.records() if "WX1" in r]
    assert len(mine) == 1 and mine[0]["姓名"] == "李巡查" and mine[0]["定位点数"] == 12
    assert reader.shapeType == shapefile.POLYLINE
    utf8 = demo_client.get("/export/worker_tracks", params={"format": "shp", "area": VILLAGE, "names": "zh", **WINDOW})
    _, fields = _shp(utf8.content, "utf-8")
    assert "定位点数" in fields and "轨迹长度米" in fields  # in UTF-8 cut names are listed with their full names


def test_detections_and_alarms_export_as_geojson_and_shapefile_in_chinese(demo_client, demo_session):
    camera, dets, alarm = _vision(demo_session)
    res = demo_client.get("/export/detections", params={"format": "geojson", "area": TOWN, "names": "zh", **WINDOW})
    assert res.status_code == 200, res.text
    feats = {f["properties"]["识别编号"]: f["properties"] for f in json.loads(res.content)["features"]}
    assert set(feats) >= {dets[0].id, dets[1].id} and dets[2].id not in feats  # the 20-days-later one is outside
    assert feats[dets[0].id]["目标类别"] == "行人" and feats[dets[1].id]["目标类别"] == "车辆"
    assert feats[dets[0].id]["摄像头名称"] == camera.name
    res = demo_client.get("/export/alarms", params={"format": "geojson", "names": "zh", **WINDOW})
    props = {f["properties"]["告警编号"]: f["properties"] for f in json.loads(res.content)["features"]}
    assert props[alarm.id]["告警类型"] == "人员聚集" and props[alarm.id]["状态"] == "已结束"
    assert props[alarm.id]["最大数量"] == 7 and props[alarm.id]["持续秒数"] == 180.0
    none = demo_client.get("/export/alarms", params={"format": "geojson", "area": OTHER_TOWN, **WINDOW})
    assert alarm.id not in {f["properties"]["id"] for f in json.loads(none.content)["features"]}
    for layer, field in (("detections", "目标类别"), ("alarms", "告警类型")):
        shp = demo_client.get(f"/export/{layer}", params={"format": "shp", "area": TOWN, "names": "zh",
                                                          "encoding": "gbk", **WINDOW})
        assert shp.status_code == 200, shp.text
        reader, _ = _shp(shp.content)
        assert field in [f[0] for f in reader.fields[1:]]
        assert {r.as_dict()[field] for r in reader.records()} >= ({"行人", "车辆"} if layer == "detections" else {"人员聚集"})
        assert reader.shapeType == shapefile.POINT


def test_new_layers_are_in_the_catalog_with_time_filters(client):
    layers = {x["name"]: x for x in client.get("/export").json()["layers"]}
    for name in ("worker_tracks", "detections", "alarms"):
        assert layers[name]["time_filter"], name
        assert "：" in layers[name]["description"]  # described in Chinese


def test_bad_area_for_new_layers(demo_client):
    res = demo_client.get("/export/alarms", params={"format": "geojson", "area": "370783050000"})
    assert res.status_code == 404 and "370783050000" in res.text
