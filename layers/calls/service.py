"""Grid calls as a service: raise, move (approve, reject, sign, arrive, resolve, withdraw), the automatic
lapse of a level's time, and reads — every step authorised by the caller's account.

Who acts (the call's ``Level``) comes from the account, never from the request: a grid-worker account
is a ``grid_chief`` on a grid where the worker registry lists it (``workers.id`` = the username, role
``grid_chief``, assigned to the grid), else a ``worker``; village accounts are the ``community``, town
accounts the ``town``, department accounts the ``department``. The area comes from the account's
:class:`~layers.accounts.scope.Scope`: a call outside it is answered like a missing one (404); a call
inside it that waits for another level is refused (:class:`NotYourTurn`, 403, with the level it waits
for). Only the local demo (sign-in off) may name the level in the request.

Time: each stage's limit is a ``call_limits`` row (department-specific or ``*``). A vetting level that
lets its time lapse is passed automatically (``escalate``) — checked lazily before every move on the
call and by :func:`sweep` for all of them — so a late approval is refused with the reason; the town,
a department that has not signed and one that has not arrived are flagged (overdue) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from geoalchemy2.elements import WKTElement
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from gis.coords import to_wgs84
from gis.errors import IllegalMove, InvalidInput, NotFound, OneMapError
from layers.accounts.scope import Scope
from layers.calls import workflow as W
from layers.calls.models import Call, CallEvent, CallLimit
from layers.calls.workflow import Level, State
from layers.incidents import sla
from layers.incidents.categories import get_category, get_department
from layers.incidents.places import resolve_place
from layers.incidents.store import get_ticket

ACCOUNT_LEVEL = {"village": Level.COMMUNITY, "town": Level.TOWN, "department": Level.DEPARTMENT}


class CallSettings(BaseSettings):
    """ONEMAP_CALLS_ARRIVE_RADIUS_M: how far from the call's place an arrival may be reported."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_CALLS_", extra="ignore")

    arrive_radius_m: float = Field(default=200.0, gt=0, le=10_000)


@lru_cache
def call_settings() -> CallSettings:
    return CallSettings()


class NotYourTurn(OneMapError):
    """The caller may see the call but its level has no say at this step (the API answers 403)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- limits

def limits(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(CallLimit).order_by(CallLimit.stage, CallLimit.key)).all()
    return [{"stage": r.stage, "key": r.key, "minutes": r.minutes, "clock": r.clock, "title": r.title} for r in rows]


def set_limit(session: Session, *, stage: str, key: str = "*", minutes: int, clock: str = "calendar",
              title: str = "") -> dict[str, Any]:
    """Change (or add) one stage's limit; ``key`` is a department code or ``*``."""
    if stage not in set(W.STAGE.values()):
        raise InvalidInput(f"unknown stage {stage!r}; stages are {', '.join(sorted(set(W.STAGE.values())))}")
    if key != "*":
        get_department(key)
    if not 0 < minutes <= 60 * 24 * 30 or clock not in ("calendar", "working"):
        raise InvalidInput("minutes must be 1..43200 and clock calendar or working")
    row = session.get(CallLimit, (stage, key)) or CallLimit(stage=stage, key=key)
    row.minutes, row.clock, row.title = minutes, clock, title or row.title or ""
    session.add(row)
    session.flush()
    return {"stage": stage, "key": key, "minutes": minutes, "clock": clock, "title": row.title}


def due(session: Session, stage: str, start: datetime, department: str | None = None) -> datetime:
    """When ``stage`` started at ``start`` runs out: the department's own row, else the ``*`` row."""
    rows = {r.key: r for r in session.scalars(select(CallLimit).where(CallLimit.stage == stage))}
    row = rows.get(department or "*") or rows.get("*")
    if row is None:
        raise InvalidInput(f"no time limit configured for stage {stage!r} (call_limits)")
    if row.clock == "working":
        return sla.add_working_hours(start, row.minutes / 60)
    return start + timedelta(minutes=row.minutes)


# ----------------------------------------------------------------------------- who acts

