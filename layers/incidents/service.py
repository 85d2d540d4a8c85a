"""Tickets as a service (事件工单): intake, moves, revisits, cards, duplicates, split children.

Why one module of keyword-only functions over a Session: the API, the CLI and the simulation call the
same code, and none of them commits — the caller owns the transaction, so a refused request leaves
nothing half-written (every check runs before the first INSERT).

Conventions:
- Every change of state goes through :func:`plan_move` (pure: the workflow table, the deadlines, the
  100% revisit rule) and is written as one ``ticket_events`` row; the timeline is never rewritten.
- Intake writes a ``receive`` event (no from-state); ``card`` (yellow/red), ``duplicate``, ``place``
  and ``attach`` events keep the state. Deadlines in force are copied into the ``dispatch``, ``sign``
  and ``complete`` events' payloads (``sign_due``, ``due``, ``on_time``) so the KPIs can be recomputed
  from the events for any month even after an extension.
- A location that cannot be resolved (outside the city, an address that does not geocode, geocoding not
  installed) does not refuse the report: the ticket is ``received`` with ``unplaced=True`` and a reason,
  listed by ``list_tickets(unplaced=True)`` until someone places it (:func:`place_ticket`). Pass
  ``require_place=True`` to refuse instead (HTTP 400).
- The busiest requests are cheap: intake is three round trips (the resolver's registry version, the
  routing override and duplicate candidate together, the ticket and its event in one statement) and
  a move three (lock and read, write, timeline). :func:`create_and_detail` and
  :func:`move_and_detail` answer the write routes without reading back what they just wrote.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, Protocol

from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import bindparam, case, func, insert, inspect, select, text, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from gis import codes as C
from gis.coords import to_wgs84
from gis.errors import IllegalMove, InvalidInput, NotFound, OneMapError
from gis.locate import locate
from layers.accounts.scope import Scope
from layers.incidents import authz as A
from layers.incidents import sla
from layers.incidents.categories import (
    Route,
    Routing,
    get_category,
    get_department,
    load_departments,
    parse_severity,
    routing,
)
from layers.incidents.models import (
    CHANNELS,
    CITIZEN_CHANNELS,
    Attachment,
    DuplicateLink,
    RoutingOverride,
    Ticket,
    TicketEvent,
)
from layers.incidents.workflow import MOVES, OPEN, TERMINAL, Role, State, allowed_moves, move

DUPLICATE_M = 50.0
DUPLICATE_HOURS = 24.0
MIN_GEOCODE_CONFIDENCE = 0.5
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
ATTACHMENT_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG", "image/webp": b"RIFF"}
SYSTEM_ACTOR = "onemap"
MAX_EXTENSION = timedelta(days=366)  # a deadline extended into 2099 is a deadline switched off


class TicketLike(Protocol):
    """What :func:`plan_move` reads: an ORM ``Ticket`` or the simulation's in-memory ticket."""

    state: str
    channel: str
    category: str
    severity: str
    created_at: datetime
    sign_due: datetime | None
    complete_due: datetime | None
    co_units: list[str]
    rework_count: int


def now_utc() -> datetime:
    return datetime.now(UTC)


def _aware(at: datetime | None, what: str = "at") -> datetime:
    if at is None:
        return now_utc()
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{what} {at.isoformat()} needs a timezone, e.g. +08:00")
    return at


def mask_phone(phone: str | None) -> str | None:
    """138****1234: lists and Open311 never show a reporter's full number."""
    if not phone:
        return phone
    digits = phone.strip()
    if len(digits) < 8:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


# --------------------------------------------------------------------------- place


@dataclass(frozen=True)
class Place:
    """Where a report is: a WGS84 point and the codes it resolved to, or why it could not be placed."""

    lon: float | None = None
    lat: float | None = None
    grid_code: str | None = None
    village_code: str | None = None
    town_code: str | None = None
    district_code: str | None = None
    registry_version: int | None = None
    match: str | None = None
    distance_m: float | None = None
    address: str | None = None
    reason: str | None = None

    @property
    def placed(self) -> bool:
        return self.grid_code is not None


def _from_point(
    session: Session,
    lon: float,
    lat: float,
    crs: str,
    address: str | None,
    match: str | None = None,
) -> Place:
    x, y = to_wgs84([lon], [lat], crs)
    wlon, wlat = float(x[0]), float(y[0])
    if not (-180 <= wlon <= 180 and -90 <= wlat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) in {crs} is not a valid position")
    loc = locate(session, wlon, wlat)
    base = Place(lon=wlon, lat=wlat, address=address, registry_version=loc.registry_version)
    if loc.grid_code is None:
        return replace(
            base,
            match=loc.match,
            reason=f"point ({wlon:.6f}, {wlat:.6f}) is outside every grid ({loc.match})",
        )
    return replace(
        base,
        grid_code=loc.grid_code,
        village_code=loc.village_code,
        town_code=loc.town_code,
        district_code=loc.district_code,
        match=match or loc.match,
        distance_m=loc.distance_m,
    )


def _geocode(session: Session, address: str) -> tuple[Any, str | None]:
    """Call ``gis.geocode.geocode`` when it is installed; (result, None) or (None, reason)."""
    if importlib.util.find_spec("gis.geocode") is None:
        return None, "address geocoding is not available (gis.geocode not installed)"
    from gis import geocode  # noqa: PLC0415 - optional module, written by another layer

    try:
        result = geocode.geocode(session, address)
    except OneMapError as exc:
        return None, f"address not found: {exc.message}"
    if result is None or getattr(result, "lon", None) is None:
        status = getattr(result, "status", "unmatched")
        why = getattr(result, "reason", None) or "no standard address matches"
        return None, f"address {status}: {why} ({address})"
    confidence = getattr(result, "confidence", None)
    if confidence is not None and float(confidence) < MIN_GEOCODE_CONFIDENCE:
        return None, f"address matched with low confidence {float(confidence):.2f}: {address}"
    return result, None


def resolve_place(
    session: Session,
    *,
    lon: float | None = None,
    lat: float | None = None,
    crs: str = "EPSG:4326",
    address: str | None = None,
) -> Place:
    """Coordinates win over an address; an address is geocoded; neither is a 400."""
    address = (address or "").strip() or None
    if (lon is None) != (lat is None):
        raise InvalidInput("give both lon and lat, or neither (and an address)")
    if lon is not None and lat is not None:
        return _from_point(session, float(lon), float(lat), crs, address)
    if address is None:
        raise InvalidInput("a ticket needs a location: lon and lat (with crs), or an address")
    result, reason = _geocode(session, address)
    if result is None:
        return Place(address=address, reason=reason)
    matched = next(
        (
            getattr(result, k)
            for k in ("matched", "matched_address", "address")
            if getattr(result, k, None)
        ),
        None,
    )
    place = _from_point(
        session, float(result.lon), float(result.lat), "EPSG:4326", address, match="geocoded"
    )
    note = f" (matched {matched})" if matched else ""
    if not place.placed:
        return replace(place, reason=f"geocoded address is outside every grid{note}")
    return place


