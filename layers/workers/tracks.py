"""A worker's day (巡查轨迹): the track, distance walked, time in and out of the assigned grids, patrol
coverage, last position, and the tickets the worker reported.

Choices, and why:
- A day is the city's calendar day (Asia/Shanghai), 00:00-24:00.
- Only good fixes count: fixes flagged at intake (zero, poor accuracy, impossible speed) are left out,
  and the speed test is run again over the whole day here, because a late fix can only be judged
  against its neighbours once they have all arrived.
- The track is split where two fixes are more than ``gap_s`` apart (default 10 min: phone off, lunch,
  a bus ride without fixes): a straight line across a gap would claim a walk that never happened.
  Distance sums only within pieces; time in and out of the grids counts only within pieces too.
- Inside means within the union of the assigned grids (a fix on the boundary counts as inside).
  A step between two fixes is credited to where it starts.
- Patrol coverage = share of the assigned grids' area within ``buffer_m`` (default 30 m, about the
  distance at which a worker on a lane sees both house fronts) of the day's track, measured in the
  city's CGCS2000 Gauss-Krüger zone. Area was chosen over street length because the registry holds
  grid polygons, not a street network; a grid of lanes every 60 m walked end to end is fully covered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.batch_values import seconds
from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.settings import CITY_TZ

GAP_S = 600.0
BUFFER_M = 30.0
MAX_SPEED = 50.0  # m/s: faster than any car in a town; a jump like this is a bad fix


@dataclass
class DayTrack:
    """One worker's day, metric figures rounded for people."""

    worker_id: str
    day: date
    grids: list[str]
    fixes: int = 0
    flagged: int = 0
    pieces: int = 0
    distance_m: float = 0.0
    inside_s: float = 0.0
    outside_s: float = 0.0
    coverage: float = 0.0
    first_at: datetime | None = None
    last_at: datetime | None = None
    last_lon: float | None = None
    last_lat: float | None = None
    geometry: object = None  # MultiLineString in lon/lat, or None
    tickets: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("geometry", "tickets")}
        out["tickets_reported"] = len(self.tickets)
        return out


# --------------------------------------------------------------------------- pure parts

def step_speeds(x: np.ndarray, y: np.ndarray, t: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Speed (m/s) into and out of each fix, within its group (rows sorted by group, then time).

    NaN where there is no neighbour in the group or the neighbour has the same time.
    """
    dist = np.hypot(np.diff(x), np.diff(y))
    dt = np.diff(t)
    same = group[1:] == group[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(same & (dt > 0), dist / dt, np.nan)
    return np.r_[np.nan, speed], np.r_[speed, np.nan]


def spike_mask(x: np.ndarray, y: np.ndarray, t: np.ndarray, group: np.ndarray, *,
               max_speed: float = MAX_SPEED, passes: int = 2) -> np.ndarray:
    """Fixes reached at an impossible speed and left at one too (or the last fix, reached so).

    A jump followed by normal movement is a real relocation after a gap, not a spike, and is kept.
    Two passes catch a pair of bad fixes in a row. Rows must be sorted by group, then time.
    """
    bad = np.zeros(len(x), dtype=bool)
    for _ in range(passes):
        keep = np.flatnonzero(~bad)
        s_in, s_out = step_speeds(x[keep], y[keep], t[keep], group[keep])
        last = np.isnan(s_out)
        found = (s_in > max_speed) & ((s_out > max_speed) | last)
        if not found.any():
            break
        bad[keep[found]] = True
    return bad


def pieces(t: np.ndarray, gap_s: float = GAP_S) -> list[np.ndarray]:
    """Index arrays of the runs of fixes with no gap longer than ``gap_s`` (sorted times)."""
    if len(t) == 0:
        return []
    cuts = np.flatnonzero(np.diff(t) > gap_s) + 1
    return np.split(np.arange(len(t)), cuts)


def measure(x: np.ndarray, y: np.ndarray, t: np.ndarray, area, *, gap_s: float = GAP_S,
            buffer_m: float = BUFFER_M) -> dict:
    """Distance, time in/out of ``area`` (metric polygon or None) and coverage for one day's fixes."""
    parts = [p for p in pieces(t, gap_s) if len(p) >= 2]
    inside = shapely.contains_xy(area.buffer(0.5), x, y) if area is not None and not area.is_empty \
        else np.zeros(len(x), dtype=bool)
    distance = inside_s = outside_s = coverage = 0.0
    lines = []
    for p in parts:
        dt = np.diff(t[p])
        distance += float(np.hypot(np.diff(x[p]), np.diff(y[p])).sum())
        inside_s += float(dt[inside[p][:-1]].sum())
        outside_s += float(dt[~inside[p][:-1]].sum())
        lines.append(shapely.linestrings(x[p], y[p]))
    if lines and area is not None and area.area > 0:
        swept = shapely.buffer(shapely.multilinestrings(lines), buffer_m)
        coverage = float(shapely.intersection(swept, area).area / area.area)
    return {"pieces": len(parts), "distance_m": distance, "inside_s": inside_s, "outside_s": outside_s,
            "coverage": coverage, "lines": lines}


# --------------------------------------------------------------------------- from the database

def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=CITY_TZ)
    return start, start + timedelta(days=1)


