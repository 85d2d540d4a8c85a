"""What the grid worker's phone asks (网格员移动端): who am I, my grids, today's tasks, check-ins.

A grid-worker account and the worker registry meet on the id: the account's username is the worker's
id (工号), e.g. account ``W0001`` patrols as worker ``W0001``. The phone posts its GPS fixes through
the ordinary ingest (``POST /workers/positions``) under that id.

Tasks (今日任务) are the open tickets in the worker's grids; the ones assigned down to a grid's
village/community (派单/分单 to the village) are the worker's to sign, start and complete.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from gis.locate import locate
from layers.accounts.scope import Scope
from layers.field.models import CheckIn
from layers.incidents.categories import load_categories
from layers.incidents.workflow import TERMINAL, allowed_moves

STATE_NAMES = {"received": "已受理", "dispatched": "已派单", "signed": "已签收", "handling": "处置中",
               "completed": "已办结", "reviewed": "已审核", "revisited": "已回访", "closed": "已结案",
               "returned": "已返单", "signed_off": "已销号"}
MAX_SITE = 200


def worker_of(session: Session, worker_id: str) -> dict[str, Any]:
    row = session.execute(text(
        "SELECT w.id, w.name, w.role, w.town_code, w.on_duty, w.active, "
        "COALESCE(array_agg(a.grid_code ORDER BY a.grid_code) FILTER (WHERE a.grid_code IS NOT NULL), '{}') "
        "FROM workers w LEFT JOIN worker_grids a ON a.worker_id = w.id WHERE w.id = :w GROUP BY w.id"),
        {"w": worker_id}).first()
    if row is None:
        raise NotFound(f"no worker {worker_id}: a grid-worker account's username must be its worker id (工号)")
    return {"id": row[0], "name": row[1], "role": row[2], "town_code": row[3], "on_duty": row[4],
            "active": row[5], "grids": list(row[6])}


def grids_named(session: Session, codes: list[str]) -> list[dict[str, Any]]:
    rows = session.execute(text(
        "SELECT g.code, g.name, g.village_code, v.name, g.town_code, t.name FROM grids g "
        "LEFT JOIN areas v ON v.code = g.village_code AND v.valid_to IS NULL "
        "LEFT JOIN areas t ON t.code = g.town_code AND t.valid_to IS NULL "
        "WHERE g.valid_to IS NULL AND g.code = ANY(:c) ORDER BY g.code"), {"c": list(codes)}).all()
    return [{"code": r[0], "name": r[1], "village_code": r[2], "village_name": r[3], "town_code": r[4],
             "town_name": r[5]} for r in rows]


def me(session: Session, scope: Scope, worker_id: str | None = None) -> dict[str, Any]:
    """The signed-in grid worker (with auth off, the demo names one with ``worker_id``)."""
    if scope.role != "grid_worker" and scope.user != Scope.demo().user:
        raise InvalidInput(f"the phone is for grid-worker accounts; this account is {scope.role}")
    wid = scope.user if scope.role == "grid_worker" else worker_id
    if not wid:
        raise InvalidInput("demo mode: name the worker, e.g. ?worker=W0001")
    worker = worker_of(session, wid)
    codes = list(scope.grid_codes) if scope.role == "grid_worker" else worker["grids"]
    return {"username": scope.user, "role": scope.role, "worker": worker, "grids": grids_named(session, codes)}


_TASKS = text("""
    SELECT t.id, t.category, t.severity, t.state, t.description, t.address, t.grid_code, t.village_code,
           t.assignee, t.card, t.complete_due, t.created_at, t.channel, ST_X(t.geom), ST_Y(t.geom),
           g.name
    FROM tickets t LEFT JOIN grids g ON g.code = t.grid_code AND g.valid_to IS NULL
    WHERE t.grid_code = ANY(:grids) AND t.state <> ALL(:closed) AND t.duplicate_of IS NULL
    ORDER BY (t.assignee = t.village_code AND t.state IN ('dispatched', 'signed', 'handling')) DESC,
             t.created_at DESC
    LIMIT :limit""")


def tasks(session: Session, grids: list[str], *, limit: int = 100) -> list[dict[str, Any]]:
    """Open tickets in ``grids``, the worker's own (assigned to the grid's village) first."""
    cats = load_categories()
    rows = session.execute(_TASKS, {"grids": list(grids), "closed": [s.value for s in TERMINAL],
                                    "limit": limit}).all()
    out = []
    for r in rows:
        mine = r.assignee is not None and r.assignee == r.village_code
        out.append({
            "id": r.id, "category": r.category, "category_name": cats[r.category].name if r.category in cats else "",
            "severity": r.severity, "state": r.state, "state_name": STATE_NAMES.get(r.state, r.state),
            "description": r.description, "address": r.address, "grid_code": r.grid_code, "grid_name": r[15],
            "mine": mine, "my_moves": allowed_moves(r.state, "grid_worker") if mine else [],
            "card": r.card, "complete_due": _iso(r.complete_due), "created_at": _iso(r.created_at),
            "channel": r.channel, "lon": r[13], "lat": r[14]})
    return out


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def check_in(session: Session, *, worker_id: str, client_id: str, lon: float, lat: float,
             accuracy_m: float | None = None, site: str = "", ticket_id: int | None = None,
             at: datetime | None = None, scope: Scope | None = None) -> dict[str, Any]:
    """现场签到: stored once per ``client_id`` (a retry answers the first check-in)."""
    if not client_id or len(client_id) > 100:
        raise InvalidInput("a check-in needs a client_id of 1-100 characters")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"longitude {lon} / latitude {lat} out of range")
    if len(site) > MAX_SITE:
        raise InvalidInput(f"site name longer than {MAX_SITE} characters")
    at = at or datetime.now(UTC)
    if at.utcoffset() is None:
        raise InvalidInput("at must carry a time zone")
    worker_of(session, worker_id)
    place = locate(session, lon, lat)
    distance = None
    if ticket_id is not None:
        ticket = session.execute(text(
            "SELECT id, grid_code, village_code, town_code, district_code, department, assignee, co_units, "
            "ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) AS d "
            "FROM tickets WHERE id = :t"), {"t": ticket_id, "x": lon, "y": lat}).mappings().first()
        if ticket is None or (scope is not None and not scope.sees(dict(ticket))):
            raise NotFound(f"no ticket {ticket_id}")
        distance = None if ticket["d"] is None else round(float(ticket["d"]), 1)
    session.execute(text(
        "INSERT INTO worker_checkins (worker_id, client_id, at, geom, accuracy_m, site, grid_code, village_code, "
        "town_code, ticket_id, distance_m) VALUES (:w, :c, :at, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :acc, "
        ":site, :g, :v, :town, :t, :d) ON CONFLICT (worker_id, client_id) DO NOTHING"),
        {"w": worker_id, "c": client_id, "at": at, "x": lon, "y": lat, "acc": accuracy_m, "site": site.strip(),
         "g": place.grid_code, "v": place.village_code, "town": place.town_code, "t": ticket_id, "d": distance})
    row = session.query(CheckIn).filter_by(worker_id=worker_id, client_id=client_id).one()
    return {"id": row.id, "worker_id": row.worker_id, "at": row.at.isoformat(), "site": row.site,
            "grid_code": row.grid_code, "grid_name": place.grid_name if row.grid_code == place.grid_code else None,
            "village_name": place.village_name, "town_name": place.town_name, "ticket_id": row.ticket_id,
            "distance_m": row.distance_m}