def _is_chief(session: Session, username: str, grid: str | None) -> bool:
    return bool(grid) and session.execute(text(
        "SELECT 1 FROM workers w JOIN worker_grids a ON a.worker_id = w.id "
        "WHERE w.id = :u AND w.role = 'grid_chief' AND w.active AND a.grid_code = :g"),
        {"u": username, "g": grid}).first() is not None


def level_of(session: Session, scope: Scope, grid_code: str | None, *, demo_level: str | None = None) -> Level:
    """The caller's level on a call in ``grid_code`` (403 when the account has no part in calls)."""
    if scope.user == Scope.demo().user:  # sign-in off: the local demo names its level
        return W._parse(Level, demo_level or "town", "level")
    if scope.role == "grid_worker":
        level = Level.GRID_CHIEF if _is_chief(session, scope.user, grid_code) else Level.WORKER
    elif scope.role in ACCOUNT_LEVEL:
        level = ACCOUNT_LEVEL[scope.role]
    else:
        level = None
    if level is not None and demo_level not in (None, "", level.value):
        raise NotYourTurn(f"you act as {level.value} ({W.LEVEL_NAMES[level.value]}), not {demo_level}: the level "
                          "comes from the signed-in account")
    if level is not None:
        return level
    raise NotYourTurn(f"the {scope.role} role has no part in grid calls (网格呼叫): raised by grid workers, "
                      "vetted by grid chiefs, communities and towns, answered by departments")


def _visible(scope: Scope, call: Call) -> bool:
    if scope.role == "grid_worker":
        return call.grid_code in scope.grid_codes
    return scope.sees(call)


def _get(session: Session, call_id: int, scope: Scope, *, lock: bool = False) -> Call:
    stmt = select(Call).where(Call.id == call_id)
    call = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if call is None or not _visible(scope, call):
        raise NotFound(f"no call {call_id}")
    return call


# ----------------------------------------------------------------------------- raise

@dataclass(frozen=True)
class _Place:
    lon: float
    lat: float
    grid_code: str | None
    village_code: str | None
    town_code: str | None
    district_code: str | None


def _place_of_ticket(session: Session, ticket_id: int, scope: Scope) -> tuple[Any, _Place]:
    ticket = get_ticket(session, ticket_id, scope=None if scope.role == "grid_worker" else scope)
    if scope.role == "grid_worker" and ticket.grid_code not in scope.grid_codes:
        raise NotFound(f"no ticket {ticket_id}")
    xy = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM tickets WHERE id = :i"), {"i": ticket_id}).one()
    if xy[0] is None or ticket.grid_code is None:
        raise InvalidInput(f"ticket {ticket_id} has no place yet: place it before calling a department")
    return ticket, _Place(float(xy[0]), float(xy[1]), ticket.grid_code, ticket.village_code, ticket.town_code,
                          ticket.district_code)


def _place_of_point(session: Session, lon: float | None, lat: float | None, crs: str) -> _Place:
    if lon is None or lat is None:
        raise InvalidInput("a call needs a ticket_id, or lon and lat of the problem")
    place = resolve_place(session, lon=lon, lat=lat, crs=crs)
    if not place.placed:
        raise InvalidInput(f"the call's place cannot be resolved to a grid: {place.reason}")
    return _Place(place.lon, place.lat, place.grid_code, place.village_code, place.town_code,  # type: ignore[arg-type]
                  place.district_code)


