"""Workers' tables: people, their grids, GPS fixes (partitioned by month) and the last fix per worker.

Fixes are idempotent on (worker_id, ts) like sensor readings, and partitioned by month on ``ts`` for
the same reason (a year of 30-second fixes for a thousand workers is ~10^9 rows). Bad fixes are kept
with a ``flag`` (``zero``, ``accuracy``, ``speed``) so an auditor can see them, and are left out of
tracks. ``worker_last_positions`` holds one row per worker, upserted by each batch when it carries a
newer good fix: the map's worker layer and the live index read it instead of the big table.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326
ROLES = {
    "grid_chief": "网格长",
    "full_time": "专职网格员",
    "specialist": "专业网格员",
    "helper": "网格协管员",
}
FLAGS = ("zero", "accuracy", "speed")


class Worker(Base):
    """A grid worker (网格员) of one of the "1+1+N+N" roles."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    role: Mapped[str] = mapped_column(String(12))
    phone: Mapped[str | None] = mapped_column(String(30))
    town_code: Mapped[str | None] = mapped_column(String(12))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_workers_town", "town_code"),)


class Assignment(Base):
    """A worker's grid: "one person one grid" or "one person several grids" (一人一格 / 一人多格)."""

    __tablename__ = "worker_grids"

    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id"), primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_worker_grids_grid", "grid_code"),)


class Position(Base):
    """One GPS fix, resolved to a grid at intake; ``flag`` marks a bad fix (kept, not used in tracks)."""

    __tablename__ = "worker_positions"

    worker_id: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    speed_ms: Mapped[float | None] = mapped_column(Float)  # from the previous fix of the batch
    grid_code: Mapped[str | None] = mapped_column(String(15))
    town_code: Mapped[str | None] = mapped_column(String(12))
    match: Mapped[str | None] = mapped_column(String(10))
    flag: Mapped[str | None] = mapped_column(String(10))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("uq_worker_positions_worker_ts", "worker_id", text("ts DESC"), unique=True),
        {"postgresql_partition_by": "RANGE (ts)"},
    )
    __mapper_args__ = {"primary_key": [worker_id, ts]}


class LastPosition(Base):
    """The newest good fix per worker (the live layer)."""

    __tablename__ = "worker_last_positions"

    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id"), primary_key=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    town_code: Mapped[str | None] = mapped_column(String(12))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_worker_last_positions_updated", "updated_at"),)