# --------------------------------------------------------------------------- routing


def routing_table(session: Session) -> Routing:
    """CSV defaults with the planners' overrides from ``routing_overrides`` applied."""
    rows = session.scalars(select(RoutingOverride)).all()
    return routing(
        {r.category: {"department": r.department, "needs_town": r.needs_town} for r in rows}
    )


def set_route(
    session: Session, category: str, *, department: str, needs_town: bool, who: str, why: str = ""
) -> RoutingOverride:
    """A planner changes where a category goes; validated before it is saved."""
    code = get_category(category).code
    routing({code: {"department": department, "needs_town": needs_town}})  # validates
    row = session.get(RoutingOverride, code) or RoutingOverride(category=code)
    row.department, row.needs_town, row.who, row.why, row.at = (
        department,
        needs_town,
        who,
        why,
        now_utc(),
    )
    session.add(row)
    session.flush()
    return row


# --------------------------------------------------------------------------- events


def _jsonable(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in payload.items()}


def _event(
    session: Session,
    ticket: Ticket,
    *,
    at: datetime,
    actor: str,
    role: str,
    move: str,
    from_state: str | None,
    to_state: str,
    note: str | None = None,
    rework: bool = False,
    payload: Mapping[str, Any] | None = None,
) -> TicketEvent:
    ev = TicketEvent(
        ticket_id=ticket.id,
        at=at,
        actor=actor,
        role=role,
        move=move,
        from_state=from_state,
        to_state=to_state,
        note=note,
        rework=rework,
        payload=_jsonable(payload or {}),
    )
    session.add(ev)
    return ev


# The two writes every request makes (intake: a ticket and its ``receive`` event; a move: the ticket's
# new fields and the move's event) go out as ONE statement each, a data-modifying CTE, instead of the
# ORM's two flushes: the event is inserted from the CTE's RETURNING row, so an UPDATE that matched no
# row writes no event either. The NOTIFY trigger on ticket_events fires after the whole statement
# and sees the ticket as written. The ORM objects are then given exactly the bookkeeping a flush
# gives them (identity, committed attributes, rolled back with the transaction): the caller cannot
# tell the difference, only the round trips and the unit-of-work overhead are gone.
_TICKETS = Ticket.__table__
_EVENTS = TicketEvent.__table__
_EVENT_COLUMNS = ("at", "actor", "role", "move", "from_state", "to_state", "note", "rework", "payload")


