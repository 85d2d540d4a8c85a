"""The grid worker's phone (网格员移动端) and the citizen's public report (随手拍)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.schemas.common import Open


class FieldMe(Open):
    """The signed-in grid worker, its worker record and its grids with names."""

    username: str
    role: str
    worker: dict[str, Any] = Field(description="the worker record (id = username)")
    grids: list[dict[str, Any]] = Field(description="the worker's grids: code, name ... (我的网格)")


class FieldTasks(Open):
    """Open tickets in my grids, mine to handle first (我的任务)."""

    worker: str
    items: list[dict[str, Any]]


class CheckIn(Open):
    """A site check-in (现场签到); once per ``client_id``."""

    id: int
    worker_id: str
    at: str = Field(description="ISO 8601")
    site: str
    grid_code: str | None
    grid_name: str | None
    village_name: str | None
    town_name: str | None
    ticket_id: int | None
    distance_m: float | None = Field(description="metres to the ticket's place, when a ticket is named")


class PublicCategory(Open):
    code: str
    name: str
    major_code: str
    major_name: str


class ReportReceipt(Open):
    """The code to follow a citizen's report at /report/CODE (``duplicate``: the same report again)."""

    code: str
    duplicate: bool


class HistoryStep(Open):
    at: str
    text: str = Field(description="what happened, in Chinese (处理进度)")
    state_name: str


class FollowUp(Open):
    """A citizen's report as the citizen may see it: its status history, nothing else."""

    code: str
    category_name: str
    description: str
    village_name: str | None
    town_name: str | None
    state: str
    state_name: str = Field(description="the state in Chinese (状态)")
    duplicate: bool
    can_rate: bool = Field(description="whether the citizen may rate it now (回访)")
    satisfied: bool | None
    rework: int
    created_at: str
    history: list[HistoryStep]
