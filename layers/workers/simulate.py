"""A demo day for the demo city's workers (演示数据): people, assignments, walks, a few reports.

Each worker is given 1-4 neighbouring grids of one village/community, so the whole city is covered
with "one person one grid" or "one person several grids"; every tenth worker is a grid chief. A
day is two shifts (08:00-11:30, 14:00-17:30, the lunch break splits the track) of walking at 1.0-1.5
m/s between random waypoints inside the worker's grids, a fix every 30 s with ~4 m of GPS noise.
One worker in ten also walks to places 100-400 m outside the grids; about 0.5% of fixes are bad
(a 2 km spike, a (0, 0) fix, an accuracy of 150 m) so the flags show on the map. Half the phones
report GCJ-02 (as Amap-based apps do) and are ingested with ``crs="gcj02"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.registry import load_grids
from gis.settings import CITY_TZ
from layers.workers.ingest import ingest_positions
from layers.workers.registry import import_workers

SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红建国志海燕")
SHIFTS = ((time(8, 0), time(11, 30)), (time(14, 0), time(17, 30)))
REPORTS = ("0102", "0507", "0506", "0201", "0601")  # exposed rubbish, piled goods, bikes, flyers, manholes


@dataclass
class DayResult:
    workers: int
    fixes: int
    inserted: int
    flagged: int
    rejected: int
    tickets: int


def demo_workers(session: Session, *, max_grids: int = 4, seed: int = 7) -> pd.DataFrame:
    """Workers with assignments covering every current grid (idempotent: same ids, same grids).

    Each village/community's grids (in code order) are split into runs of at most ``max_grids``, one
    worker per run, so a worker's grids are neighbours in one village.
    """
    grids = load_grids(session)
    if grids.empty:
        return pd.DataFrame()
    rng = np.random.default_rng(seed)
    runs = []
    for _, codes in grids.groupby("village_code", sort=True)["code"]:
        codes = list(codes)
        parts = -(-len(codes) // max_grids)
        runs += [list(chunk) for chunk in np.array_split(codes, parts)]
    rows = []
    for i, run in enumerate(runs):
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN, size=int(rng.integers(1, 3))))
        rows.append({"id": f"W{i + 1:04d}", "name": name, "role": "grid_chief" if i % 10 == 0 else "full_time",
                     "phone": f"13{rng.integers(0, 10)}{rng.integers(10_000_000, 99_999_999)}",
                     "grids": ";".join(run)})
    frame = pd.DataFrame(rows)
    import_workers(session, frame)
    return frame


def _points_in(area, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random points inside a metric polygon (rejection sampling in its bounding box)."""
    minx, miny, maxx, maxy = area.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        cand = np.column_stack([rng.uniform(minx, maxx, 4 * n), rng.uniform(miny, maxy, 4 * n)])
        out = np.vstack([out, cand[shapely.contains_xy(area, cand[:, 0], cand[:, 1])]])
    return out[:n]


def _walk(waypoints: np.ndarray, speed: float, start_s: float, end_s: float, step_s: float) -> np.ndarray:
    """Positions every ``step_s`` seconds along straight legs between waypoints: rows (t, x, y)."""
    legs = np.hypot(*np.diff(waypoints, axis=0).T)
    arrive = start_s + np.r_[0, np.cumsum(legs / speed)]
    t = np.arange(start_s, min(end_s, arrive[-1]), step_s)
    return np.column_stack([t, np.interp(t, arrive, waypoints[:, 0]), np.interp(t, arrive, waypoints[:, 1])])


def _worker_day(area, day: date, rng: np.random.Generator, *, wanders: bool, step_s: float) -> pd.DataFrame:
    frames = []
    for start, end in SHIFTS:
        t0 = datetime.combine(day, start, tzinfo=CITY_TZ).timestamp() + rng.uniform(0, 900)
        t1 = datetime.combine(day, end, tzinfo=CITY_TZ).timestamp() - rng.uniform(0, 900)
        way = _points_in(area, 40, rng)
        if wanders:
            ring = area.buffer(400).difference(area.buffer(100))
            way[rng.choice(40, 4, replace=False)] = _points_in(ring, 4, rng)
        track = _walk(way, rng.uniform(1.0, 1.5), t0, t1, step_s)
        track[:, 1:] += rng.normal(0, 4, size=(len(track), 2))
        frames.append(pd.DataFrame(track, columns=["t", "x", "y"]))
    out = pd.concat(frames, ignore_index=True)
    out["accuracy"] = np.round(rng.uniform(3, 15, len(out)), 1)
    return out


