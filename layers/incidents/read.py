"""Reading tickets (查询): a list row, the desk's detail with its timeline, filtered lists and the
Open311 query. Phones are masked in every list; the full number only in one ticket's detail, and
only for a caller whose scope may see it.

The write routes answer with the detail too, built from what was just written (:func:`as_read`
spells it exactly as a re-read would).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, tzinfo
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import ColumnElement, and_, bindparam, case, func, not_, or_, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from layers.accounts.scope import Scope
from layers.incidents import authz as A
from layers.incidents.cards import card_for
from layers.incidents.categories import get_category
from layers.incidents.models import CITIZEN_CHANNELS, Attachment, Ticket, TicketEvent
from layers.incidents.store import aware
from layers.incidents.workflow import (
    RUNNING_CLOCK,
    TERMINAL,
    Role,
    State,
    allowed_moves,
    blocked_moves,
)
from layers.privacy import mask_phone


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


def event_row(e: TicketEvent) -> dict[str, Any]:
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
    return [event_row(e) for e in session.scalars(_TIMELINE, {"ticket_id": ticket_id})]


# A ticket with its split children's ids and its photos' descriptions (not their bytes), one row.
_CHILD = Ticket.__table__.alias("child")
_PHOTO = Attachment.__table__.alias("photo")
CHILDREN = select(Ticket.id).where(Ticket.parent_id == bindparam("ticket_id")).order_by(Ticket.id)
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


def load(
    session: Session, ticket_id: int, *, lock: bool, scope: Scope | None
) -> tuple[Ticket, list[int], list[dict[str, Any]]]:
    """:func:`layers.incidents.store.get_ticket` and, in the same round trip, its children's ids and
    its photos."""
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
    t, children, attachments = load(session, ticket_id, lock=False, scope=scope)
    return ticket_detail(t, timeline=timeline(session, t.id), children=children,
                         attachments=attachments, now=now, scope=scope)


def ticket_detail(
    t: Ticket,
    *,
    timeline: list[dict[str, Any]],
    children: list[int],
    attachments: list[dict[str, Any]],
    now: datetime | None,
    scope: Scope | None,
) -> dict[str, Any]:
    """:func:`detail` of a ticket already in hand, with its timeline, children and photos."""
    out = summary(t)
    card, clock, due = card_for(t, aware(now, "now"))
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
    out["my_moves"] = A.my_moves(me, t, blocked=blocked_moves(t.state, citizen=t.channel in CITIZEN_CHANNELS))
    return out


def read_tz(session: Session) -> tzinfo | None:
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


def as_read(row: dict[str, Any], tz: tzinfo | None) -> dict[str, Any]:
    """A detail or timeline row as it reads back from the database: timestamps in the connection's
    time zone, event payloads in jsonb key order. The answers of the write routes are built from
    what was just written, and must not differ from the re-read they replace even in how a moment
    is spelled (``+00:00`` or ``+08:00``)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime) and tz is not None:
            value = value.astimezone(tz)
        elif key == "timeline":
            value = [as_read(e, tz) for e in value]
        elif key == "payload":
            value = _jsonb_order(value)
        out[key] = value
    return out


# --------------------------------------------------------------------------- lists

SORTS = ("newest", "urgency")


def _states_by_clock() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for state, clock in RUNNING_CLOCK.items():
        out[clock].append(state.value)
    return dict(out)


# The deadline that runs in each state (the workflow's RUNNING_CLOCK, as the cards read it).
_RUNNING = [(Ticket.state.in_(states), getattr(Ticket, f"{clock}_due"))
            for clock, states in _states_by_clock().items()]
RUNNING_DUE = case(*_RUNNING, else_=None)
_URGENCY = (
    case((Ticket.card == "red", 0), (Ticket.card == "yellow", 1), else_=2),
    RUNNING_DUE.asc().nulls_last(),
)


def _overdue(now: datetime) -> ColumnElement[bool]:
    """The running deadline has passed (a ticket whose running deadline is not set is neither)."""
    return or_(*(and_(in_state, due < now) for in_state, due in _RUNNING))


def _bad_state(value: str) -> None:
    raise InvalidInput(f"unknown state {value!r}; use one of {', '.join(s.value for s in State)}")


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
    running deadline last), paginated over the whole selection; returns (total matching, rows). With
    ``scope``, only the caller's area counts (the total too). List rows always carry the masked
    phone: a list is a bulk view, the full number is for the one ticket being called back
    (``detail``)."""
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
        stmt = stmt.where(Ticket.created_at >= aware(since, "since"))
    if until:
        stmt = stmt.where(Ticket.created_at < aware(until, "until"))
    if not include_duplicates:
        stmt = stmt.where(Ticket.duplicate_of.is_(None))
    if overdue is not None:
        late = _overdue(aware(now, "now"))
        stmt = stmt.where(late if overdue else not_(late))
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    order = (*_URGENCY, Ticket.created_at.desc(), Ticket.id.desc()) if sort == "urgency" \
        else (Ticket.created_at.desc(), Ticket.id.desc())
    rows = session.scalars(stmt.order_by(*order).limit(limit).offset(offset))
    return int(total or 0), [summary(t) for t in rows]


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
        stmt = stmt.where(Ticket.created_at >= aware(since, "start_date"))
    if until:
        stmt = stmt.where(Ticket.created_at <= aware(until, "end_date"))
    if is_open is not None:
        terminal = [s.value for s in TERMINAL]
        stmt = stmt.where(Ticket.state.not_in(terminal) if is_open else Ticket.state.in_(terminal))
    return list(
        session.scalars(stmt.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit))
    )
