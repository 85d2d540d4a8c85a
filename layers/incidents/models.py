"""The tickets' tables (事件工单): tickets, their append-only events, photos, routing overrides, duplicates.

Why the codes are columns and not a join: a ticket freezes the grid, village, town and district it
resolved to at intake, and the registry version it was resolved against, so a later boundary change
never moves an old ticket and past rankings stay as they were (DESIGN.md, "Storage").

``ticket_events`` is the timeline and the source of the KPIs. The migration adds a trigger that
refuses UPDATE, DELETE and TRUNCATE on it: the timeline is never rewritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326
CHANNELS = ("hotline", "app", "wechat", "patrol", "camera", "sensor")
CITIZEN_CHANNELS = frozenset({"hotline", "app", "wechat"})  # 100% revisit (回访) before close


class Ticket(Base):
    """One event ticket (事件工单) with its place frozen at intake and its running deadlines."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(4))
    severity: Mapped[str] = mapped_column(String(10))
    description: Mapped[str] = mapped_column(Text, default="")
    reporter_name: Mapped[str | None] = mapped_column(String(50))
    reporter_phone: Mapped[str | None] = mapped_column(String(30))
    source_ref: Mapped[str | None] = mapped_column(
        String(100)
    )  # camera id, sensor id, open311 device
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    address: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str | None] = mapped_column(String(12))
    registry_version: Mapped[int | None] = mapped_column(Integer)
    match: Mapped[str | None] = mapped_column(
        String(10)
    )  # inside/boundary/snapped/outside/geocoded
    distance_m: Mapped[float | None] = mapped_column(Float)
    unplaced: Mapped[bool] = mapped_column(Boolean, default=False)
    unplaced_reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12), default="received")
    department: Mapped[str] = mapped_column(String(20))  # answerable department, from routing
    needs_town: Mapped[bool] = mapped_column(Boolean)
    assignee: Mapped[str | None] = mapped_column(String(20))  # town code or department code
    co_units: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=list)  # 联单
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))  # 分单 child
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    revisited: Mapped[bool] = mapped_column(Boolean, default=False)
    satisfied: Mapped[bool | None] = mapped_column(Boolean)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatch_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sign_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    onsite_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    complete_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    card: Mapped[str] = mapped_column(String(6), default="ok")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_tickets_geom", "geom", postgresql_using="gist"),
        Index("ix_tickets_category_created", "category", "created_at"),
        Index("ix_tickets_state", "state"),
        Index("ix_tickets_town", "town_code"),
        Index("ix_tickets_grid", "grid_code"),
        Index("ix_tickets_created", "created_at"),
    )


class TicketEvent(Base):
    """One row of a ticket's timeline: who, as what role, when, which move, from and to which state."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(12))
    move: Mapped[str] = mapped_column(String(12))
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    note: Mapped[str | None] = mapped_column(Text)
    rework: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)

    __table_args__ = (
        Index("ix_ticket_events_ticket_at", "ticket_id", "at"),
        Index("ix_ticket_events_move_at", "move", "at"),
    )


class Attachment(Base):
    """A photo sent with a report (随手拍) or by the handler as proof; bytes kept in the database."""

    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_ticket_attachments_ticket", "ticket_id"),)


class RoutingOverride(Base):
    """A planner's change to the category → department routing (分流规则), over the CSV defaults."""

    __tablename__ = "routing_overrides"

    category: Mapped[str] = mapped_column(String(4), primary_key=True)
    department: Mapped[str] = mapped_column(String(20))
    needs_town: Mapped[bool] = mapped_column(Boolean)
    who: Mapped[str] = mapped_column(String(100))
    why: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DuplicateLink(Base):
    """Why a report was linked to an earlier ticket instead of opening new work (重复件)."""

    __tablename__ = "ticket_duplicates"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    duplicate_of: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    distance_m: Mapped[float] = mapped_column(Float)
    minutes_apart: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
