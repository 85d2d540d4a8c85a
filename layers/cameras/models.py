"""The cameras' tables (视频监控): cameras, detections, rules, alarms and annotated key frames.

A camera freezes the grid, village, town and district its position resolved to (like a ticket), so a
boundary change does not silently move it. A detection keeps its box in pixels and, when the camera is
calibrated, its foot point on the map with the grid it falls in: that is what puts every detection on
the one map. Key frames are files on disk (JPEG); the database keeps their paths.
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
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326
STATUSES = ("unknown", "online", "offline", "error")
SOURCE_KINDS = ("images", "video", "stream")


class Camera(Base):
    """One camera (摄像头): where it is, where it looks, where its frames come from, how it is doing."""

    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text, default="")  # folder, video file or rtsp/http URL
    source_kind: Mapped[str] = mapped_column(String(10), default="video")
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    heading_deg: Mapped[float] = mapped_column(Float, default=0.0)  # 0 = north, clockwise
    fov_deg: Mapped[float] = mapped_column(Float, default=60.0)
    range_m: Mapped[float] = mapped_column(Float, default=60.0)
    sample_fps: Mapped[float] = mapped_column(Float, default=1.0)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str | None] = mapped_column(String(12))
    registry_version: Mapped[int | None] = mapped_column(Integer)
    match: Mapped[str | None] = mapped_column(String(10))
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), default="unknown")
    status_note: Mapped[str | None] = mapped_column(Text)
    last_frame_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_cameras_geom", "geom", postgresql_using="gist"),
        Index("ix_cameras_town", "town_code"),
    )


class Detection(Base):
    """One object in one frame: class, confidence, box (pixels), track, and where it stands."""

    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    class_name: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    grid_code: Mapped[str | None] = mapped_column(String(15))

    __table_args__ = (
        Index("ix_detections_camera_at", "camera_id", "at"),
        Index("ix_detections_class_at", "class_name", "at"),
        Index("ix_detections_geom", "geom", postgresql_using="gist"),
    )


class CameraRule(Base):
    """A rule on one camera (crowd, parking, present), as :class:`layers.cameras.rules.Rule` fields."""

    __tablename__ = "camera_rules"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(10))
    classes: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    roi: Mapped[list[list[float]] | None] = mapped_column(JSONB)  # [[x, y], ...] pixels
    min_count: Mapped[int] = mapped_column(Integer, default=1)
    min_dwell_s: Mapped[float] = mapped_column(Float, default=0.0)
    cooldown_s: Mapped[float] = mapped_column(Float, default=300.0)
    clear_s: Mapped[float] = mapped_column(Float, default=5.0)
    stationary_s: Mapped[float] = mapped_column(Float, default=10.0)
    stationary_px: Mapped[float] = mapped_column(Float, default=8.0)
    category: Mapped[str] = mapped_column(String(4))
    severity: Mapped[str] = mapped_column(String(10), default="general")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (Index("ix_camera_rules_camera", "camera_id"),)


class Alarm(Base):
    """One alarm (告警): opened by a rule, kept up to date while it lasts, with its one ticket."""

    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("camera_rules.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(8), default="active")  # active | ended
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer, default=0)
    max_count: Mapped[int] = mapped_column(Integer, default=0)
    dwell_s: Mapped[float] = mapped_column(Float, default=0.0)
    updates: Mapped[int] = mapped_column(Integer, default=0)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=True)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    key_frame: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_alarms_camera_state", "camera_id", "state"),
        Index("ix_alarms_geom", "geom", postgresql_using="gist"),
    )


class KeyFrame(Base):
    """An annotated frame written to disk (boxes, track ids, the ROI), for an alarm or a camera's latest."""

    __tablename__ = "key_frames"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    path: Mapped[str] = mapped_column(Text)
    detections: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_key_frames_camera_at", "camera_id", "at"),)
