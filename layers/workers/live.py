"""Live positions in memory (实时位置) and "nearest help" (就近调度).

An R-tree (``rtree``) holds one point per worker in the city's Gauss-Krüger metres, so a nearest
query is a metric one. A new fix moves a worker with one delete and one insert — no rebuild, which is
why an R-tree and not a static STRtree. Fixes reach the index two ways: the ingest path in this process
calls :meth:`LiveIndex.update`; fixes stored by another process (the CLI, another API worker) are
picked up by :meth:`LiveIndex.refresh`, which reads only the ``worker_last_positions`` rows changed
since its last look (a high-water mark on ``updated_at``, with a margin for transactions that
committed late). Candidates are then checked against the database (on duty, active), so a worker who
went off duty is never offered.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from rtree import index as rindex
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from gis.coords import from_wgs84, gauss_kruger_epsg
from gis.errors import InvalidInput, NotFound
from layers.accounts.scope import Scope
from layers.workers.registry import scoped_ids

REFRESH_MARGIN = timedelta(minutes=2)


@dataclass
class Live:
    worker_id: str
    lon: float
    lat: float
    x: float
    y: float
    ts: datetime
    grid_code: str | None
    key: int


class LiveIndex:
    """Workers' newest fixes, updated incrementally."""

    def __init__(self) -> None:
        self._tree = rindex.Index()
        self._by_worker: dict[str, Live] = {}
        self._by_key: dict[int, str] = {}
        self._keys = itertools.count(1)
        self._epsg: int | None = None
        self._mark: datetime | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_worker)

    def _xy(self, lon: float, lat: float) -> tuple[float, float]:
        if self._epsg is None:
            self._epsg = gauss_kruger_epsg(lon)
        x, y = from_wgs84([lon], [lat], f"EPSG:{self._epsg}")
        return float(x[0]), float(y[0])

    def update(self, worker_id: str, lon: float, lat: float, ts: datetime, *, grid_code: str | None = None,
               force: bool = False) -> bool:
        """Move a worker if this fix is newer than the one held (or ``force``); returns whether it moved."""
        with self._lock:
            old = self._by_worker.get(worker_id)
            if old is not None and not force and ts <= old.ts:
                return False
            x, y = self._xy(lon, lat)
            if old is not None:
                self._tree.delete(old.key, (old.x, old.y, old.x, old.y))
                del self._by_key[old.key]
            key = next(self._keys)
            self._tree.insert(key, (x, y, x, y))
            self._by_key[key] = worker_id
            self._by_worker[worker_id] = Live(worker_id, lon, lat, x, y, ts, grid_code, key)
            return True

    def remove(self, worker_id: str) -> None:
        with self._lock:
            old = self._by_worker.pop(worker_id, None)
            if old is not None:
                self._tree.delete(old.key, (old.x, old.y, old.x, old.y))
                del self._by_key[old.key]

    def get(self, worker_id: str) -> Live | None:
        return self._by_worker.get(worker_id)

    def nearest(self, lon: float, lat: float, k: int) -> list[tuple[Live, float]]:
        """The ``k`` nearest held workers with their distance in metres, nearest first."""
        if not self._by_worker:
            return []
        x, y = self._xy(lon, lat)
        with self._lock:
            keys = list(self._tree.nearest((x, y, x, y), num_results=k))
            found = [self._by_worker[self._by_key[key]] for key in keys if key in self._by_key]
        pairs = [(live, float(np.hypot(live.x - x, live.y - y))) for live in found]
        return sorted(pairs, key=lambda p: (p[1], p[0].worker_id))[:k]

    def refresh(self, session: Session) -> int:
        """Pull the last positions changed since the previous look; returns how many were applied."""
        since = (self._mark - REFRESH_MARGIN) if self._mark else datetime(1970, 1, 1, tzinfo=UTC)
        rows = session.execute(text(
            "SELECT worker_id, ST_X(geom), ST_Y(geom), ts, grid_code, updated_at FROM worker_last_positions "
            "WHERE updated_at > :since"), {"since": since}).all()
        for worker_id, lon, lat, ts, grid_code, updated_at in rows:
            held = self.get(worker_id)
            if held is None or held.ts != ts or held.lon != lon or held.lat != lat:
                self.update(worker_id, lon, lat, ts, grid_code=grid_code, force=True)
            self._mark = max(self._mark or updated_at, updated_at)
        return len(rows)