def _event_values(
    *,
    at: datetime,
    actor: str,
    role: str,
    move: str,
    from_state: str | None,
    to_state: str,
    note: str | None = None,
    rework: bool = False,
    payload: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An event row's columns (all but the ids), as :func:`_event` stores them."""
    return {"at": at, "actor": actor, "role": role, "move": move, "from_state": from_state,
            "to_state": to_state, "note": note, "rework": rework, "payload": _jsonable(payload or {})}


@lru_cache(maxsize=64)
def _write_statement(ticket_columns: tuple[str, ...], *, new: bool) -> Any:
    """The one statement of a write, built once per set of ticket columns: a CTE that INSERTs the
    ticket (``new``) or UPDATEs ``ticket_columns`` of ticket ``:ticket_id``, then
    INSERT INTO ticket_events SELECT <cte>.id, <event columns> FROM <cte> RETURNING ticket_id, id.
    Parameters: ``t_<column>`` for the ticket, ``e_<column>`` for the event."""
    values = {k: bindparam(f"t_{k}", type_=_TICKETS.c[k].type) for k in ticket_columns}
    if new:
        source = insert(_TICKETS).values(values).returning(_TICKETS.c.id).cte("received")
    else:
        source = (
            update(_TICKETS)
            .where(_TICKETS.c.id == bindparam("ticket_id", type_=_TICKETS.c.id.type))
            .values(values)
            .returning(_TICKETS.c.id)
            .cte("moved")
        )
    row = select(
        source.c.id, *(bindparam(f"e_{c}", type_=_EVENTS.c[c].type) for c in _EVENT_COLUMNS)
    )
    return (
        insert(_EVENTS)
        .from_select(["ticket_id", *_EVENT_COLUMNS], row)
        .returning(_EVENTS.c.ticket_id, _EVENTS.c.id)
    )


def _write_params(
    ticket: Mapping[str, Any], event: Mapping[str, Any], **more: Any
) -> dict[str, Any]:
    return {**{f"t_{k}": v for k, v in ticket.items()},
            **{f"e_{k}": event[k] for k in _EVENT_COLUMNS}, **more}


def _persisted(session: Session, *objects: Any) -> None:
    """Register objects whose rows were just written by our own statement as a flush would: pending
    ones become persistent (and are expunged again if the transaction rolls back), changed ones are
    marked clean with their new values as the committed state."""
    session._register_persistent({inspect(o) for o in objects})  # noqa: SLF001 - a flush's own step


def _insert_received(
    session: Session, columns: Mapping[str, Any], event: Mapping[str, Any]
) -> tuple[Ticket, TicketEvent]:
    """INSERT the ticket and its receive event in one statement; both objects come back persistent."""
    session.flush()  # anything the caller left pending goes first, as it would in one flush
    stmt = _write_statement(tuple(columns), new=True)
    ticket_id, event_id = session.execute(stmt, _write_params(columns, event)).one()
    with session.no_autoflush:
        ticket = Ticket(id=ticket_id, **columns)
        ev = TicketEvent(id=event_id, ticket_id=ticket_id, **event)
        session.add_all((ticket, ev))
        _persisted(session, ticket, ev)
    return ticket, ev


def _update_with_event(
    session: Session, ticket: Ticket, changes: Mapping[str, Any], event: Mapping[str, Any]
) -> TicketEvent:
    """UPDATE the ticket's changed fields and INSERT the move's event in one statement."""
    session.flush()  # earlier pending events of this ticket keep their place in the timeline
    stmt = _write_statement(tuple(changes), new=False)
    row = session.execute(stmt, _write_params(changes, event, ticket_id=ticket.id)).first()
    if row is None:
        raise NotFound(f"no ticket {ticket.id}")
    event_id = row[1]
    with session.no_autoflush:
        for key, value in changes.items():
            setattr(ticket, key, value)
        ev = TicketEvent(id=event_id, ticket_id=ticket.id, **event)
        session.add(ev)
        _persisted(session, ticket, ev)
    return ev


def _frozen_place(place: Place) -> dict[str, Any]:
    """The location columns a ticket freezes at intake: point, areas, registry version, match."""
    return {
        "geom": None if place.lon is None else from_shape(Point(place.lon, place.lat), srid=4326),
        "grid_code": place.grid_code,
        "village_code": place.village_code,
        "town_code": place.town_code,
        "district_code": place.district_code,
        "registry_version": place.registry_version,
        "match": place.match,
        "distance_m": place.distance_m,
    }


def _fresh(at: datetime) -> dict[str, Any]:
    """The workflow columns of a ticket just received at ``at``."""
    return {"state": State.RECEIVED.value, "co_units": [], "rework_count": 0, "revisited": False,
            "card": "ok", "created_at": at, "updated_at": at}


def get_ticket(session: Session, ticket_id: int, *, lock: bool = False, scope: Scope | None = None) -> Ticket:
    """One ticket; with ``scope``, another area's ticket is answered exactly like a missing one."""
    stmt = select(Ticket).where(Ticket.id == ticket_id)
    ticket = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    if scope is not None:
        scope.check(ticket, f"ticket {ticket_id}")
    return ticket


# --------------------------------------------------------------------------- intake


def _check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    return channel


_DUPLICATE_SQL = """
        SELECT t.id, ST_Distance(t.geom::geography, p.g::geography),
               extract(epoch FROM (:at - t.created_at)) / 60.0,
               t.grid_code, t.village_code, t.town_code, t.district_code, t.department, t.assignee,
               t.co_units
        FROM tickets t, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
        WHERE t.category = :cat AND t.duplicate_of IS NULL AND t.parent_id IS NULL
          AND t.state NOT IN ('closed', 'signed_off') AND t.geom IS NOT NULL
          AND t.created_at BETWEEN :since AND :at
          AND t.geom && ST_Expand(p.g, :deg)
          AND ST_DWithin(t.geom::geography, p.g::geography, :metres)
        ORDER BY t.created_at, t.id LIMIT :candidates"""

# Intake asks two things of the database at once: the planners' override for the category (if any)
# and the duplicate candidate (when the report is placed): one round trip instead of two.
_INTAKE_SQL = text(f"""
    SELECT o.department, o.needs_town, d.*
    FROM (SELECT 1) one
    LEFT JOIN routing_overrides o ON o.category = :cat
    LEFT JOIN LATERAL ({_DUPLICATE_SQL}) d ON true""")
_OVERRIDE_SQL = text("SELECT department, needs_town FROM routing_overrides WHERE category = :cat")


# A scoped caller's duplicate is the first candidate it may see; more than this many open reports of
# one category within 50 m and 24 h, all outside the caller's area, do not happen.
SCOPED_CANDIDATES = 20
_SCOPE_COLUMNS = ("grid_code", "village_code", "town_code", "district_code", "department", "assignee",
                  "co_units")


def _duplicate_params(category: str, lon: float, lat: float, at: datetime,
                      scope: Scope | None = None) -> dict[str, Any]:
    return {
        "candidates": 1 if scope is None or scope.city_wide else SCOPED_CANDIDATES,
        "lon": lon,
        "lat": lat,
        "at": at,
        "cat": category,
        "since": at - timedelta(hours=DUPLICATE_HOURS),
        "metres": DUPLICATE_M,
        "deg": DUPLICATE_M / 80000.0,
    }


def find_duplicate(
    session: Session, *, category: str, lon: float, lat: float, at: datetime, scope: Scope | None = None
) -> tuple[int, float, float] | None:
    """The first open ticket of this category within 50 m and the 24 h before ``at`` (that ``scope``
    sees: a caller never learns of, nor writes into, another area's ticket)."""
    rows = session.execute(
        text(_DUPLICATE_SQL), _duplicate_params(category, lon, lat, at, scope)
    ).all()
    return _first_visible(rows, 0, scope)


def _first_visible(rows: Any, start: int, scope: Scope | None) -> tuple[int, float, float] | None:
    """The first candidate (columns from ``start``: id, metres, minutes, then the scope columns)
    that ``scope`` sees."""
    for row in rows:
        if row[start] is None:
            continue
        codes = dict(zip(_SCOPE_COLUMNS, row[start + 3:start + 10], strict=True))
        if scope is None or scope.sees(codes):
            return int(row[start]), float(row[start + 1]), float(row[start + 2])
    return None


def _route_of(category: str, override: Any) -> Route:
    """The CSV default, or the planners' override (its department checked, as when it was saved)."""
    if override is None or override[0] is None:
        cat = get_category(category)
        return Route(cat.code, cat.department, cat.needs_town)
    get_department(override[0])
    return Route(category, override[0], bool(override[1]))


def _intake_lookup(
    session: Session, category: str, place: Place, at: datetime, dedupe: bool, scope: Scope | None
) -> tuple[Route, tuple[int, float, float] | None]:
    """The route of ``category`` (override or CSV default) and, for a placed report with ``dedupe``,
    the duplicate candidate (:func:`find_duplicate`, within ``scope``), in one statement."""
    if not (dedupe and place.placed and place.lon is not None and place.lat is not None):
        row = session.execute(_OVERRIDE_SQL, {"cat": category}).first()
        return _route_of(category, row), None
    rows = session.execute(
        _INTAKE_SQL,
        _duplicate_params(category, place.lon, place.lat, at, scope)
    ).all()
    return _route_of(category, rows[0]), _first_visible(rows, 2, scope)


def _link_duplicate(
    session: Session, ticket: Ticket, found: tuple[int, float, float], *, at: datetime
) -> TicketEvent:
    """No new work: the new report is closed (不予立案, duplicate) and linked to the first one;
    returns the new report's ``reject`` event."""
    first_id, distance, minutes = found
    ticket.duplicate_of = first_id
    session.add(
        DuplicateLink(
            ticket_id=ticket.id, duplicate_of=first_id, distance_m=distance, minutes_apart=minutes
        )
    )
    note = f"重复上报，已并入工单 #{first_id}（相距 {distance:.0f} 米）"
    tr = move(ticket.state, "reject", role=Role.DISTRICT, note=note)
    reject = _event(
        session,
        ticket,
        at=at,
        actor=f"{SYSTEM_ACTOR}:dedupe",
        role=Role.DISTRICT.value,
        move="reject",
        from_state=ticket.state,
        to_state=tr.to_state.value,
        note=note,
        payload={"duplicate_of": first_id},
    )
    ticket.state, ticket.closed_at = tr.to_state.value, at
    first = get_ticket(session, first_id)
    _event(
        session,
        first,
        at=at,
        actor=f"{SYSTEM_ACTOR}:dedupe",
        role=Role.SYSTEM.value,
        move="duplicate",
        from_state=first.state,
        to_state=first.state,
        note=f"重复上报 #{ticket.id}",
        payload={"ticket": ticket.id, "distance_m": distance},
    )
    return reject


def create_ticket(session: Session, **fields: Any) -> Ticket:
    """Receive a report (受理): validate, resolve and freeze its place, route it, start its clock.
    The fields are :func:`intake`'s; this answers the ticket alone."""
    return intake(session, **fields)[0]


def create_and_detail(session: Session, *, scope: Scope | None = None, **fields: Any) -> dict[str, Any]:
    """:func:`create_ticket` answered with its :func:`detail` (the ``POST /tickets`` answer), built from
    what was just written instead of read back: a new ticket's timeline is the events intake wrote,
    and it has no children and no photos yet. With ``scope``: duplicates within it only, the phone as
    that caller may see it, and its ``actor_role`` / ``my_moves``."""
    ticket, events = intake(session, scope=scope, **fields)
    tz = _read_tz(session)
    return _detail(ticket, timeline=[_as_read(_event_row(e), tz) for e in events], children=[],
                   attachments=[], now=None, scope=scope)


# The columns intake leaves empty, named so the new object is complete without a read-back.
_NOT_YET = dict.fromkeys(("assignee", "parent_id", "duplicate_of", "satisfied", "dispatched_at",
                          "sign_due", "onsite_due", "complete_due", "closed_at"))


def _read_tz(session: Session) -> tzinfo | None:
    """The time zone the database answers timestamps in (the connection's TimeZone setting)."""
    driver = getattr(session.connection().connection, "driver_connection", None)
    return getattr(getattr(driver, "info", None), "timezone", None)


def _jsonb_order(value: Any) -> Any:
    """A JSON value with its object keys in the order PostgreSQL's jsonb keeps them (shorter keys
    first, then bytewise), as a payload reads back from ``ticket_events``."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return {k: _jsonb_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [_jsonb_order(v) for v in value]
    return value


def _as_read(row: dict[str, Any], tz: tzinfo | None) -> dict[str, Any]:
    """A detail or timeline row as it reads back from the database: timestamps in the connection's
    time zone, event payloads in jsonb key order. The answers of the write routes are built from
    what was just written, and must not differ from the re-read they replace even in how a moment
    is spelled (``+00:00`` or ``+08:00``)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime) and tz is not None:
            value = value.astimezone(tz)
        elif key == "timeline":
            value = [_as_read(e, tz) for e in value]
        elif key == "payload":
            value = _jsonb_order(value)
        out[key] = value
    return out


