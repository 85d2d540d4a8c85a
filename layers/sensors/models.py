"""Pollution sensors' tables (环境监测): the registry, readings, thresholds and alarms.

Readings are one row per sensor and timestamp with a column per pollutant (a station reports them
together), so "idempotent on (sensor, timestamp)" is the table's unique key. The table is range
partitioned by month on ``ts``: a year of minute data for a few hundred sensors is ~10^8 rows, and
monthly partitions keep each index small, let old months be detached or dropped whole, and let the
planner skip months a query does not touch. The unique index (sensor_id, ts DESC) serves both "latest
per sensor" (one index probe per sensor) and "series for one sensor" (a range scan). Partitions are
created on demand by the ingest path (``gis.bulk.ensure_month_partitions``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326
POLLUTANTS = ("pm25", "pm10", "no2", "so2", "o3", "co")
KINDS = ("air", "enterprise", "water", "noise")
STATUSES = ("active", "offline", "retired")


class Sensor(Base):
    """A monitoring point (监测点): where it is, the grid it resolved to at registration, who owns it."""

    __tablename__ = "sensors"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(12), default="air")
    pollutants: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    owner: Mapped[str | None] = mapped_column(String(100))  # enterprise (排污企业) if any
    status: Mapped[str] = mapped_column(String(10), default="active")
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str | None] = mapped_column(String(12))
    registry_version: Mapped[int | None] = mapped_column(Integer)
    match: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_sensors_geom", "geom", postgresql_using="gist"),
        Index("ix_sensors_grid", "grid_code"),
        Index("ix_sensors_town", "town_code"),
    )


class SensorReading(Base):
    """One report of one sensor at one instant; pollutants it does not measure are NULL.

    Units: µg/m³ for all but CO (mg/m³), as GB 3095-2012 states its limits.
    """

    __tablename__ = "sensor_readings"

    sensor_id: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pm25: Mapped[float | None] = mapped_column(Float)
    pm10: Mapped[float | None] = mapped_column(Float)
    no2: Mapped[float | None] = mapped_column(Float)
    so2: Mapped[float | None] = mapped_column(Float)
    o3: Mapped[float | None] = mapped_column(Float)
    co: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("uq_sensor_readings_sensor_ts", "sensor_id", text("ts DESC"), unique=True),
        {"postgresql_partition_by": "RANGE (ts)"},
    )
    __mapper_args__ = {"primary_key": [sensor_id, ts]}


class Threshold(Base):
    """A pollutant's alarm limit and duration rule (N consecutive readings over), editable by staff."""

    __tablename__ = "sensor_thresholds"

    pollutant: Mapped[str] = mapped_column(String(8), primary_key=True)
    label: Mapped[str] = mapped_column(String(20))
    limit_value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(10))
    averaging: Mapped[str] = mapped_column(String(10))  # the standard's averaging period, for the record
    consecutive: Mapped[int] = mapped_column(Integer, default=3)
    source: Mapped[str] = mapped_column(String(60))
    updated_by: Mapped[str] = mapped_column(String(100), default="migration")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Alarm(Base):
    """A breach (超标告警): one per sensor while open, one ticket; closed when its ticket closes."""

    __tablename__ = "sensor_alarms"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    pollutant: Mapped[str] = mapped_column(String(8))
    pollutants: Mapped[list[str]] = mapped_column(ARRAY(String(8)))
    run_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # first reading of the run
    breach_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the N-th reading over
    last_over_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # newest reading over seen
    peak: Mapped[float] = mapped_column(Float)
    limit_value: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(8), default="open")
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    town_code: Mapped[str | None] = mapped_column(String(12))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("uq_sensor_alarms_open", "sensor_id", unique=True, postgresql_where=text("state = 'open'")),
        Index("ix_sensor_alarms_sensor_breach", "sensor_id", "breach_at"),
        Index("ix_sensor_alarms_ticket", "ticket_id"),
    )