_INDEXES: dict[str, LiveIndex] = {}
_GUARD = threading.Lock()


def live_index(session: Session) -> LiveIndex:
    """The process-wide index for the session's database."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    key = engine.url.render_as_string(hide_password=True)
    with _GUARD:
        return _INDEXES.setdefault(key, LiveIndex())


def _ticket_point(session: Session, ticket_id: int) -> tuple[float, float]:
    row = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM tickets WHERE id = :id"), {"id": ticket_id}).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    if row[0] is None:
        raise InvalidInput(f"ticket {ticket_id} has no location yet: place it first")
    return float(row[0]), float(row[1])


def nearest_workers(session: Session, *, lon: float | None = None, lat: float | None = None,
                    ticket_id: int | None = None, k: int = 5, max_age: timedelta | None = None,
                    now: datetime | None = None, index: LiveIndex | None = None,
                    scope: Scope | None = None) -> list[dict]:
    """The ``k`` nearest on-duty workers to a ticket or a point: distance (m), grids, last fix age (s).

    ``max_age`` leaves out workers whose newest fix is older (a phone left in a drawer is not help).
    With ``scope``: the ticket must be the caller's (else 404) and only the caller's workers answer.
    """
    if ticket_id is not None:
        if scope is not None:
            # tickets' own visibility rule (the one place it is decided); imported here: no cycle at import
            from layers.incidents.store import get_ticket

            get_ticket(session, ticket_id, scope=scope)
        lon, lat = _ticket_point(session, ticket_id)
    if lon is None or lat is None:
        raise InvalidInput("give a ticket id or a lon/lat")
    index = index or live_index(session)
    index.refresh(session)
    now = now or datetime.now(UTC)
    wide = scope is None or scope.city_wide  # a scoped caller skips others' workers: look further
    candidates = index.nearest(lon, lat, max(4 * k, k + 20) if wide else max(40 * k, 400))
    eligible = _on_duty(session, [live.worker_id for live, _ in candidates])
    visible = None if scope is None else scoped_ids(session, scope, eligible)
    if visible is not None:
        eligible = {w: info for w, info in eligible.items() if w in visible}
    out = []
    for live, distance in candidates:
        if live.worker_id not in eligible or (max_age is not None and now - live.ts > max_age):
            continue
        info = eligible[live.worker_id]
        out.append({"worker_id": live.worker_id, "name": info["name"], "role": info["role"],
                    "grids": info["grids"], "distance_m": round(distance, 1), "lon": live.lon, "lat": live.lat,
                    "fix_at": live.ts, "fix_age_s": round((now - live.ts).total_seconds()),
                    "grid_code": live.grid_code})
    return out[:k]


def _on_duty(session: Session, worker_ids: list[str]) -> dict[str, dict]:
    rows = session.execute(text(
        "SELECT w.id, w.name, w.role, coalesce(array_agg(g.grid_code ORDER BY g.grid_code) "
        "FILTER (WHERE g.grid_code IS NOT NULL), '{}') FROM workers w LEFT JOIN worker_grids g ON g.worker_id = w.id "
        "WHERE w.id = ANY(:w) AND w.on_duty AND w.active "
        "AND EXISTS (SELECT 1 FROM worker_last_positions p WHERE p.worker_id = w.id) GROUP BY w.id"),
        {"w": worker_ids}).all()
    return {r[0]: {"name": r[1], "role": r[2], "grids": list(r[3])} for r in rows}
