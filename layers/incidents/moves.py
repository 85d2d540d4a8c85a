"""Moving a ticket through the workflow (流转): plan a move from its row of the state table, write it
as one ``ticket_events`` row, and create a split's child tickets.

What a move does is declared in its row of :data:`layers.incidents.workflow.MOVES` (who, from where,
to where, which clocks start and stop, which fields change, the revisit rule); :func:`plan_move`
reads the row and nothing else, and is shared by :func:`apply_move` and the bulk simulation so both
write the same rows. Deadlines in force are copied into the ``dispatch``, ``sign`` and ``complete``
events' payloads (``sign_due``, ``due``, ``on_time``) so the KPIs can be recomputed from the events
for any month even after an extension. A move is three round trips (lock and read, write, timeline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from gis import codes as C
from gis.errors import IllegalMove, InvalidInput
from layers.accounts.scope import Scope
from layers.incidents import authz as A
from layers.incidents import sla
from layers.incidents.categories import get_department, load_departments
from layers.incidents.models import CITIZEN_CHANNELS, Ticket, TicketEvent
from layers.incidents.places import Place, village_places
from layers.incidents.read import CHILDREN, as_read, load, read_tz, ticket_detail, timeline
from layers.incidents.store import (
    add_event,
    aware,
    event_values,
    fresh,
    frozen_place,
    get_ticket,
    jsonable,
    update_with_event,
)
from layers.incidents.workflow import (
    MOVES,
    TERMINAL,
    Role,
    State,
    allowed_moves,
    blocked_moves,
    move,
)

MAX_EXTENSION = timedelta(days=366)  # a deadline extended into 2099 is a deadline switched off
# The deadlines a started clock also writes into the move's event: the KPIs read them from there.
_IN_EVENT = ("sign", "complete")


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


# --------------------------------------------------------------------------- planning (pure)


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


def _co_units(t: TicketLike, at: datetime, payload: dict[str, Any]) -> list[str]:
    for unit in payload["units"]:
        get_department(unit)
    return sorted(set(t.co_units or []) | set(payload["units"]))


def _extended_due(t: TicketLike, at: datetime, payload: dict[str, Any]) -> datetime:
    """An approved extension (延期) is a new deadline after the move and within a year of it."""
    until = aware(payload["until"], "until")
    if not at < until <= at + MAX_EXTENSION:
        raise InvalidInput(
            f"until {until.isoformat()} must be after the extension is granted ({at.isoformat()}) "
            f"and at most {MAX_EXTENSION.days} days later"
        )
    payload["previous_due"] = t.complete_due
    return until


# How each ticket field a row ``sets`` gets its value: (ticket, at, checked payload) -> value.
FIELDS: Mapping[str, Callable[[TicketLike, datetime, dict[str, Any]], Any]] = {
    "assignee": lambda t, at, p: _check_assignee(str(p["assignee"])),
    "dispatched_at": lambda t, at, p: at,
    "co_units": _co_units,
    "complete_due": _extended_due,
    "revisited": lambda t, at, p: True,
    "satisfied": lambda t, at, p: p["satisfied"],
}


def _parse_until(payload: dict[str, Any]) -> None:
    value = payload.get("until")
    if isinstance(value, str):
        try:
            payload["until"] = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInput(f"until {value!r} is not an ISO datetime") from None


def _enforce_revisit(t: TicketLike, move_name: str, role: str) -> None:
    """100% 回访: a citizen's ticket cannot close from reviewed without a revisit."""
    if move_name in blocked_moves(t.state, citizen=t.channel in CITIZEN_CHANNELS):
        allowed = [m for m in allowed_moves(t.state, role) if m != move_name]
        raise IllegalMove(
            f"a {t.channel} ticket must be revisited (回访) before it is closed; allowed: "
            f"{', '.join(allowed) or 'none'}",
            detail={"state": t.state, "role": role, "move": move_name, "allowed": allowed},
        )


