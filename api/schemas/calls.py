"""Grid calls, departments report (网格呼叫、部门报到)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Open, Page


class CallSummary(Open):
    """A call (呼叫): raised by a grid, answered by a department within time limits."""

    id: int
    ticket_id: int | None
    category: str | None
    description: str
    department: str = Field(description="the department called (被呼叫部门)")
    department_name: str
    grid_code: str | None
    village_code: str | None
    town_code: str | None
    district_code: str | None
    raised_by: str
    raised_level: str
    state: str
    state_name: str = Field(description="the state in Chinese (状态)")
    level_due: datetime | None
    sign_due: datetime | None
    onsite_due: datetime | None
    dispatched_at: datetime | None
    signed_at: datetime | None
    arrived_at: datetime | None
    arrive_distance_m: float | None
    sign_on_time: bool | None
    onsite_on_time: bool | None
    resolved_at: datetime | None
    overdue: bool
    escalations: int
    created_at: datetime
    updated_at: datetime


class CallEvent(Open):
    at: datetime
    actor: str
    role: str
    move: str
    from_state: str | None
    to_state: str
    note: str | None
    payload: dict[str, Any] | None


class CallDetail(CallSummary):
    """A call with its place, timeline and the moves the caller may make now."""

    lon: float
    lat: float
    my_level: str | None = Field(description="the level the caller acts at (null: none)")
    my_moves: list[str]
    timeline: list[CallEvent]


class CallPage(Page[CallSummary]):
    """A page of calls."""


class CallLimit(Open):
    """A stage's time limit (时限); ``key`` a department or ``*``."""

    stage: str
    key: str
    minutes: int
    clock: str = Field(description="calendar or working")
    title: str