def raise_call(session: Session, scope: Scope, *, description: str, ticket_id: int | None = None,
               lon: float | None = None, lat: float | None = None, crs: str = "EPSG:4326",
               category: str | None = None, department: str | None = None, demo_level: str | None = None,
               actor: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A new call about a ticket (its place and department) or a point; it starts one level above the
    caller. A grid worker may call only about its own grids."""
    now = now or now_utc()
    if not description.strip():
        raise InvalidInput("a call needs a description: time, place, people, situation, request (五要素)")
    if ticket_id is not None:
        ticket, place = _place_of_ticket(session, ticket_id, scope)
        category, department = category or ticket.category, department or ticket.department
    else:
        place = _place_of_point(session, lon, lat, crs)
    if category:
        get_category(category)
    if not department:
        raise InvalidInput("name the department called (e.g. water, power, gas, heating), or call about a ticket")
    get_department(department)
    level = level_of(session, scope, place.grid_code, demo_level=demo_level)
    if level not in W.START:
        raise NotYourTurn(f"a {W.LEVEL_NAMES[level.value]} account does not raise calls; grid workers, grid "
                          "chiefs, communities and towns do")
    call = Call(ticket_id=ticket_id, category=category, description=description.strip(), department=department,
                geom=WKTElement(f"POINT({place.lon} {place.lat})", srid=4326), grid_code=place.grid_code,
                village_code=place.village_code, town_code=place.town_code, district_code=place.district_code,
                raised_by=actor or scope.user, raised_level=level.value, state=W.START[level].value,
                overdue=False, escalations=0, created_at=now, updated_at=now)
    if not _visible(scope, call):
        raise NotFound(f"no grid {place.grid_code} in your area: a call is raised about one's own grids")
    _enter(session, call, W.START[level], now)
    session.add(call)
    session.flush()
    _event(session, call, "raise", None, call.state, level.value, call.raised_by, now, None, {})
    return detail(session, call.id, scope, now=now, demo_level=demo_level)


def _enter(session: Session, call: Call, state: State, at: datetime) -> None:
    """Start the clock of the stage ``state`` waits on."""
    call.state, call.overdue = state.value, False
    if state in W.VETTING:
        call.level_due = due(session, W.STAGE[state], at, call.department)
    elif state is State.AT_DEPARTMENT:
        call.level_due = None
        call.dispatched_at = at
        call.sign_due = due(session, "sign", at, call.department)
        call.onsite_due = due(session, "onsite", at, call.department)
    else:
        call.level_due = None


def _event(session: Session, call: Call, move: str, from_state: str | None, to_state: str, role: str, actor: str,
           at: datetime, note: str | None, payload: dict[str, Any]) -> None:
    session.add(CallEvent(call_id=call.id, at=at, actor=actor, role=role, move=move, from_state=from_state,
                          to_state=to_state, note=note, payload=payload))


# ----------------------------------------------------------------------------- time lapses

def _lapse(session: Session, call: Call, now: datetime) -> int:
    """Apply what the clock did while nobody looked: each vetting level whose time ran out is passed
    (escalate, at the moment its time ran out, so the next level's clock starts there); the town and
    the department are flagged once per stage. Returns the events written."""
    written = 0
    while call.state in {s.value for s in W.VETTING} and call.level_due is not None and call.level_due < now:
        state, lapsed_at = State(call.state), call.level_due
        stage = W.STAGE[state]
        if state is State.AT_TOWN:
            if not call.overdue:
                written += _system(session, call, "flag", lapsed_at, f"{stage} time ran out at "
                                   f"{lapsed_at.isoformat()} (镇街把关超时): flagged for supervision")
                call.overdue = True
            break
        t = W.move(state, "escalate", level=Level.SYSTEM, note=f"{stage} time ran out (把关超时,自动上报)")
        _event(session, call, "escalate", state.value, t.to_state.value, "system", "onemap", lapsed_at, t.note,
               {"lapsed": stage, "due": lapsed_at.isoformat()})
        call.escalations += 1
        _enter(session, call, t.to_state, lapsed_at)
        written += 1
    for state, due_at, what in ((State.AT_DEPARTMENT, call.sign_due, "sign (签收超时)"),
                                (State.SIGNED, call.onsite_due, "arrival on site (到场超时)")):
        if call.state == state.value and due_at is not None and due_at < now and not call.overdue:
            written += _system(session, call, "flag", due_at, f"{what} due {due_at.isoformat()}: flagged")
            call.overdue = True
    if written:
        call.updated_at = now
    return written


def _system(session: Session, call: Call, move: str, at: datetime, note: str) -> int:
    t = W.move(call.state, move, level=Level.SYSTEM, note=note)
    _event(session, call, move, t.from_state.value, t.to_state.value, "system", "onemap", at, note, {})
    return 1


def sweep(session: Session, *, now: datetime | None = None, scope: Scope | None = None) -> dict[str, int]:
    """Escalate or flag every open call whose time ran out (run by ``onemap calls sweep`` or the API)."""
    now = now or now_utc()
    stmt = select(Call).where(Call.state.in_([s.value for s in (*W.VETTING, State.AT_DEPARTMENT, State.SIGNED)]),
                              or_(Call.level_due < now, Call.sign_due < now, Call.onsite_due < now))
    if scope is not None:
        stmt = scope.filter(stmt, Call)
    calls = session.scalars(stmt.order_by(Call.id).with_for_update()).all()
    events = sum(_lapse(session, c, now) for c in calls)
    session.flush()
    return {"calls": len(calls), "events": events}


# ----------------------------------------------------------------------------- moves

def _distance_m(session: Session, call: Call, lon: float, lat: float) -> float:
    return float(session.scalar(text(
        "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography) FROM calls "
        "WHERE id = :i"), {"x": lon, "y": lat, "i": call.id}))


def _arrive(session: Session, call: Call, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    try:
        x, y = to_wgs84([float(payload["lon"])], [float(payload["lat"])], str(payload.get("crs") or "EPSG:4326"))
    except (TypeError, ValueError):
        raise InvalidInput("arrive needs lon and lat as numbers") from None
    lon, lat = float(x[0]), float(y[0])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) is not a valid position")
    distance, radius = _distance_m(session, call, lon, lat), call_settings().arrive_radius_m
    if distance > radius:
        raise InvalidInput(f"arrival refused: you are {distance:,.0f} m from the place of call {call.id} "
                           f"(at most {radius:,.0f} m): report arrival on site (到场报到须在现场)",
                           detail={"distance_m": round(distance, 1), "radius_m": radius})
    call.arrived_at, call.arrive_distance_m = now, round(distance, 1)
    call.arrive_geom = WKTElement(f"POINT({lon} {lat})", srid=4326)
    call.onsite_on_time = None if call.onsite_due is None else now <= call.onsite_due
    return {"lon": lon, "lat": lat, "distance_m": call.arrive_distance_m, "due": _iso(call.onsite_due),
            "on_time": call.onsite_on_time}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _refuse_turn(call: Call, move: str, level: Level) -> None:
    """A move that exists from this state but belongs to another level is a 403, with whose turn it is."""
    rule = W._rule(State(call.state), move)
    if rule is not None and level not in rule.levels:
        waits = ", ".join(W.LEVEL_NAMES[x.value] for x in rule.levels)
        raise NotYourTurn(f"call {call.id} is {call.state} ({W.STATE_NAMES[call.state]}): {move} is for {waits}, "
                          f"not for a {W.LEVEL_NAMES[level.value]} account",
                          detail={"state": call.state, "level": level.value, "waits_for": sorted(
                              x.value for x in rule.levels)})


def apply_move(session: Session, call_id: int, move: str, scope: Scope, *, note: str | None = None,
               payload: dict[str, Any] | None = None, demo_level: str | None = None, actor: str | None = None,
               now: datetime | None = None) -> dict[str, Any]:
    """One step on a call by the signed-in account; answers the call's detail."""
    now, payload = now or now_utc(), dict(payload or {})
    call = _get(session, call_id, scope, lock=True)
    before, before_due = State(call.state), call.level_due
    lapsed = _lapse(session, call, now)
    if move in ("escalate", "flag"):
        raise IllegalMove(f"{move} is done by the system when a time limit runs out, not by hand",
                          detail={"move": move, "allowed": []})
    level = level_of(session, scope, call.grid_code, demo_level=demo_level)
    was_mine = W._rule(before, move)
    if lapsed and call.state != before.value and was_mine is not None and level in was_mine.levels:
        raise IllegalMove(f"too late: the time for {W.LEVEL_NAMES[level.value]} ran out at "
                          f"{_iso(before_due)} and call {call.id} went on to "
                          f"{W.STATE_NAMES[call.state]} (超时已自动上报)",
                          detail={"state": call.state, "level": level.value, "move": move, "allowed": []})
    _refuse_turn(call, move, level)
    actor = actor or scope.user
    if move == "withdraw" and actor != call.raised_by:
        raise NotYourTurn(f"only who raised call {call.id} ({call.raised_by}) may withdraw it")
    t = W.move(call.state, move, level=level, note=note, **payload)
    extra: dict[str, Any] = {}
    if move == "approve" and t.to_state is State.AT_DEPARTMENT and payload.get("department"):
        call.department = get_department(str(payload["department"])).code
    if move == "sign":
        call.signed_at, call.sign_on_time = now, (None if call.sign_due is None else now <= call.sign_due)
        extra = {"due": _iso(call.sign_due), "on_time": call.sign_on_time}
    elif move == "arrive":
        extra = _arrive(session, call, payload, now)
    elif move == "resolve":
        call.resolved_at = now
    if t.to_state.value != call.state:
        _enter(session, call, t.to_state, now)
    call.updated_at = now
    _event(session, call, move, t.from_state.value, t.to_state.value, level.value, actor, now, note,
           {**{k: v for k, v in payload.items() if k in ("department",)}, **extra})
    session.flush()
    return detail(session, call.id, scope, now=now, demo_level=demo_level)


# ----------------------------------------------------------------------------- reads

_FIELDS = ("id", "ticket_id", "category", "description", "department", "grid_code", "village_code", "town_code",
           "district_code", "raised_by", "raised_level", "state", "level_due", "sign_due", "onsite_due",
           "dispatched_at", "signed_at", "arrived_at", "arrive_distance_m", "sign_on_time", "onsite_on_time",
           "resolved_at", "overdue", "escalations", "created_at", "updated_at")


def _summary(call: Call, lonlat: tuple[float, float] | None = None) -> dict[str, Any]:
    out = {k: getattr(call, k) for k in _FIELDS}
    out["state_name"] = W.STATE_NAMES[call.state]
    out["department_name"] = get_department(call.department).name
    if lonlat is not None:
        out["lon"], out["lat"] = lonlat
    return out


def detail(session: Session, call_id: int, scope: Scope, *, now: datetime | None = None,
           demo_level: str | None = None) -> dict[str, Any]:
    """A call with its place, timeline and the moves the caller may make now (``my_moves``). What the
    clock did since the last look (a lapsed level escalated, a late department flagged) is applied first."""
    call = _get(session, call_id, scope, lock=True)
    if _lapse(session, call, now or now_utc()):
        session.flush()
    xy = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM calls WHERE id = :i"), {"i": call_id}).one()
    out = _summary(call, (float(xy[0]), float(xy[1])))
    try:
        level: Level | None = level_of(session, scope, call.grid_code, demo_level=demo_level)
    except NotYourTurn:
        level = None
    out["my_level"] = None if level is None else level.value
    moves: list[str] = [] if level is None else [m for m in W.allowed_moves(call.state, level) if m not in ("escalate", "flag")]
    if "withdraw" in moves and scope.user != call.raised_by and scope.user != Scope.demo().user:
        moves.remove("withdraw")
    out["my_moves"] = moves
    events = session.scalars(select(CallEvent).where(CallEvent.call_id == call_id)
                             .order_by(CallEvent.at, CallEvent.id)).all()
    out["timeline"] = [{"at": e.at, "actor": e.actor, "role": e.role, "move": e.move, "from_state": e.from_state,
                        "to_state": e.to_state, "note": e.note, "payload": e.payload} for e in events]
    return out


def list_calls(session: Session, scope: Scope, *, state: str | None = None, town: str | None = None,
               department: str | None = None, overdue: bool | None = None, limit: int = 50,
               offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """Calls the caller may see, newest first."""
    stmt = select(Call)
    if scope.role == "grid_worker":
        stmt = stmt.where(Call.grid_code.in_(scope.grid_codes))
    else:
        stmt = scope.filter(stmt, Call)
    if state:
        W._parse(State, state, "state")
        stmt = stmt.where(Call.state == state)
    for column, value in ((Call.town_code, town), (Call.department, department), (Call.overdue, overdue)):
        if value is not None:
            stmt = stmt.where(column == value)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit).offset(offset))
    return int(total or 0), [_summary(c) for c in rows]
