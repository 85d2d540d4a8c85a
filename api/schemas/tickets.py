"""Tickets (事件工单) and assessment (考核): what the ticket routes answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Open, Page


class TicketSummary(Open):
    """A list row: no full phone number, no timeline (列表行)."""

    id: int
    channel: str = Field(description="hotline, app, wechat, patrol, camera, sensor (渠道)")
    category: str = Field(description="4-digit category code (小类)")
    category_name: str
    severity: str = Field(description="general, important, urgent (紧急程度)")
    state: str = Field(description="received → dispatched → signed → handling → completed → reviewed → revisited → "
                                   "closed (状态)")
    grid_code: str | None = Field(description="15-digit grid code (网格), null while unplaced")
    village_code: str | None
    town_code: str | None
    description: str = Field(description="the first 120 characters (描述)")
    reporter_phone: str | None = Field(description="masked (脱敏)")
    lon: float | None
    lat: float | None


class TimelineEvent(Open):
    """One change of state (流转记录): the timeline is never rewritten."""

    id: int
    at: datetime
    actor: str
    role: str | None
    move: str
    from_state: str | None
    to_state: str | None
    note: str | None
    rework: bool | None = None
    payload: dict[str, Any] | None = None


class Attachment(Open):
    """A photo's description (照片), not its bytes: GET /tickets/{id}/attachments/{attachment_id}."""

    id: int
    filename: str
    content_type: str
    size: int


class TicketDetail(TicketSummary):
    """Everything the desk shows (工单详情): place, deadlines, live card, timeline, photos, moves."""

    description: str = Field(description="the whole description (描述)")
    reporter_name: str | None
    reporter_phone: str | None = Field(description="as the caller's role may see it")
    match: str | None = Field(description="how the place resolved: inside, boundary, snapped, outside")
    distance_m: float | None
    registry_version: int | None
    needs_town: bool
    co_units: list[str] = Field(description="joint units (联单)")
    revisited: bool
    satisfied: bool | None
    dispatched_at: datetime | None
    updated_at: datetime | None
    source_ref: str | None
    category_major: str = Field(description="the major class (大类)")
    closure_condition: str | None = None
    live_card: str = Field(description="ok, yellow or red at this moment (黄牌/红牌)")
    running_clock: str | None = Field(description="the deadline that is running now")
    running_due: datetime | None
    overdue: bool
    timeline: list[TimelineEvent]
    children: list[int] = Field(description="split children's ids (分单)")
    attachments: list[Attachment]
    allowed: dict[str, list[str]] = Field(description="moves each workflow role may make now")
    actor_role: str | None = Field(description="the caller's workflow role (null: none)")
    my_moves: list[str] = Field(description="moves the caller may make now")


class TicketPage(Page[TicketSummary]):
    """A page of tickets."""


class MovedOut(Open):
    """A move that routed the ticket out of the caller's area (e.g. dispatched to a department)."""

    id: int
    moved_out_of_scope: bool


class Department(Open):
    code: str
    name: str
    kind: str = Field(description="department (职能部门) or utility (公用企业)")


class Category(Open):
    """An event category (小类) with its major class (大类), department and completion limits."""

    code: str
    name: str
    major_code: str
    major_name: str
    department: str
    needs_town: bool
    acceptance_condition: str | None
    limit_type: str
    limits: dict[str, float | int | None] = Field(description="completion limit per severity")


class Route(Open):
    """Category → department, and whether a town handles it first (派遣规则)."""

    category: str
    department: str
    needs_town: bool


class CardsRun(Open):
    """A card refresh (亮牌): whether it ran and what it counted."""

    ran: bool


class KpiAnswer(Open):
    """Timely sign-for, on-time completion, first-time fix, satisfaction, closure (考核指标)."""

    level: str = Field(description="town, department or grid")
    period: dict[str, Any] = Field(description="{label, start, end}")
    rows: list[dict[str, Any]]
    by_category: list[dict[str, Any]]


class Ranking(Open):
    """The monthly ranking (月度排名): rank 1 has the best mean of the five rates."""

    level: str
    month: str
    rows: list[dict[str, Any]]