def load_fixes(session: Session, worker_ids: list[str], day: date) -> pd.DataFrame:
    start, end = day_bounds(day)
    rows = session.execute(text(
        "SELECT worker_id, ts, ST_X(geom) AS lon, ST_Y(geom) AS lat, flag FROM worker_positions "
        "WHERE worker_id = ANY(:w) AND ts >= :a AND ts < :b ORDER BY worker_id, ts"),
        {"w": worker_ids, "a": start, "b": end}).all()
    frame = pd.DataFrame(rows, columns=["worker_id", "ts", "lon", "lat", "flag"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def load_areas(session: Session, worker_ids: list[str]) -> dict[str, tuple[list[str], object]]:
    """Per worker: the assigned grid codes and their union (lon/lat)."""
    rows = session.execute(text(
        "SELECT a.worker_id, a.grid_code, ST_AsBinary(g.geom) FROM worker_grids a "
        "JOIN grids g ON g.code = a.grid_code AND g.valid_to IS NULL WHERE a.worker_id = ANY(:w) "
        "ORDER BY a.worker_id, a.grid_code"), {"w": worker_ids}).all()
    out: dict[str, tuple[list[str], list]] = {}
    for worker_id, code, wkb in rows:
        codes, geoms = out.setdefault(worker_id, ([], []))
        codes.append(code)
        geoms.append(shapely.from_wkb(bytes(wkb)))
    return {w: (codes, shapely.union_all(geoms)) for w, (codes, geoms) in out.items()}


def _metric(geom, epsg: int):
    return shapely.transform(geom, lambda xy: np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], f"EPSG:{epsg}")))


def _lonlat(geom, epsg: int):
    return shapely.transform(geom, lambda xy: np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], f"EPSG:{epsg}")))


def _one(worker_id: str, day: date, fixes: pd.DataFrame, area: tuple[list[str], object] | None,
         gap_s: float, buffer_m: float) -> DayTrack:
    track = DayTrack(worker_id, day, list(area[0]) if area else [])
    track.flagged = int(fixes["flag"].notna().sum())
    good = fixes[fixes["flag"].isna()]
    if good.empty:
        return track
    epsg = gauss_kruger_epsg(float(good["lon"].median()))
    x, y = from_wgs84(good["lon"].to_numpy(), good["lat"].to_numpy(), f"EPSG:{epsg}")
    t = seconds(good["ts"])
    spikes = spike_mask(x, y, t, np.zeros(len(t)))
    track.flagged += int(spikes.sum())
    x, y, t, good = x[~spikes], y[~spikes], t[~spikes], good[~spikes]
    zone_area = _metric(area[1], epsg) if area else None
    figures = measure(x, y, t, zone_area, gap_s=gap_s, buffer_m=buffer_m)
    track.fixes = len(good)
    track.pieces = figures["pieces"]
    track.distance_m = round(figures["distance_m"], 1)
    track.inside_s, track.outside_s = round(figures["inside_s"]), round(figures["outside_s"])
    track.coverage = round(figures["coverage"], 4)
    track.first_at, track.last_at = good["ts"].iat[0].to_pydatetime(), good["ts"].iat[-1].to_pydatetime()
    track.last_lon, track.last_lat = float(good["lon"].iat[-1]), float(good["lat"].iat[-1])
    if figures["lines"]:
        track.geometry = _lonlat(shapely.multilinestrings(figures["lines"]), epsg)
    return track


def day_tracks(session: Session, worker_ids: list[str], day: date, *, gap_s: float = GAP_S,
               buffer_m: float = BUFFER_M) -> list[DayTrack]:
    """Tracks for several workers with two queries (fixes, assigned grids)."""
    fixes = load_fixes(session, worker_ids, day)
    areas = load_areas(session, worker_ids)
    groups = dict(tuple(fixes.groupby("worker_id", sort=False)))
    empty = fixes.iloc[0:0]
    return [_one(w, day, groups.get(w, empty), areas.get(w), gap_s, buffer_m) for w in worker_ids]


def reported_tickets(session: Session, worker_id: str, day: date) -> list[dict]:
    """Tickets the worker reported that day: patrol reports naming the worker (``source_ref``), or any
    report made from the worker's phone."""
    start, end = day_bounds(day)
    rows = session.execute(text(
        "SELECT t.id, t.channel, t.category, t.severity, t.state, t.grid_code, t.created_at, "
        "left(t.description, 120) AS description, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat "
        "FROM tickets t JOIN workers w ON w.id = :w WHERE t.created_at >= :a AND t.created_at < :b "
        "AND ((t.channel = 'patrol' AND t.source_ref = w.id) OR (w.phone IS NOT NULL AND t.reporter_phone = w.phone)) "
        "ORDER BY t.created_at"), {"w": worker_id, "a": start, "b": end}).mappings().all()
    return [dict(r) for r in rows]


def day_track(session: Session, worker_id: str, day: date, *, gap_s: float = GAP_S,
              buffer_m: float = BUFFER_M) -> DayTrack:
    """The click-a-worker view: the day's track and figures, with the tickets reported that day."""
    from layers.workers.registry import get_worker

    get_worker(session, worker_id)
    track = day_tracks(session, [worker_id], day, gap_s=gap_s, buffer_m=buffer_m)[0]
    track.tickets = reported_tickets(session, worker_id, day)
    return track