def _due(kind: sla.Kind, at: datetime, t: TicketLike) -> datetime | None:
    try:
        return sla.deadline(at, t.category, t.severity, kind)
    except InvalidInput:  # no on-site clock for this category
        return None


def plan_move(
    t: TicketLike,
    move_name: str,
    *,
    role: str,
    at: datetime,
    note: str | None = None,
    payload: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ticket's new fields and the event row for a move, from the move's row of the table,
    without touching the database."""
    payload = dict(payload or {})
    _parse_until(payload)
    if at < t.created_at:
        raise InvalidInput(f"a move at {at.isoformat()} is before the ticket was received")
    _enforce_revisit(t, move_name, role)
    tr = move(t.state, move_name, role=role, note=note, **payload)
    rule = MOVES[tr.move]
    out = dict(tr.payload)
    changes: dict[str, Any] = {"state": tr.to_state.value, "updated_at": at}
    for name in rule.sets:
        changes[name] = FIELDS[name](t, at, out)
    for clock in rule.starts:
        changes[f"{clock}_due"] = _due(clock, at, t)
        if clock in _IN_EVENT:
            out[f"{clock}_due"] = changes[f"{clock}_due"]
    if rule.stops is not None:
        due = getattr(t, f"{rule.stops}_due")
        out["due"], out["on_time"] = due, None if due is None else at <= due
    if tr.rework:
        changes["rework_count"] = (t.rework_count or 0) + 1
    if tr.to_state in TERMINAL:
        changes["closed_at"] = at
    event = {**tr.event(), "payload": jsonable(out), "at": at}
    return changes, event


# --------------------------------------------------------------------------- writing


def _apply(
    session: Session,
    ticket: Ticket,
    changes: Mapping[str, Any],
    ev: Mapping[str, Any],
    *,
    actor: str,
) -> TicketEvent:
    """Write a planned move: the ticket's new fields and the event, in one statement."""
    event = event_values(
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
    return update_with_event(session, ticket, changes, event)


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
            **frozen_place(place),
            unplaced=False,
            department=parent.department,
            needs_town=parent.needs_town,
            parent_id=parent.id,
            **fresh(at),
            dispatch_due=parent.dispatch_due,
        )
        session.add(child)
        session.flush()
        add_event(
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


def _move_checks(at: datetime | None, actor: str, move_name: str) -> datetime:
    at = aware(at)
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
    children = MOVES[move_name].children
    places = village_places(session, ticket, ev["payload"]["villages"]) if children else []
    _apply(session, ticket, changes, ev, actor=actor)
    if places:
        _split_children(session, ticket, places, actor=actor, at=at)
        session.flush()


def _as_actor(acting: A.Actor | None, ticket: Ticket, move_name: str, role: str,
              payload: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any] | None]:
    """The role and payload of a move made by ``acting``: its own role, its checked payload."""
    if acting is None:
        return role, payload
    return acting.role.value, A.authorize(acting, ticket, move_name, dict(payload or {}))


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
    """:func:`apply_move` answered with the ticket's detail (the answer of a move over the API), or
    None when the move took the ticket out of ``scope`` (a dispatch to a department).

    The ticket is locked and read together with its children and photos (a move adds neither,
    except a split, whose children are read again); the timeline is read after the write."""
    at = _move_checks(at, actor, move_name)
    ticket, children, attachments = load(session, ticket_id, lock=True, scope=scope)
    role, payload = _as_actor(acting, ticket, move_name, role, payload)
    _move(session, ticket, move_name, actor=actor, role=role, note=note, payload=payload, at=at)
    if MOVES[move_name].children:
        children = list(session.scalars(CHILDREN, {"ticket_id": ticket.id}))
    if scope is not None and not scope.sees(ticket):
        return None
    out = ticket_detail(ticket, timeline=timeline(session, ticket.id), children=children,
                        attachments=attachments, now=None, scope=scope)
    return as_read(out, read_tz(session))


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
