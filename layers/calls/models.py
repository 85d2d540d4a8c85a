"""The calls' tables: a call with its place frozen at raising, its append-only timeline, and the
time limits of each level as rows (``call_limits``), not code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326


class CallLimit(Base):
    """How long one stage may take (``key``: a department code, or ``*`` for every other)."""

    __tablename__ = "call_limits"

    stage: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(20), primary_key=True, default="*")
    minutes: Mapped[int] = mapped_column(Integer)
    clock: Mapped[str] = mapped_column(String(8), default="calendar")
    title: Mapped[str] = mapped_column(String(50), default="")


class Call(Base):
    """One grid call (网格呼叫) about a ticket or a problem on the ground."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    category: Mapped[str | None] = mapped_column(String(4))
    description: Mapped[str] = mapped_column(Text)
    department: Mapped[str] = mapped_column(String(20))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str | None] = mapped_column(String(12))
    raised_by: Mapped[str] = mapped_column(String(100))
    raised_level: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(14))
    level_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sign_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    onsite_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrive_geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    arrive_distance_m: Mapped[float | None] = mapped_column(Float)
    onsite_on_time: Mapped[bool | None] = mapped_column(Boolean)
    sign_on_time: Mapped[bool | None] = mapped_column(Boolean)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CallEvent(Base):
    """One row of a call's timeline (append-only: the migration's trigger refuses changes)."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(12))
    move: Mapped[str] = mapped_column(String(12))
    from_state: Mapped[str | None] = mapped_column(String(14))
    to_state: Mapped[str] = mapped_column(String(14))
    note: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