def _spoil(frame: pd.DataFrame, rng: np.random.Generator) -> None:
    """About 0.5% bad fixes of three kinds, as phones produce."""
    n = len(frame)
    spikes = rng.choice(n, max(1, n // 400), replace=False)
    frame.loc[spikes, "x"] += 2000.0
    poor = rng.choice(n, max(1, n // 1000), replace=False)
    frame.loc[poor, "accuracy"] = 150.0
    frame["zero"] = False
    frame.loc[rng.choice(n, max(1, n // 2000), replace=False), "zero"] = True


def simulate_day(session: Session, day: date, *, seed: int = 7, step_s: float = 30.0,
                 now: datetime | None = None, tickets: int = 30, limit: int | None = None) -> DayResult:
    """Create (once) the demo workers and ingest one day of their fixes; returns what landed.

    ``limit`` walks only the first workers (tests use a few)."""
    workers = demo_workers(session, seed=seed)
    if limit is not None:
        workers = workers.iloc[:limit]
    if workers.empty:
        return DayResult(0, 0, 0, 0, 0, 0)
    rng = np.random.default_rng(seed + day.toordinal())
    grids = load_grids(session).set_index("code")
    epsg = gauss_kruger_epsg(float(np.mean(grids.total_bounds[[0, 2]])))
    frames = []
    for i, w in enumerate(workers.itertuples(index=False)):
        area = shapely.union_all([grids.geometry[c] for c in w.grids.split(";")])
        metric = shapely.transform(area, lambda xy: np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], f"EPSG:{epsg}")))
        walk = _worker_day(metric, day, rng, wanders=(i % 10 == 3), step_s=step_s)
        frames.append(walk.assign(worker_id=w.id, gcj=(i % 2 == 1)))
    fixes = pd.concat(frames, ignore_index=True)
    _spoil(fixes, rng)
    lon, lat = to_wgs84(fixes["x"].to_numpy(), fixes["y"].to_numpy(), f"EPSG:{epsg}")
    fixes["lon"], fixes["lat"] = lon, lat
    now = now or datetime.now(UTC)
    fixes = fixes[fixes["t"] <= now.timestamp()]
    return _ingest(session, fixes, workers, now, tickets, rng)


def _batch(fixes: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"worker_id": fixes["worker_id"].to_numpy(),
                        "ts": pd.to_datetime(fixes["t"].to_numpy(), unit="s", utc=True),
                        "lon": np.where(fixes["zero"], 0.0, fixes["lon"]),
                        "lat": np.where(fixes["zero"], 0.0, fixes["lat"]), "accuracy": fixes["accuracy"].to_numpy()})
    return out


def _ingest(session: Session, fixes: pd.DataFrame, workers: pd.DataFrame, now: datetime, tickets: int,
            rng: np.random.Generator) -> DayResult:
    wgs = fixes[~fixes["gcj"]]
    gcj = fixes[fixes["gcj"]].copy()
    gx, gy = from_wgs84(gcj["lon"].to_numpy(), gcj["lat"].to_numpy(), "gcj02")
    gcj["lon"], gcj["lat"] = gx, gy
    results = [ingest_positions(session, _batch(wgs), now=now),
               ingest_positions(session, _batch(gcj), crs="gcj02", now=now)]
    made = _reports(session, fixes, workers, tickets, rng)
    return DayResult(len(workers), len(fixes), sum(r.inserted for r in results), sum(r.flagged for r in results),
                     sum(len(r.rejected) for r in results), made)


def _reports(session: Session, fixes: pd.DataFrame, workers: pd.DataFrame, count: int,
             rng: np.random.Generator) -> int:
    """A few patrol reports (巡查上报) at the reporter's position, so the worker view lists tickets."""
    from layers.incidents.intake import create_ticket

    good = fixes[~fixes["zero"] & (fixes["accuracy"] < 100)]
    if good.empty or count <= 0:
        return 0
    phones = workers.set_index("id")
    picks = good.iloc[rng.choice(len(good), min(count, len(good)), replace=False)]
    for fix in picks.itertuples(index=False):
        existing = session.scalar(text("SELECT count(*) FROM tickets WHERE channel = 'patrol' AND source_ref = :w "
                                       "AND created_at = :t"), {"w": fix.worker_id, "t": _at(fix.t)})
        if existing:
            continue
        create_ticket(session, channel="patrol", category=str(rng.choice(REPORTS)), description="网格员巡查发现",
                      lon=float(fix.lon), lat=float(fix.lat), reporter_name=phones.at[fix.worker_id, "name"],
                      reporter_phone=phones.at[fix.worker_id, "phone"], source_ref=fix.worker_id,
                      actor=fix.worker_id, at=_at(fix.t), dedupe=False)
    return len(picks)


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(round(float(t)), tz=UTC)


def day_of(value: str | None) -> date:
    """``YYYY-MM-DD`` or today in city time."""
    if not value:
        return datetime.now(CITY_TZ).date()
    return date.fromisoformat(value)

