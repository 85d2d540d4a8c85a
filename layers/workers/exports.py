"""Workers' tracks as an exportable layer (巡查轨迹): one line per worker per day, from the good fixes.

Registered with :mod:`layers.catalog` (named in its ``PROVIDERS``). The line is built in PostGIS
(``ST_MakeLine`` over the day's unflagged fixes in time order), so a month of 30-second fixes never
travels to Python as points. Filters mean what they mean for the other layers: ``start``/``end`` keep
the fixes taken in [start, end) (a track is cut at those times), ``area`` keeps the fixes resolved to
grids in that district, town/street or village/community; the day is the Asia/Shanghai calendar day.
The worker's phone is personal data and is not exported.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import codes as C
from layers.catalog import CHUNK_ROWS, Layer, register
from layers.workers.models import ROLES

TRACK_LABELS = {"worker_id": "网格员编号", "name": "姓名", "role": "角色", "town_code": "镇街道编码",
                "town_name": "镇街道名称", "grid_code": "网格编码", "day": "日期", "fixes": "定位点数",
                "first_at": "开始时间", "last_at": "结束时间", "length_m": "轨迹长度米"}
_PREFIX = {C.Level.DISTRICT: 6, C.Level.TOWN: 9, C.Level.VILLAGE: 12}

_SQL = """
WITH fixes AS (
  SELECT p.worker_id, p.ts, p.geom, p.grid_code,
         (p.ts AT TIME ZONE 'Asia/Shanghai')::date AS day
  FROM worker_positions p
  WHERE p.flag IS NULL AND p.geom IS NOT NULL {where}
)
SELECT f.worker_id, w.name, w.role, w.town_code, a.name AS town_name,
       mode() WITHIN GROUP (ORDER BY f.grid_code) AS grid_code,
       f.day, count(*) AS fixes, min(f.ts) AS first_at, max(f.ts) AS last_at,
       ST_Length(ST_MakeLine(f.geom ORDER BY f.ts)::geography) AS length_m,
       ST_AsBinary(CASE WHEN count(*) > 1 THEN ST_MakeLine(f.geom ORDER BY f.ts) END) AS wkb
FROM fixes f
LEFT JOIN workers w ON w.id = f.worker_id
LEFT JOIN areas a ON a.code = w.town_code AND a.valid_to IS NULL
GROUP BY f.worker_id, w.name, w.role, w.town_code, a.name, f.day
ORDER BY f.day, f.worker_id
"""


def fetch_tracks(session: Session, *, area: str | None = None, start: datetime | None = None,
                 end: datetime | None = None) -> Iterator[gpd.GeoDataFrame]:
    """Worker-days in the selection, streamed in chunks (a worker with one fix that day has no line)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if area:
        where.append("AND p.grid_code LIKE :prefix")
        params["prefix"] = area[: _PREFIX[C.level_of(area)]] + "%"
    if start is not None:
        where.append("AND p.ts >= :start")
        params["start"] = start
    if end is not None:
        where.append("AND p.ts < :end")
        params["end"] = end
    stmt = text(_SQL.format(where=" ".join(where)))
    result = session.execute(stmt.execution_options(yield_per=CHUNK_ROWS), params)
    empty = True
    for rows in result.partitions():
        empty = False
        yield _frame(rows)
    if empty:
        yield _frame([])


def _frame(rows) -> gpd.GeoDataFrame:
    data = pd.DataFrame([tuple(r[:-1]) for r in rows], columns=list(TRACK_LABELS))
    data["role"] = data["role"].map(lambda r: ROLES.get(r, r))
    data["day"] = data["day"].astype(str)
    data["fixes"] = data["fixes"].astype("int64")
    data["length_m"] = data["length_m"].astype(float).round(1)
    for col in ("first_at", "last_at"):
        data[col] = pd.to_datetime(data[col], utc=True)
    geoms = shapely.from_wkb([None if r[-1] is None else bytes(r[-1]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs=4326))


register(Layer("worker_tracks", "巡查轨迹", fetch_tracks, geometry_type="LineString", key="worker_id",
               labels=TRACK_LABELS, temporal="ts",
               description="网格员巡查轨迹：每人每天一条线，由当天有效定位点按时间连成（剔除异常点），"
                           "含点数、起止时间与长度；不含手机号。"))
