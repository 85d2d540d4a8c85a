"""The daily patrol report per town (巡查日报): each worker's distance, coverage, time out of the assigned
grids and tickets reported, with a CSV export for the town office.

The CSV is UTF-8 with a byte-order mark so that Excel on a Chinese Windows desktop opens the names
correctly without an import wizard; column headers are bilingual for the same reason.
"""

from __future__ import annotations

import io
from datetime import date

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import codes as C
from gis import csvsafe
from gis.errors import NotFound
from gis.settings import CITY_TZ
from layers.accounts.scope import Scope
from layers.basedata.service import captured_counts
from layers.workers.models import ROLES
from layers.workers.registry import scoped_ids
from layers.workers.tracks import day_bounds, day_tracks

COLUMNS = {
    "worker_id": "工号 worker_id", "name": "姓名 name", "role_name": "角色 role", "grids": "网格 grids",
    "fixes": "定位点 fixes", "flagged": "异常点 flagged", "distance_km": "里程(km) distance_km",
    "coverage_pct": "覆盖率(%) coverage_pct", "inside_min": "格内(分) inside_min",
    "outside_min": "格外(分) outside_min", "tickets_reported": "上报事件 tickets",
    "objects_captured": "采集对象 objects_captured", "first_at": "首次定位 first_at",
    "last_at": "末次定位 last_at",
}


def _workers(session: Session, town: str) -> pd.DataFrame:
    rows = session.execute(text(
        "SELECT DISTINCT w.id, w.name, w.role, w.phone FROM workers w LEFT JOIN worker_grids a ON a.worker_id = w.id "
        "LEFT JOIN grids g ON g.code = a.grid_code AND g.valid_to IS NULL "
        "WHERE w.active AND (w.town_code = :t OR g.town_code = :t) ORDER BY w.id"), {"t": town}).all()
    return pd.DataFrame(rows, columns=["worker_id", "name", "role", "phone"])


def _ticket_counts(session: Session, workers: pd.DataFrame, day: date) -> dict[str, int]:
    start, end = day_bounds(day)
    rows = session.execute(text(
        "SELECT w.id, count(t.id) FROM workers w JOIN tickets t ON t.created_at >= :a AND t.created_at < :b "
        "AND ((t.channel = 'patrol' AND t.source_ref = w.id) OR (w.phone IS NOT NULL AND t.reporter_phone = w.phone)) "
        "WHERE w.id = ANY(:w) GROUP BY w.id"), {"a": start, "b": end, "w": list(workers["worker_id"])}).all()
    return dict(rows)


def patrol_report(session: Session, town: str, day: date, *, scope: Scope | None = None) -> pd.DataFrame:
    """One row per worker of the town (by home town or by an assigned grid in it), worst coverage first.

    With ``scope``, only the workers the caller sees; a town it sees none of is a 404."""
    C.validate_area_code(town, C.Level.TOWN)
    workers = _workers(session, town)
    visible = None if scope is None else scoped_ids(session, scope, workers["worker_id"])
    if scope is not None and visible is not None:
        if not visible and not scope.sees({}, town_code=town):
            raise NotFound(f"no town {town}")
        workers = workers[workers["worker_id"].isin(visible)]
    if workers.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    tracks = {t.worker_id: t for t in day_tracks(session, list(workers["worker_id"]), day)}
    counts = _ticket_counts(session, workers, day)
    captured = captured_counts(session, list(workers["worker_id"]), *day_bounds(day))
    rows = []
    for w in workers.itertuples(index=False):
        t = tracks[w.worker_id]
        rows.append({"worker_id": w.worker_id, "name": w.name, "role_name": ROLES[w.role], "grids": ";".join(t.grids),
                     "fixes": t.fixes, "flagged": t.flagged, "distance_km": round(t.distance_m / 1000, 2),
                     "coverage_pct": round(100 * t.coverage, 1), "inside_min": round(t.inside_s / 60),
                     "outside_min": round(t.outside_s / 60), "tickets_reported": counts.get(w.worker_id, 0),
                     "objects_captured": captured.get(w.worker_id, 0),
                     "first_at": _local(t.first_at), "last_at": _local(t.last_at)})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.sort_values(["coverage_pct", "worker_id"]).reset_index(drop=True)


def _local(value) -> str | None:
    return None if value is None else pd.Timestamp(value).tz_convert(CITY_TZ).strftime("%H:%M:%S")


def report_csv(frame: pd.DataFrame) -> bytes:
    """The report as CSV bytes (UTF-8 with BOM, bilingual headers)."""
    buffer = io.StringIO()
    csvsafe.frame(frame.rename(columns=COLUMNS)).to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8-sig")
