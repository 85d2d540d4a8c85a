"""What the map draws for sensors: each sensor with its latest reading and state, a per-grid
aggregate, and one sensor's series.

"Latest per sensor" is a LATERAL probe of the (sensor_id, ts DESC) index per sensor, one index
descent per monthly partition, never a scan of the readings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.errors import InvalidInput
from layers.accounts.scope import Scope
from layers.sensors.models import POLLUTANTS
from layers.sensors.registry import get_sensor, scoped_ids
from layers.sensors.thresholds import load_rules

STALE_AFTER = timedelta(hours=2)  # no reading for this long: the sensor shows as stale

LATEST = f"""
SELECT s.id, s.name, s.kind, s.owner, s.status, s.grid_code, s.town_code, array_to_string(s.pollutants, ',')
       AS pollutants, r.ts AS latest_at, {', '.join('r.' + p for p in POLLUTANTS)},
       a.id AS alarm_id, a.pollutant AS alarm_pollutant, ST_AsBinary(s.geom) AS wkb
FROM sensors s
LEFT JOIN LATERAL (SELECT * FROM sensor_readings sr WHERE sr.sensor_id = s.id ORDER BY sr.ts DESC LIMIT 1) r ON true
LEFT JOIN sensor_alarms a ON a.sensor_id = s.id AND a.state = 'open'
WHERE (CAST(:town AS text) IS NULL OR s.town_code = :town) AND (:retired OR s.status <> 'retired')
  AND (CAST(:ids AS text[]) IS NULL OR s.id = ANY(CAST(:ids AS text[])))
ORDER BY s.id
"""


def _state(frame: pd.DataFrame, rules, now: datetime) -> pd.Series:
    over = pd.Series(False, index=frame.index)
    for p, rule in rules.items():
        over |= frame[p].astype(float).fillna(-1) > rule.limit_value
    latest = pd.to_datetime(frame["latest_at"], utc=True)
    state = pd.Series("ok", index=frame.index, dtype=object)
    state[over] = "over"
    state[latest.isna() | (latest < pd.Timestamp(now - STALE_AFTER))] = "stale"
    state[latest.isna()] = "no_data"
    state[frame["alarm_id"].notna()] = "alarm"
    state[frame["status"] != "active"] = frame["status"][frame["status"] != "active"]
    return state


def sensors_layer(session: Session, *, town: str | None = None, include_retired: bool = False,
                  now: datetime | None = None, scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Every sensor with its latest reading and a state: ok, over, stale, no_data, alarm, offline, retired;
    within ``scope`` when given."""
    params = {"town": town, "retired": include_retired, "ids": scoped_ids(session, scope)}
    rows = session.execute(text(LATEST), params).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=[
        "id", "name", "kind", "owner", "status", "grid_code", "town_code", "pollutants", "latest_at",
        *POLLUTANTS, "alarm_id", "alarm_pollutant", "wkb"])
    geoms = shapely.from_wkb([bytes(w) for w in frame.pop("wkb")]) if len(frame) else []
    frame["state"] = _state(frame, load_rules(session), now or datetime.now(UTC)) if len(frame) else []
    frame["alarm_id"] = frame["alarm_id"].astype("Int64").astype(object).where(frame["alarm_id"].notna(), None)
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=4326))


def grid_aggregate(session: Session, *, town: str | None = None, now: datetime | None = None,
                   scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Per grid: sensors, open alarms, the worst latest PM2.5 and PM10 — drawn on the grid polygons."""
    layer = sensors_layer(session, town=town, now=now, scope=scope)
    layer = layer[layer["grid_code"].notna()]
    stats = pd.DataFrame(layer.drop(columns="geometry")).groupby("grid_code").agg(
        sensors=("id", "count"), alarms=("alarm_id", lambda s: int(s.notna().sum())),
        pm25_max=("pm25", "max"), pm10_max=("pm10", "max"),
        over=("state", lambda s: int(s.isin(["over", "alarm"]).sum()))).reset_index()
    if stats.empty:
        return gpd.GeoDataFrame(stats.assign(geometry=[]), geometry="geometry", crs=4326)
    rows = session.execute(text(
        "SELECT code, name, town_code, ST_AsBinary(geom) FROM grids WHERE valid_to IS NULL AND code = ANY(:c)"),
        {"c": list(stats["grid_code"])}).all()
    grids = pd.DataFrame(rows, columns=["grid_code", "grid_name", "town_code", "wkb"])
    merged = stats.merge(grids, on="grid_code", how="inner")
    geoms = shapely.from_wkb([bytes(w) for w in merged.pop("wkb")])
    return gpd.GeoDataFrame(merged, geometry=gpd.GeoSeries(geoms, crs=4326))


def series(session: Session, sensor_id: str, *, start: datetime | None = None, end: datetime | None = None,
           limit: int = 50_000, scope: Scope | None = None) -> list[dict]:
    """One sensor's readings in time order (default: the last 24 hours before its newest reading)."""
    for value in (start, end):
        if value is not None and value.tzinfo is None:
            raise InvalidInput("start and end need a timezone, e.g. 2026-05-01T08:00:00+08:00")
    get_sensor(session, sensor_id, scope=scope)
    if start is None:
        newest = session.scalar(text("SELECT max(ts) FROM sensor_readings WHERE sensor_id = :s"), {"s": sensor_id})
        if newest is None:
            return []
        start = newest - timedelta(hours=24)
    rows = session.execute(text(
        f"SELECT ts, {', '.join(POLLUTANTS)} FROM sensor_readings WHERE sensor_id = :s AND ts >= :a "
        "AND (CAST(:b AS timestamptz) IS NULL OR ts <= :b) ORDER BY ts LIMIT :lim"),
        {"s": sensor_id, "a": start, "b": end, "lim": limit}).mappings().all()
    return [dict(r) for r in rows]
