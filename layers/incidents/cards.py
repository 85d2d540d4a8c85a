"""Yellow and red cards (黄牌警示、红牌督办): the deadline running in a ticket's state, and the job
that recomputes every open ticket's card and records each change as a ``card`` event.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from layers.incidents import sla
from layers.incidents.models import Ticket
from layers.incidents.store import SYSTEM_ACTOR, add_event, aware, now_utc
from layers.incidents.workflow import OPEN, RUNNING_CLOCK, Role, State

# When the running clock started: a returned ticket's dispatch clock at the return (its last
# update), a received one's at intake, the handler's clocks at the dispatch.
_STARTED = {State.RECEIVED: "created_at", State.RETURNED: "updated_at"}


def running_clock(t: Ticket) -> tuple[str, datetime, datetime] | None:
    """The deadline that is running for the ticket's state: (kind, started, due), or None."""
    kind = RUNNING_CLOCK.get(State(t.state))
    if kind is None:
        return None
    due = getattr(t, f"{kind}_due")
    started = getattr(t, _STARTED.get(State(t.state), "dispatched_at"))
    if due is None or started is None:
        return None
    return kind, started, due


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
    now = aware(now, "now")
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
        add_event(
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