def intake(
    session: Session,
    *,
    channel: str,
    category: str,
    description: str,
    severity: str = "general",
    lon: float | None = None,
    lat: float | None = None,
    crs: str = "EPSG:4326",
    address: str | None = None,
    reporter_name: str | None = None,
    reporter_phone: str | None = None,
    source_ref: str | None = None,
    actor: str = "intake",
    at: datetime | None = None,
    require_place: bool = False,
    dedupe: bool = True,
    scope: Scope | None = None,
) -> tuple[Ticket, list[TicketEvent]]:
    """Receive a report (受理); returns the ticket and its events (receive, and reject for a duplicate), in
    order. ``require_place`` refuses a report that cannot be placed; ``dedupe`` looks for an open report
    of the same category nearby and closes this one as its duplicate.

    ``scope`` is the filing caller's: the duplicate is looked for only among the tickets it sees. A
    report next to another area's open ticket is NOT linked to it, silently or otherwise: linking would
    either name that ticket to the caller or close the report for a reason the caller may not be told
    (itself a hint that another area has an open ticket there), and would write an event into a ticket
    the caller cannot see. The report stays a ticket of its own; the district desk, which sees both,
    rejects one as a duplicate if it is one. Callers without a scope (sensors, cameras, the CLI) and
    city-wide callers dedupe across the whole city as before."""
    at = _aware(at)
    _check_channel(channel)
    cat = get_category(category)
    sev = parse_severity(severity)
    if not (description or "").strip():
        raise InvalidInput("a ticket needs a description")
    place = resolve_place(session, lon=lon, lat=lat, crs=crs, address=address)
    if require_place and not place.placed:
        raise InvalidInput(
            f"location could not be resolved: {place.reason}", detail={"reason": place.reason}
        )
    session.flush()  # a planner's pending override counts, as an ORM query would autoflush it
    route, found = _intake_lookup(session, cat.code, place, at, dedupe, scope)
    columns = {
        "channel": channel,
        "category": cat.code,
        "severity": sev.value,
        "description": description.strip(),
        "reporter_name": reporter_name,
        "reporter_phone": reporter_phone,
        "source_ref": source_ref,
        "address": place.address,
        **_frozen_place(place),
        "unplaced": not place.placed,
        "unplaced_reason": place.reason,
        "department": route.department,
        "needs_town": route.needs_town,
        **_fresh(at),
        "dispatch_due": sla.deadline(at, cat, sev, "dispatch"),
        **_NOT_YET,
    }
    receive = _event_values(
        at=at,
        actor=actor,
        role=Role.SYSTEM.value,
        move="receive",
        from_state=None,
        to_state=State.RECEIVED.value,
        payload={
            "channel": channel,
            "unplaced": not place.placed,
            "reason": place.reason,
            "grid_code": place.grid_code,
            "department": route.department,
        },
    )
    ticket, ev = _insert_received(session, columns, receive)
    events = [ev]
    if found is not None:
        events.append(_link_duplicate(session, ticket, found, at=at))
        session.flush()
    return ticket, events


def place_ticket(
    session: Session,
    ticket_id: int,
    *,
    lon: float,
    lat: float,
    crs: str = "EPSG:4326",
    actor: str,
    role: str = "district",
    at: datetime | None = None,
    scope: Scope | None = None,
) -> Ticket:
    """Give an unplaced ticket its place (the desk found it on the map); recorded as a ``place`` event."""
    at = _aware(at)
    ticket = get_ticket(session, ticket_id, lock=True, scope=scope)
    if not ticket.unplaced:
        raise IllegalMove(
            f"ticket {ticket_id} is already placed in grid {ticket.grid_code}",
            detail={"allowed": []},
        )
    place = _from_point(session, lon, lat, crs, ticket.address)
    if not place.placed:
        raise InvalidInput(place.reason or "outside every grid")
    for key in (
        "grid_code",
        "village_code",
        "town_code",
        "district_code",
        "registry_version",
        "match",
        "distance_m",
    ):
        setattr(ticket, key, getattr(place, key))
    ticket.geom = from_shape(Point(place.lon, place.lat), srid=4326)
    ticket.unplaced, ticket.unplaced_reason, ticket.updated_at = False, None, at
    _event(
        session,
        ticket,
        at=at,
        actor=actor,
        role=role,
        move="place",
        from_state=ticket.state,
        to_state=ticket.state,
        payload={"grid_code": place.grid_code, "lon": place.lon, "lat": place.lat},
    )
    session.flush()
    return ticket


