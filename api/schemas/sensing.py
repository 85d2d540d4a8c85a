"""Field workers (网格员) and environmental sensors (传感器)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Open


class Worker(Open):
    """A grid worker (网格员) with the grids the worker patrols."""

    id: str
    name: str
    role: str = Field(description="grid_chief, full_time, specialist, helper")
    role_name: str = Field(description="the role in Chinese (网格长/专职/专业/兼职)")
    phone: str | None = Field(description="as the caller's role may see it (masked otherwise)")
    town_code: str | None
    on_duty: bool
    active: bool
    grids: list[str]


class PatrolReport(Open):
    """A town's daily patrol report (巡查日报)."""

    town: str
    date: str
    workers: list[dict[str, Any]]


class NearestWorker(Open):
    """An on-duty worker near a ticket (最近网格员): distance (m), grids, last fix and its age (s)."""

    worker_id: str
    name: str
    role: str
    grids: list[str]
    distance_m: float
    lon: float
    lat: float
    fix_at: datetime
    fix_age_s: int
    grid_code: str | None


class Sensor(Open):
    """A sensor (监测点) with its place resolved to a grid."""

    id: str
    name: str
    kind: str
    pollutants: list[str] = Field(description="PM2.5, PM10 ... (监测项目)")
    owner: str | None = Field(description="the enterprise, if any (排污企业)")
    status: str = Field(description="active or retired")
    lon: float | None
    lat: float | None
    grid_code: str | None
    village_code: str | None
    town_code: str | None
    district_code: str | None
    match: str | None
    registry_version: int | None


class Threshold(Open):
    """A pollutant's alarm threshold (阈值): ``consecutive`` readings over ``limit_value`` raise an alarm."""

    pollutant: str
    limit_value: float
    consecutive: int
