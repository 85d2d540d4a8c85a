"""Each move's effects are declared in its row of the state table: the rows and the planner agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import pytest

from gis.errors import IllegalMove
from layers.incidents.authz import HANDLING
from layers.incidents.models import Ticket
from layers.incidents.moves import FIELDS, plan_move
from layers.incidents.sla import Kind
from layers.incidents.workflow import MOVES, RUNNING_CLOCK, blocked_moves

AT = datetime(2025, 3, 4, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@dataclass
class Mem:
    """An in-memory ticket, as the simulation plans moves on."""

    state: str
    channel: str = "hotline"
    category: str = "0101"
    severity: str = "general"
    created_at: datetime = AT - timedelta(hours=1)
    sign_due: datetime | None = None
    complete_due: datetime | None = None
    co_units: list[str] = field(default_factory=list)
    rework_count: int = 0


def test_every_field_a_row_sets_has_one_setter_and_every_setter_is_used():
    named = {f for rule in MOVES.values() for f in rule.sets}
    assert named == set(FIELDS)
    assert named <= set(Ticket.__table__.c.keys())


def test_every_clock_is_an_sla_kind_with_a_deadline_column():
    clocks = {c for r in MOVES.values() for c in r.starts} | {r.stops for r in MOVES.values() if r.stops}
    clocks |= set(RUNNING_CLOCK.values())
    assert clocks <= set(get_args(Kind))
    assert {f"{c}_due" for c in clocks} <= set(Ticket.__table__.c.keys())


def test_the_assignees_moves_are_the_rows_marked_so():
    assert HANDLING == {"sign", "start", "complete", "return", "split", "join"}


def test_a_dispatch_row_starts_the_handlers_clocks_and_records_two_of_them():
    changes, event = plan_move(Mem("received"), "dispatch", role="district", at=AT,
                               payload={"assignee": "370783001000"})
    assert changes["assignee"] == "370783001000" and changes["dispatched_at"] == AT
    assert changes["sign_due"] > AT and changes["complete_due"] > changes["sign_due"]
    assert "onsite_due" in changes and "dispatch_due" not in changes
    assert set(event["payload"]) == {"assignee", "sign_due", "complete_due"}


def test_a_sign_row_meets_the_sign_clock():
    due = AT + timedelta(hours=2)
    _, event = plan_move(Mem("dispatched", sign_due=due), "sign", role="town", at=AT + timedelta(hours=3))
    assert event["payload"] == {"due": due.isoformat(), "on_time": False}


def test_revisit_first_blocks_a_citizens_close_until_the_revisit():
    assert blocked_moves("reviewed", citizen=True) == {"close"}
    assert blocked_moves("revisited", citizen=True) == frozenset()
    assert blocked_moves("reviewed", citizen=False) == frozenset()
    with pytest.raises(IllegalMove, match="revisited"):
        plan_move(Mem("reviewed"), "close", role="district", at=AT)
    changes, _ = plan_move(Mem("reviewed", channel="camera"), "close", role="district", at=AT)
    assert changes["state"] == "closed" and changes["closed_at"] == AT