# --------------------------------------------------------------------------- moves


def _check_assignee(code: str) -> str:
    """A town/street (12 digits, town level), a village (for split children) or a department."""
    if code in load_departments():
        return code
    if code.isdigit() and len(code) == 12:
        level = C.level_of(code)
        return C.validate_area_code(code, level)
    raise InvalidInput(
        f"assignee {code!r} is neither a 12-digit town code nor a department code "
        f"({', '.join(load_departments())})"
    )


def _parse_until(payload: dict[str, Any]) -> None:
    value = payload.get("until")
    if isinstance(value, str):
        try:
            payload["until"] = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"until {value!r} is not an ISO datetime") from None


def _enforce_revisit(t: TicketLike, move_name: str, role: str) -> None:
    """100% 回访: a citizen's ticket cannot close from reviewed without a revisit."""
    if move_name == "close" and t.state == State.REVIEWED and t.channel in CITIZEN_CHANNELS:
        allowed = [m for m in allowed_moves(t.state, role) if m != "close"]
        raise IllegalMove(
            f"a {t.channel} ticket must be revisited (回访) before it is closed; allowed: "
            f"{', '.join(allowed) or 'none'}",
            detail={"state": t.state, "role": role, "move": move_name, "allowed": allowed},
        )


def _due(kind: str, at: datetime, t: TicketLike) -> datetime | None:
    try:
        return sla.deadline(at, t.category, t.severity, kind)  # type: ignore[arg-type]
    except InvalidInput:  # no on-site clock for this category
        return None


