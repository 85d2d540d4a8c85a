"""Camera detections (识别结果) and alarms (视频告警) as exportable layers.

Registered with :mod:`layers.catalog` (named in its ``PROVIDERS``). Only this module's tables are read
(``detections``, ``alarms`` and their camera), never the video: importing it loads no model. Filters
mean what they mean for the other layers: ``start``/``end`` keep detections seen and alarms started in
[start, end); ``area`` keeps those placed in a grid of that district, town/street or village/community
(a detection the camera could not place on the ground has no grid and is left out by an area filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import codes as C
from layers.catalog import CHUNK_ROWS, Layer, register

DETECTION_LABELS = {"id": "识别编号", "camera_id": "摄像头编号", "camera_name": "摄像头名称", "at": "识别时间",
                    "class_name": "目标类别", "confidence": "置信度", "track_id": "跟踪编号",
                    "grid_code": "网格编码"}
ALARM_LABELS = {"id": "告警编号", "camera_id": "摄像头编号", "camera_name": "摄像头名称", "kind": "告警类型",
                "state": "状态", "started_at": "开始时间", "last_seen_at": "最近时间", "ended_at": "结束时间",
                "max_count": "最大数量", "dwell_s": "持续秒数", "grid_code": "网格编码", "ticket_id": "工单编号"}
CLASS_NAMES = {"person": "行人", "car": "车辆", "truck": "货车", "bus": "公交车", "bicycle": "自行车",
               "motorcycle": "摩托车"}
KIND_NAMES = {"crowd": "人员聚集", "parking": "违章停车", "present": "目标出现"}
STATE_NAMES = {"active": "告警中", "ended": "已结束"}
_PREFIX = {C.Level.DISTRICT: 6, C.Level.TOWN: 9, C.Level.VILLAGE: 12}


def _where(table: str, time_column: str, area, start, end) -> tuple[str, dict]:
    where, params = [], {}
    if area:
        where.append(f"{table}.grid_code LIKE :prefix")
        params["prefix"] = area[: _PREFIX[C.level_of(area)]] + "%"
    if start is not None:
        where.append(f"{table}.{time_column} >= :start")
        params["start"] = start
    if end is not None:
        where.append(f"{table}.{time_column} < :end")
        params["end"] = end
    return ("WHERE " + " AND ".join(where)) if where else "", params


def _stream(session: Session, sql: str, params: dict, columns: list[str], fix) -> Iterator[gpd.GeoDataFrame]:
    result = session.execute(text(sql).execution_options(yield_per=CHUNK_ROWS), params)
    empty = True
    for rows in result.partitions():
        empty = False
        yield _frame(rows, columns, fix)
    if empty:
        yield _frame([], columns, fix)


def _frame(rows, columns: list[str], fix) -> gpd.GeoDataFrame:
    data = pd.DataFrame([tuple(r[:-1]) for r in rows], columns=columns)
    fix(data)
    geoms = shapely.from_wkb([None if r[-1] is None else bytes(r[-1]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=4326))


def _times(data: pd.DataFrame, *columns: str) -> None:
    for col in columns:
        data[col] = pd.to_datetime(data[col], utc=True)


def fetch_detections(session: Session, *, area: str | None = None, start: datetime | None = None,
                     end: datetime | None = None) -> Iterator[gpd.GeoDataFrame]:
    """Detections placed on the ground (with a point), streamed in chunks, in time order."""
    where, params = _where("d", "at", area, start, end)
    where = (where + " AND" if where else "WHERE") + " d.geom IS NOT NULL"
    sql = (f"SELECT d.id, d.camera_id, c.name, d.at, d.class_name, d.confidence, d.track_id, d.grid_code, "
           f"ST_AsBinary(d.geom) FROM detections d JOIN cameras c ON c.id = d.camera_id {where} "
           f"ORDER BY d.at, d.id")

    def fix(data: pd.DataFrame) -> None:
        _times(data, "at")
        data["class_name"] = data["class_name"].map(lambda n: CLASS_NAMES.get(n, n))
        data["confidence"] = data["confidence"].astype(float).round(3)
        data["track_id"] = data["track_id"].astype("Int64")
    return _stream(session, sql, params, list(DETECTION_LABELS), fix)


def fetch_alarms(session: Session, *, area: str | None = None, start: datetime | None = None,
                 end: datetime | None = None) -> Iterator[gpd.GeoDataFrame]:
    """Camera alarms started in the range; an alarm not placed on the ground sits at its camera."""
    where, params = _where("al", "started_at", area, start, end)
    sql = (f"SELECT al.id, al.camera_id, c.name, al.kind, al.state, al.started_at, al.last_seen_at, al.ended_at, "
           f"al.max_count, al.dwell_s, al.grid_code, al.ticket_id, ST_AsBinary(coalesce(al.geom, c.geom)) "
           f"FROM alarms al JOIN cameras c ON c.id = al.camera_id {where} ORDER BY al.started_at, al.id")

    def fix(data: pd.DataFrame) -> None:
        _times(data, "started_at", "last_seen_at", "ended_at")
        data["kind"] = data["kind"].map(lambda k: KIND_NAMES.get(k, k))
        data["state"] = data["state"].map(lambda s: STATE_NAMES.get(s, s))
        data["dwell_s"] = data["dwell_s"].astype(float).round(1)
        data["max_count"] = data["max_count"].astype("Int64")
        data["ticket_id"] = data["ticket_id"].astype("Int64")
    return _stream(session, sql, params, list(ALARM_LABELS), fix)


register(Layer("detections", "视频识别", fetch_detections, geometry_type="Point", key="id",
               labels=DETECTION_LABELS, temporal="at",
               description="视频识别结果：摄像头识别出的行人、车辆等目标及其地面位置、置信度与所在网格"
                           "（未能定位到地面的识别不导出）。"))
register(Layer("alarms", "视频告警", fetch_alarms, geometry_type="Point", key="id",
               labels=ALARM_LABELS, temporal="started_at",
               description="视频告警：人员聚集、违章停车等规则触发的告警，含起止时间、最大数量、"
                           "持续时长和关联工单；未定位的告警落在摄像头位置。"))
