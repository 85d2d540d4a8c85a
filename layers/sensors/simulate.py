"""Demo sensors and readings for the demo city (演示数据).

A few hundred air-quality points dropped at random inside random grids, one in ten an enterprise's
own outlet monitor (排污企业在线监测) with an owner. Readings follow a plain daily shape with noise
(PM2.5 around 35 µg/m³, PM10 about 1.7 times that, NO2 30, SO2 10, O3 80, CO 0.8 mg/m³). A few
enterprise monitors have an episode: PM2.5 climbs over 75 µg/m³ for 20 minutes, long enough for the
3-readings rule, so the demo has alarms and sensor tickets on the map.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import shapely
from sqlalchemy.orm import Session

from gis.registry import load_grids
from layers.sensors.ingest import ingest_readings
from layers.sensors.registry import import_sensors

ENTERPRISES = ["寿光晨鸣纸业", "寿光联盟化工", "寿光巨能热电", "寿光鲁丽钢铁", "寿光富康制药", "寿光新龙电化",
               "寿光侨昌化学", "寿光卫东化工"]


def demo_sensors(session: Session, *, count: int = 300, seed: int = 11) -> pd.DataFrame:
    """Register (or refresh) ``count`` demo sensors; the same seed gives the same sensors."""
    grids = load_grids(session)
    if grids.empty:
        return pd.DataFrame()
    rng = np.random.default_rng(seed)
    picks = grids.iloc[rng.choice(len(grids), count, replace=len(grids) < count)]
    points = [_inside(g, rng) for g in picks.geometry]
    enterprise = np.arange(count) % 10 == 0
    frame = pd.DataFrame({
        "id": [f"AQ{i + 1:04d}" for i in range(count)],
        "name": [f"{g}监测点" for g in picks["name"]],
        "kind": np.where(enterprise, "enterprise", "air"),
        "owner": [ENTERPRISES[i % len(ENTERPRISES)] if e else "" for i, e in enumerate(enterprise)],
        "pollutants": "PM2.5;PM10;NO2;SO2;O3;CO",
        "lon": [p.x for p in points], "lat": [p.y for p in points]})
    import_sensors(session, frame)
    return frame


def _inside(polygon, rng: np.random.Generator):
    minx, miny, maxx, maxy = polygon.bounds
    for _ in range(200):
        p = shapely.Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if polygon.contains(p):
            return p
    return polygon.representative_point()


def readings_frame(sensors: list[str], start: datetime, *, hours: float = 6, step_min: int = 1,
                   episodes: list[str] | None = None, seed: int = 11) -> pd.DataFrame:
    """Synthetic readings, one row per sensor and step; ``episodes`` sensors breach PM2.5 mid-window."""
    rng = np.random.default_rng(seed)
    steps = int(hours * 60 // step_min)
    ts = pd.date_range(pd.Timestamp(start).tz_convert(UTC), periods=steps, freq=f"{step_min}min")
    sid = np.repeat(np.asarray(sensors, dtype=object), steps)
    when = pd.DatetimeIndex(np.tile(ts.tz_localize(None).to_numpy(), len(sensors))).tz_localize(UTC)
    hour = (when.hour + 8) % 24 + when.minute / 60
    base = 35 + 10 * np.sin((hour - 8) / 24 * 2 * np.pi)
    n = len(sid)
    pm25 = np.clip(base + rng.normal(0, 6, n), 1, None)
    frame = pd.DataFrame({"sensor_id": sid, "ts": when, "pm25": pm25.round(1),
                          "pm10": (pm25 * rng.uniform(1.5, 1.9, n)).round(1),
                          "no2": np.clip(rng.normal(30, 8, n), 1, None).round(1),
                          "so2": np.clip(rng.normal(10, 3, n), 1, None).round(1),
                          "o3": np.clip(80 + 30 * np.sin((hour - 10) / 24 * 2 * np.pi) + rng.normal(0, 8, n), 1, None).round(1),
                          "co": np.clip(rng.normal(0.8, 0.2, n), 0.1, None).round(2)})
    for sensor in episodes or []:
        mask = (frame["sensor_id"] == sensor).to_numpy()
        mid = np.flatnonzero(mask)[steps // 2: steps // 2 + max(3, 20 // step_min)]
        frame.loc[mid, "pm25"] = rng.uniform(90, 160, len(mid)).round(1)
    return frame


def simulate(session: Session, *, count: int = 300, hours: float = 6, end: datetime | None = None,
             episodes: int = 5, seed: int = 11) -> dict:
    """Register the demo sensors and ingest ``hours`` of minute readings ending at ``end`` (default now)."""
    sensors = demo_sensors(session, count=count, seed=seed)
    if sensors.empty:
        return {"sensors": 0, "readings": 0}
    end = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(hours=hours)
    chosen = list(sensors.loc[sensors["kind"] == "enterprise", "id"][:episodes])
    frame = readings_frame(list(sensors["id"]), start, hours=hours, episodes=chosen, seed=seed)
    result = ingest_readings(session, frame, now=end + timedelta(minutes=1))
    return {"sensors": len(sensors), "readings": result.inserted, "duplicates": result.duplicates,
            "rejected": len(result.rejected), "alarms": len(result.alarms_opened), "episodes": chosen}