def _dispatch_changes(t: TicketLike, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    assignee = _check_assignee(str(payload["assignee"]))
    sign_due, complete_due = _due("sign", at, t), _due("complete", at, t)
    payload.update(sign_due=sign_due, complete_due=complete_due)
    return {
        "assignee": assignee,
        "dispatched_at": at,
        "sign_due": sign_due,
        "complete_due": complete_due,
        "onsite_due": _due("onsite", at, t),
    }


def _extension(until: datetime, at: datetime) -> datetime:
    """An approved extension (延期) is a new deadline after the move and within a year of it."""
    until = _aware(until, "until")
    if not at < until <= at + MAX_EXTENSION:
        raise InvalidInput(
            f"until {until.isoformat()} must be after the extension is granted ({at.isoformat()}) "
            f"and at most {MAX_EXTENSION.days} days later"
        )
    return until


def _on_time(due: datetime | None, at: datetime, payload: dict[str, Any]) -> None:
    payload["due"] = due
    payload["on_time"] = None if due is None else at <= due


def plan_move(
    t: TicketLike,
    move_name: str,
    *,
    role: str,
    at: datetime,
    note: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ticket's new fields and the event row for a move, without touching the database.

    Shared by :func:`apply_move` and the bulk simulation so both write the same rows.
    """
    payload = dict(payload or {})
    _parse_until(payload)
    if at < t.created_at:
        raise InvalidInput(f"a move at {at.isoformat()} is before the ticket was received")
    _enforce_revisit(t, move_name, role)
    tr = move(t.state, move_name, role=role, note=note, **payload)
    out = dict(tr.payload)
    changes: dict[str, Any] = {"state": tr.to_state.value, "updated_at": at}
    if tr.move in ("grab", "dispatch"):
        changes.update(_dispatch_changes(t, at, out))
    elif tr.move == "sign":
        _on_time(t.sign_due, at, out)
    elif tr.move == "complete":
        _on_time(t.complete_due, at, out)
    elif tr.move == "extend":
        changes["complete_due"] = _extension(out["until"], at)
        out["previous_due"] = t.complete_due
    elif tr.move == "join":
        for unit in out["units"]:
            get_department(unit)
        changes["co_units"] = sorted(set(t.co_units or []) | set(out["units"]))
    elif tr.move == "return":
        changes["dispatch_due"] = _due("dispatch", at, t)
    elif tr.move == "revisit":
        changes.update(revisited=True, satisfied=out["satisfied"])
    if tr.rework:
        changes["rework_count"] = (t.rework_count or 0) + 1
    if tr.to_state in TERMINAL:
        changes["closed_at"] = at
    event = {**tr.event(), "payload": _jsonable(out), "at": at}
    return changes, event


def _villages(session: Session, ticket: Ticket, villages: list[str]) -> list[Place]:
    """One place per target village: the ticket's own point in its village, else a point inside."""
    places = []
    for code in villages:
        C.validate_area_code(code, C.Level.VILLAGE)
        if ticket.town_code and code[:9] != ticket.town_code[:9]:
            raise InvalidInput(f"village {code} is not in the ticket's town {ticket.town_code}")
        if code == ticket.village_code and ticket.geom is not None:
            p = to_shape(ticket.geom)
            places.append(_from_point(session, p.x, p.y, "EPSG:4326", ticket.address))
            continue
        row = session.execute(
            text(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM areas "
                "WHERE code = :c AND valid_to IS NULL) s"
            ),
            {"c": code},
        ).first()
        if row is None:
            raise InvalidInput(f"unknown village {code}")
        places.append(_from_point(session, row[0], row[1], "EPSG:4326", ticket.address))
    return places


def _split_children(
    session: Session, parent: Ticket, places: list[Place], *, actor: str, at: datetime
) -> list[int]:
    """分单: one child per village, dispatched by the town to that village at once."""
    ids = []
    for place in places:
        child = Ticket(
            channel=parent.channel,
            category=parent.category,
            severity=parent.severity,
            description=parent.description,
            reporter_name=parent.reporter_name,
            reporter_phone=parent.reporter_phone,
            address=parent.address,
            **_frozen_place(place),
            unplaced=False,
            department=parent.department,
            needs_town=parent.needs_town,
            parent_id=parent.id,
            **_fresh(at),
            dispatch_due=parent.dispatch_due,
        )
        session.add(child)
        session.flush()
        _event(
            session,
            child,
            at=at,
            actor=actor,
            role=Role.TOWN.value,
            move="receive",
            from_state=None,
            to_state=State.RECEIVED.value,
            payload={"parent_id": parent.id},
        )
        changes, ev = plan_move(
            child,
            "dispatch",
            role=Role.SYSTEM.value,
            at=at,
            payload={"assignee": place.village_code},
        )
        _apply(session, child, changes, ev, actor=actor)
        ids.append(child.id)
    return ids


def _apply(
    session: Session,
    ticket: Ticket,
    changes: Mapping[str, Any],
    ev: Mapping[str, Any],
    *,
    actor: str,
) -> TicketEvent:
    """Write a planned move: the ticket's new fields and the event, in one statement."""
    event = _event_values(
        at=ev["at"],
        actor=actor,
        role=ev["role"],
        move=ev["move"],
        from_state=ev["from_state"],
        to_state=ev["to_state"],
        note=ev["note"],
        rework=ev["rework"],
        payload=ev["payload"],
    )
    return _update_with_event(session, ticket, changes, event)


def _move_checks(at: datetime | None, actor: str, move_name: str) -> datetime:
    at = _aware(at)
    if not actor or not actor.strip():
        raise InvalidInput("a move needs an actor (who made it)")
    if move_name not in MOVES:
        raise InvalidInput(f"unknown move {move_name!r}; moves are {', '.join(MOVES)}")
    return at


def _move(
    session: Session,
    ticket: Ticket,
    move_name: str,
    *,
    actor: str,
    role: str,
    note: str | None,
    payload: Mapping[str, Any] | None,
    at: datetime,
) -> None:
    """The move on a locked ticket: plan it, write it, create split children."""
    if ticket.duplicate_of is not None:
        raise IllegalMove(
            f"ticket {ticket.id} is a duplicate of {ticket.duplicate_of}; act on that",
            detail={"allowed": [], "duplicate_of": ticket.duplicate_of},
        )
    changes, ev = plan_move(ticket, move_name, role=role, at=at, note=note, payload=payload)
    places = _villages(session, ticket, ev["payload"]["villages"]) if move_name == "split" else []
    _apply(session, ticket, changes, ev, actor=actor)
    if places:
        _split_children(session, ticket, places, actor=actor, at=at)
        session.flush()


def apply_move(
    session: Session,
    ticket_id: int,
    move_name: str,
    *,
    actor: str,
    role: str,
    note: str | None = None,
    payload: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    scope: Scope | None = None,
    acting: A.Actor | None = None,
) -> Ticket:
    """Make one move (抢单/派单/分单/联单/返单, sign, complete, review, revisit, close, ...);
    with ``scope``, only on a ticket the caller sees (else 404, as if it did not exist); with
    ``acting`` (a signed-in account), as that account's workflow role and only where that account
    may act (:func:`layers.incidents.authz.authorize`, else 403)."""
    at = _move_checks(at, actor, move_name)
    ticket = get_ticket(session, ticket_id, lock=True, scope=scope)
    role, payload = _as_actor(acting, ticket, move_name, role, payload)
    _move(session, ticket, move_name, actor=actor, role=role, note=note, payload=payload, at=at)
    return ticket


def _as_actor(acting: A.Actor | None, ticket: Ticket, move_name: str, role: str,
              payload: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any] | None]:
    """The role and payload of a move made by ``acting``: its own role, its checked payload."""
    if acting is None:
        return role, payload
    return acting.role.value, A.authorize(acting, ticket, move_name, dict(payload or {}))


def move_and_detail(
    session: Session,
    ticket_id: int,
    move_name: str,
    *,
    actor: str,
    role: str,
    note: str | None = None,
    payload: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    scope: Scope | None = None,
    acting: A.Actor | None = None,
) -> dict[str, Any] | None:
    """:func:`apply_move` answered with the ticket's :func:`detail` (the answer of a move over the
    API), or None when the move took the ticket out of ``scope`` (a dispatch to a department).

    The ticket is locked and read together with its children and photos (a move adds neither,
    except a split, whose children are read again); the timeline is read after the write."""
    at = _move_checks(at, actor, move_name)
    ticket, children, attachments = _load(session, ticket_id, lock=True, scope=scope)
    role, payload = _as_actor(acting, ticket, move_name, role, payload)
    _move(session, ticket, move_name, actor=actor, role=role, note=note, payload=payload, at=at)
    if move_name == "split":
        children = list(session.scalars(_CHILDREN, {"ticket_id": ticket.id}))
    if scope is not None and not scope.sees(ticket):
        return None
    out = _detail(ticket, timeline=timeline(session, ticket.id), children=children,
                  attachments=attachments, now=None, scope=scope)
    return _as_read(out, _read_tz(session))


def revisit(
    session: Session,
    ticket_id: int,
    *,
    actor: str,
    satisfaction: int | str,
    note: str | None = None,
    role: str = "district",
    at: datetime | None = None,
) -> Ticket:
    """回访: 1-5 (3 and up satisfied) or words; an unsatisfied citizen sends it back for rework."""
    return apply_move(
        session,
        ticket_id,
        "revisit",
        actor=actor,
        role=role,
        note=note,
        payload={"satisfaction": satisfaction},
        at=at,
    )


# --------------------------------------------------------------------------- cards


def running_clock(t: Ticket) -> tuple[str, datetime, datetime] | None:
    """The deadline that is running for the ticket's state: (kind, started, due), or None."""
    state = t.state
    if state == State.RECEIVED and t.dispatch_due:
        return "dispatch", t.created_at, t.dispatch_due
    if state == State.RETURNED and t.dispatch_due:
        return "dispatch", t.updated_at, t.dispatch_due
    if state == State.DISPATCHED and t.sign_due and t.dispatched_at:
        return "sign", t.dispatched_at, t.sign_due
    if state in (State.SIGNED, State.HANDLING) and t.complete_due and t.dispatched_at:
        return "complete", t.dispatched_at, t.complete_due
    return None


def card_for(t: Ticket, now: datetime) -> tuple[str, str | None, datetime | None]:
    """(card, clock kind, due) for a ticket at ``now`` — ok once no clock of the handler runs."""
    clock = running_clock(t)
    if clock is None:
        return "ok", None, None
    kind, start, due = clock
    card = sla.card_state(now, start, due, clock=sla.clock_of(t.category, t.severity))
    return card, kind, due


def refresh_cards(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Recompute yellow/red cards (黄牌警示、红牌督办); a ``card`` event for every change."""
    now = _aware(now, "now")
    stmt = (
        select(Ticket)
        .where(Ticket.duplicate_of.is_(None))
        .where(Ticket.state.in_([s.value for s in OPEN]) | (Ticket.card != "ok"))
    )
    counts = {"checked": 0, "changed": 0, "yellow": 0, "red": 0}
    for t in session.scalars(stmt):
        counts["checked"] += 1
        card, kind, due = card_for(t, now)
        if card != "ok":
            counts[card] += 1
        if card == t.card:
            continue
        counts["changed"] += 1
        _event(
            session,
            t,
            at=max(now, t.updated_at),
            actor=f"{SYSTEM_ACTOR}:sla",
            role=Role.SYSTEM.value,
            move="card",
            from_state=t.state,
            to_state=t.state,
            payload={"card": card, "was": t.card, "clock": kind, "due": due},
        )
        t.card = card
    session.flush()
    return counts


# --------------------------------------------------------------------------- attachments


def add_attachment(
    session: Session,
    ticket_id: int,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    uploaded_by: str,
    role: str = Role.SYSTEM.value,
    at: datetime | None = None,
    scope: Scope | None = None,
) -> Attachment:
    """A photo (JPEG, PNG or WebP, at most 5 MB) whose bytes match its declared type."""
    at = _aware(at)
    ticket = get_ticket(session, ticket_id, scope=scope)
    magic = ATTACHMENT_TYPES.get(content_type)
    if magic is None:
        raise InvalidInput(
            f"attachment type {content_type!r} not accepted; use {', '.join(ATTACHMENT_TYPES)}"
        )
    if not data:
        raise InvalidInput("attachment is empty")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(f"attachment is {len(data)} bytes; the limit is {MAX_ATTACHMENT_BYTES}")
    if not data.startswith(magic):
        raise InvalidInput(f"attachment {filename!r} is not a {content_type} file")
    row = Attachment(
        ticket_id=ticket.id,
        filename=filename[:200],
        content_type=content_type,
        size=len(data),
        data=data,
        uploaded_by=uploaded_by,
        created_at=at,
    )
    session.add(row)
    session.flush()
    _event(
        session,
        ticket,
        at=at,
        actor=uploaded_by,
        role=role,
        move="attach",
        from_state=ticket.state,
        to_state=ticket.state,
        payload={"attachment_id": row.id, "filename": row.filename, "size": row.size},
    )
    session.flush()
    return row


def get_attachment(session: Session, ticket_id: int, attachment_id: int, *,
                   scope: Scope | None = None) -> Attachment:
    if scope is not None:
        get_ticket(session, ticket_id, scope=scope)
    row = session.get(Attachment, attachment_id)
    if row is None or row.ticket_id != ticket_id:
        raise NotFound(f"no attachment {attachment_id} on ticket {ticket_id}")
    return row


# --------------------------------------------------------------------------- reading


def lonlat(t: Ticket) -> tuple[float | None, float | None]:
    if t.geom is None:
        return None, None
    p = to_shape(t.geom)
    return round(p.x, 7), round(p.y, 7)


SUMMARY_FIELDS = (
    "id",
    "channel",
    "category",
    "severity",
    "state",
    "grid_code",
    "village_code",
    "town_code",
    "district_code",
    "department",
    "assignee",
    "unplaced",
    "unplaced_reason",
    "duplicate_of",
    "parent_id",
    "rework_count",
    "card",
    "created_at",
    "dispatch_due",
    "sign_due",
    "complete_due",
    "closed_at",
    "address",
)


def summary(t: Ticket) -> dict[str, Any]:
    """A list row: no full phone number, no timeline."""
    out = {k: getattr(t, k) for k in SUMMARY_FIELDS}
    out["category_name"] = get_category(t.category).name
    out["description"] = t.description[:120]
    out["reporter_phone"] = mask_phone(t.reporter_phone)
    out["lon"], out["lat"] = lonlat(t)
    return out


def _event_row(e: TicketEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "role": e.role,
        "move": e.move,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "note": e.note,
        "rework": e.rework,
        "payload": e.payload,
    }


_TIMELINE = (
    select(TicketEvent)
    .where(TicketEvent.ticket_id == bindparam("ticket_id"))
    .order_by(TicketEvent.at, TicketEvent.id)
)


def timeline(session: Session, ticket_id: int) -> list[dict[str, Any]]:
    return [_event_row(e) for e in session.scalars(_TIMELINE, {"ticket_id": ticket_id})]


# A ticket with its split children's ids and its photos' descriptions (not their bytes), one row.
_CHILD = Ticket.__table__.alias("child")
_PHOTO = Attachment.__table__.alias("photo")
_CHILDREN = select(Ticket.id).where(Ticket.parent_id == bindparam("ticket_id")).order_by(Ticket.id)
_LOAD = select(
    Ticket,
    select(func.array_agg(aggregate_order_by(_CHILD.c.id, _CHILD.c.id)))
    .where(_CHILD.c.parent_id == Ticket.id)
    .scalar_subquery(),
    select(
        func.json_agg(
            aggregate_order_by(
                func.json_build_object(
                    text("'id'"), _PHOTO.c.id,
                    text("'filename'"), _PHOTO.c.filename,
                    text("'content_type'"), _PHOTO.c.content_type,
                    text("'size'"), _PHOTO.c.size,
                ),
                _PHOTO.c.id,
            )
        )
    )
    .where(_PHOTO.c.ticket_id == Ticket.id)
    .scalar_subquery(),
).where(Ticket.id == bindparam("ticket_id"))
_LOAD_LOCKED = _LOAD.with_for_update(of=Ticket)


def _load(
    session: Session, ticket_id: int, *, lock: bool, scope: Scope | None
) -> tuple[Ticket, list[int], list[dict[str, Any]]]:
    """:func:`get_ticket` and, in the same round trip, its children's ids and its photos."""
    row = session.execute(_LOAD_LOCKED if lock else _LOAD, {"ticket_id": ticket_id}).first()
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    ticket, children, photos = row
    if scope is not None:
        scope.check(ticket, f"ticket {ticket_id}")
    return ticket, list(children or []), list(photos or [])


def detail(session: Session, ticket_id: int, *, now: datetime | None = None,
           scope: Scope | None = None) -> dict[str, Any]:
    """Everything the desk shows: place, deadlines, live card, timeline, photos, allowed moves.

    With ``scope``: 404 outside the caller's area, and the reporter's phone as that role may see it."""
    t, children, attachments = _load(session, ticket_id, lock=False, scope=scope)
    return _detail(t, timeline=timeline(session, t.id), children=children,
                   attachments=attachments, now=now, scope=scope)


def _detail(
    t: Ticket,
    *,
    timeline: list[dict[str, Any]],
    children: list[int],
    attachments: list[dict[str, Any]],
    now: datetime | None,
    scope: Scope | None,
) -> dict[str, Any]:
    out = summary(t)
    card, clock, due = card_for(t, _aware(now, "now"))
    cat = get_category(t.category)
    out.update(
        description=t.description,
        reporter_name=t.reporter_name,
        reporter_phone=t.reporter_phone if scope is None else scope.phone(t.reporter_phone),
        match=t.match,
        distance_m=t.distance_m,
        registry_version=t.registry_version,
        needs_town=t.needs_town,
        co_units=list(t.co_units or []),
        revisited=t.revisited,
        satisfied=t.satisfied,
        onsite_due=t.onsite_due,
        dispatched_at=t.dispatched_at,
        updated_at=t.updated_at,
        source_ref=t.source_ref,
        category_major=cat.major_name,
        closure_condition=cat.closure_condition,
        live_card=card,
        running_clock=clock,
        running_due=due,
        overdue=card == "red",
        timeline=timeline,
        children=children,
        attachments=attachments,
        allowed={
            r.value: allowed_moves(t.state, r)
            for r in Role
            if r is not Role.SYSTEM and t.duplicate_of is None
        },
    )
    me = None if scope is None else A.actor_of(scope)
    out["actor_role"] = None if me is None else me.role.value
    out["my_moves"] = A.my_moves(me, t, blocked=_blocked(t))
    return out


def _blocked(t: Ticket) -> frozenset[str]:
    """Moves the table allows but a service rule refuses now (100% 回访 before a citizen's close)."""
    if t.state == State.REVIEWED and t.channel in CITIZEN_CHANNELS:
        return frozenset({"close"})
    return frozenset()


_OVERDUE = """(
    (tickets.state IN ('received', 'returned') AND tickets.dispatch_due < :now)
 OR (tickets.state = 'dispatched' AND tickets.sign_due < :now)
 OR (tickets.state IN ('signed', 'handling') AND tickets.complete_due < :now))"""


def list_tickets(
    session: Session,
    *,
    state: str | None = None,
    town: str | None = None,
    grid: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    unplaced: bool | None = None,
    card: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_duplicates: bool = False,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
    scope: Scope | None = None,
    sort: str = "newest",
) -> tuple[int, list[dict[str, Any]]]:
    """Filtered, newest first (``sort="urgency"``: red cards first, then yellow, then by the deadline
    running in the ticket's state, the longest overdue first and then the nearest; tickets with no
    running deadline last), paginated over the whole selection; returns (total matching, rows). With ``scope``, only the
    caller's area counts (the total too). List rows always carry the masked phone: a list is a bulk
    view, the full number is for the one ticket being called back (``detail``)."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be 1-1000 and offset >= 0")
    if sort not in SORTS:
        raise InvalidInput(f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    stmt = select(Ticket) if scope is None else scope.filter(select(Ticket), Ticket)
    if state:
        if state not in {s.value for s in State}:
            _bad_state(state)
        stmt = stmt.where(Ticket.state == state)
    for column, value in (
        (Ticket.town_code, town),
        (Ticket.grid_code, grid),
        (Ticket.category, category),
        (Ticket.channel, channel),
        (Ticket.department, department),
        (Ticket.card, card),
    ):
        if value:
            stmt = stmt.where(column == value)
    if unplaced is not None:
        stmt = stmt.where(Ticket.unplaced.is_(unplaced))
    if since:
        stmt = stmt.where(Ticket.created_at >= _aware(since, "since"))
    if until:
        stmt = stmt.where(Ticket.created_at < _aware(until, "until"))
    if not include_duplicates:
        stmt = stmt.where(Ticket.duplicate_of.is_(None))
    if overdue is not None:
        sql = _OVERDUE if overdue else f"NOT {_OVERDUE}"
        stmt = stmt.where(text(sql).bindparams(now=_aware(now, "now")))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    order = (*_URGENCY, Ticket.created_at.desc(), Ticket.id.desc()) if sort == "urgency" \
        else (Ticket.created_at.desc(), Ticket.id.desc())
    rows = session.scalars(stmt.order_by(*order).limit(limit).offset(offset))
    return int(total or 0), [summary(t) for t in rows]


SORTS = ("newest", "urgency")
# The deadline that runs in each state (the same as _OVERDUE's), and the card's rank.
RUNNING_DUE = case(
    (Ticket.state.in_(("received", "returned")), Ticket.dispatch_due),
    (Ticket.state == "dispatched", Ticket.sign_due),
    (Ticket.state.in_(("signed", "handling")), Ticket.complete_due),
    else_=None,
)
_URGENCY = (
    case((Ticket.card == "red", 0), (Ticket.card == "yellow", 1), else_=2),
    RUNNING_DUE.asc().nulls_last(),
)


def _bad_state(value: str) -> None:
    raise InvalidInput(f"unknown state {value!r}; use one of {', '.join(s.value for s in State)}")


def find_tickets(
    session: Session,
    *,
    ids: list[int] | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    is_open: bool | None = None,
    limit: int = 1000,
    scope: Scope | None = None,
) -> list[Ticket]:
    """Tickets by id list or filters, newest first (the Open311 ``GET requests`` query), within
    ``scope`` when given."""
    stmt = select(Ticket) if scope is None else scope.filter(select(Ticket), Ticket)
    if ids is not None:
        stmt = stmt.where(Ticket.id.in_(ids))
    if category:
        stmt = stmt.where(Ticket.category == category)
    if since:
        stmt = stmt.where(Ticket.created_at >= _aware(since, "start_date"))
    if until:
        stmt = stmt.where(Ticket.created_at <= _aware(until, "end_date"))
    if is_open is not None:
        terminal = [s.value for s in TERMINAL]
        stmt = stmt.where(Ticket.state.not_in(terminal) if is_open else Ticket.state.in_(terminal))
    return list(
        session.scalars(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
    )


# --------------------------------------------------------------------------- the cards job

CARDS_JOB = "ticket_cards"
_CLAIM_SQL = text("SELECT started_at FROM job_runs WHERE name = :name FOR UPDATE SKIP LOCKED")
_DONE_SQL = text(
    "UPDATE job_runs SET started_at = :at, finished_at = clock_timestamp(), result = CAST(:result AS jsonb) "
    "WHERE name = :name"
)


def run_cards_job(
    session: Session, *, every: timedelta, force: bool = False
) -> dict[str, int] | None:
    """The scheduled card refresh (黄牌/红牌), at the server's time: the counts, or None when another
    server process is running it right now or ran it within the last ``every`` (``force``: run anyway
    unless it is running). The claim is the ``job_runs`` row, locked until the caller commits."""
    claimed = session.execute(_CLAIM_SQL, {"name": CARDS_JOB}).first()
    if claimed is None:
        return None
    now = now_utc()
    last = claimed[0]
    if not force and last is not None and now - last < every * 0.9:
        return None
    counts = refresh_cards(session, now)
    session.execute(_DONE_SQL, {"at": now, "result": json.dumps(counts), "name": CARDS_JOB})
    return counts
