"""How ticket rows are read one at a time and written (事件工单存储): the ticket and its events.

Every change of a ticket is written with its ``ticket_events`` row; the timeline is never rewritten.
Nothing here commits: the caller owns the transaction, so a refused request leaves nothing
half-written (every check runs before the first INSERT).

The two writes every request makes (intake: a ticket and its ``receive`` event; a move: the
ticket's new fields and the move's event) go out as ONE statement each, a data-modifying CTE,
instead of the ORM's two flushes: the event is inserted from the CTE's RETURNING row, so an UPDATE
that matched no row writes no event either. The NOTIFY trigger on ticket_events fires after the
whole statement and sees the ticket as written. The ORM objects are then given exactly the
bookkeeping a flush gives them (identity, committed attributes, rolled back with the transaction):
the caller cannot tell the difference, only the round trips and the unit-of-work overhead are gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import Table, bindparam, insert, inspect, select, update
from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from layers.accounts.scope import Scope
from layers.incidents.models import Ticket, TicketEvent
from layers.incidents.places import Place
from layers.incidents.workflow import State

SYSTEM_ACTOR = "onemap"  # the actor of automatic events: dedupe, cards


def now_utc() -> datetime:
    return datetime.now(UTC)


def aware(at: datetime | None, what: str = "at") -> datetime:
    """``at``, or now when None; a naive time is a 400 (a moment needs its time zone)."""
    if at is None:
        return now_utc()
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"{what} {at.isoformat()} needs a timezone, e.g. +08:00")
    return at


def get_ticket(session: Session, ticket_id: int, *, lock: bool = False, scope: Scope | None = None) -> Ticket:
    """One ticket; with ``scope``, another area's ticket is answered exactly like a missing one."""
    stmt = select(Ticket).where(Ticket.id == ticket_id)
    ticket = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    if scope is not None:
        scope.check(ticket, f"ticket {ticket_id}")
    return ticket


def frozen_place(place: Place) -> dict[str, Any]:
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


def fresh(at: datetime) -> dict[str, Any]:
    """The workflow columns of a ticket just received at ``at``."""
    return {"state": State.RECEIVED.value, "co_units": [], "rework_count": 0, "revisited": False,
            "card": "ok", "created_at": at, "updated_at": at}


# --------------------------------------------------------------------------- events


def jsonable(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in payload.items()}


def add_event(
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
    """An event the ORM writes at the next flush (the events that change no ticket column)."""
    ev = TicketEvent(ticket_id=ticket.id, **event_values(
        at=at, actor=actor, role=role, move=move, from_state=from_state, to_state=to_state,
        note=note, rework=rework, payload=payload))
    session.add(ev)
    return ev


def event_values(
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
    """An event row's columns (all but the ids)."""
    return {"at": at, "actor": actor, "role": role, "move": move, "from_state": from_state,
            "to_state": to_state, "note": note, "rework": rework, "payload": jsonable(payload or {})}


# --------------------------------------------------------------------------- one-statement writes

_TICKETS = cast(Table, Ticket.__table__)
_EVENTS = cast(Table, TicketEvent.__table__)
_EVENT_COLUMNS = ("at", "actor", "role", "move", "from_state", "to_state", "note", "rework", "payload")


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


def insert_received(
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


def update_with_event(
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
