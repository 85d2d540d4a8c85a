"""Receiving a report (受理): validate it, place it, route it, start its dispatch clock, and close a
duplicate of an open report nearby. Also placing a report that could not be placed at intake.

Intake writes a ``receive`` event (no from-state). A location that cannot be resolved does not
refuse the report: the ticket is ``received`` with ``unplaced=True`` and a reason, listed by
``list_tickets(unplaced=True)`` until someone places it (:func:`place_ticket`); ``require_place=True``
refuses instead (HTTP 400). Intake is three round trips: the resolver's registry version, the routing
override and duplicate candidate together, the ticket and its event in one statement.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.errors import IllegalMove, InvalidInput
from layers.accounts.scope import Scope
from layers.incidents import sla
from layers.incidents.categories import Route, get_category, parse_severity
from layers.incidents.models import CHANNELS, DuplicateLink, Ticket, TicketEvent
from layers.incidents.places import Place, from_point, resolve_place
from layers.incidents.read import as_read, event_row, read_tz, ticket_detail
from layers.incidents.routes import OVERRIDE_SQL, route_of
from layers.incidents.store import (
    SYSTEM_ACTOR,
    add_event,
    aware,
    event_values,
    fresh,
    frozen_place,
    get_ticket,
    insert_received,
)
from layers.incidents.workflow import TERMINAL_SQL, Role, State, move

DUPLICATE_M = 50.0
DUPLICATE_HOURS = 24.0
# A scoped caller's duplicate is the first candidate it may see; more than this many open reports of
# one category within 50 m and 24 h, all outside the caller's area, do not happen.
SCOPED_CANDIDATES = 20
_SCOPE_COLUMNS = ("grid_code", "village_code", "town_code", "district_code", "department", "assignee",
                  "co_units")

# The first open tickets of this category within 50 m and the 24 h before ``at``: id, metres,
# minutes, then the columns a scope reads.
_DUPLICATE_SQL = f"""
        SELECT t.id, ST_Distance(t.geom::geography, p.g::geography),
               extract(epoch FROM (:at - t.created_at)) / 60.0,
               t.grid_code, t.village_code, t.town_code, t.district_code, t.department, t.assignee,
               t.co_units
        FROM tickets t, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g) p
        WHERE t.category = :cat AND t.duplicate_of IS NULL AND t.parent_id IS NULL
          AND t.state NOT IN {TERMINAL_SQL} AND t.geom IS NOT NULL
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

# The columns intake leaves empty, named so the new object is complete without a read-back.
_NOT_YET = dict.fromkeys(("assignee", "parent_id", "duplicate_of", "satisfied", "dispatched_at",
                          "sign_due", "onsite_due", "complete_due", "closed_at"))


def _check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    return channel


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


def _first_visible(rows: Any, start: int, scope: Scope | None) -> tuple[int, float, float] | None:
    """The first candidate (columns from ``start``: id, metres, minutes, then the scope columns)
    that ``scope`` sees: a caller never learns of, nor writes into, another area's ticket."""
    for row in rows:
        if row[start] is None:
            continue
        codes = dict(zip(_SCOPE_COLUMNS, row[start + 3:start + 10], strict=True))
        if scope is None or scope.sees(codes):
            return int(row[start]), float(row[start + 1]), float(row[start + 2])
    return None


def _intake_lookup(
    session: Session, category: str, place: Place, at: datetime, dedupe: bool, scope: Scope | None
) -> tuple[Route, tuple[int, float, float] | None]:
    """The route of ``category`` (override or CSV default) and, for a placed report with ``dedupe``,
    the first duplicate candidate within ``scope``, in one statement."""
    if not (dedupe and place.placed and place.lon is not None and place.lat is not None):
        row = session.execute(OVERRIDE_SQL, {"cat": category}).first()
        return route_of(category, row), None
    rows = session.execute(
        _INTAKE_SQL,
        _duplicate_params(category, place.lon, place.lat, at, scope)
    ).all()
    return route_of(category, rows[0]), _first_visible(rows, 2, scope)


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
    reject = add_event(
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
    add_event(
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
    """:func:`create_ticket` answered with its detail (the ``POST /tickets`` answer), built from
    what was just written instead of read back: a new ticket's timeline is the events intake wrote,
    and it has no children and no photos yet. With ``scope``: duplicates within it only, the phone as
    that caller may see it, and its ``actor_role`` / ``my_moves``."""
    ticket, events = intake(session, scope=scope, **fields)
    tz = read_tz(session)
    return ticket_detail(ticket, timeline=[as_read(event_row(e), tz) for e in events], children=[],
                         attachments=[], now=None, scope=scope)


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
    at = aware(at)
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
        **frozen_place(place),
        "unplaced": not place.placed,
        "unplaced_reason": place.reason,
        "department": route.department,
        "needs_town": route.needs_town,
        **fresh(at),
        "dispatch_due": sla.deadline(at, cat, sev, "dispatch"),
        **_NOT_YET,
    }
    receive = event_values(
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
    ticket, ev = insert_received(session, columns, receive)
    events = [ev]
    if found is not None:
        events.append(_link_duplicate(session, ticket, found, at=at))
        session.flush()
    return ticket, events


_PLACE_COLUMNS = ("grid_code", "village_code", "town_code", "district_code", "registry_version", "match",
                  "distance_m")


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
    at = aware(at)
    ticket = get_ticket(session, ticket_id, lock=True, scope=scope)
    if not ticket.unplaced:
        raise IllegalMove(
            f"ticket {ticket_id} is already placed in grid {ticket.grid_code}",
            detail={"allowed": []},
        )
    place = from_point(session, lon, lat, crs, ticket.address)
    if not place.placed:
        raise InvalidInput(place.reason or "outside every grid")
    for key in _PLACE_COLUMNS:
        setattr(ticket, key, getattr(place, key))
    ticket.geom = from_shape(Point(place.lon, place.lat), srid=4326)
    ticket.unplaced, ticket.unplaced_reason, ticket.updated_at = False, None, at
    add_event(
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
