"""Cameras: cameras, camera_rules, detections, alarms (→ tickets), key_frames.

Revision ID: 0006
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _point(name: str = "geom") -> sa.Column:
    return sa.Column(name, Geometry("POINT", srid=4326, spatial_index=False))


def _cameras() -> None:
    op.create_table(
        "cameras",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("source_kind", sa.String(10), nullable=False, server_default="video"),
        _point(),
        sa.Column("heading_deg", sa.Float, nullable=False, server_default="0"),
        sa.Column("fov_deg", sa.Float, nullable=False, server_default="60"),
        sa.Column("range_m", sa.Float, nullable=False, server_default="60"),
        sa.Column("sample_fps", sa.Float, nullable=False, server_default="1"),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("village_code", sa.String(12)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("district_code", sa.String(12)),
        sa.Column("registry_version", sa.Integer),
        sa.Column("match", sa.String(10)),
        sa.Column("calibration", JSONB),
        sa.Column("status", sa.String(10), nullable=False, server_default="unknown"),
        sa.Column("status_note", sa.Text),
        sa.Column("last_frame_at", TZ),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('unknown', 'online', 'offline', 'error')", name="status"),
        sa.CheckConstraint("source_kind IN ('images', 'video', 'stream')", name="source_kind"),
        sa.CheckConstraint("fov_deg > 0 AND fov_deg <= 360", name="fov"),
        sa.CheckConstraint("sample_fps > 0", name="sample_fps"),
    )
    op.create_index("ix_cameras_geom", "cameras", ["geom"], postgresql_using="gist")
    op.create_index("ix_cameras_town", "cameras", ["town_code"])


def _rules() -> None:
    op.create_table(
        "camera_rules",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("camera_id", sa.String(40), sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("classes", sa.ARRAY(sa.String(40)), nullable=False),
        sa.Column("roi", JSONB),
        sa.Column("min_count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("min_dwell_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("cooldown_s", sa.Float, nullable=False, server_default="300"),
        sa.Column("clear_s", sa.Float, nullable=False, server_default="5"),
        sa.Column("stationary_s", sa.Float, nullable=False, server_default="10"),
        sa.Column("stationary_px", sa.Float, nullable=False, server_default="8"),
        sa.Column("category", sa.String(4), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False, server_default="general"),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.CheckConstraint("kind IN ('crowd', 'parking', 'present')", name="kind"),
        sa.CheckConstraint("min_count >= 1", name="min_count"),
    )
    op.create_index("ix_camera_rules_camera", "camera_rules", ["camera_id"])


def _detections() -> None:
    op.create_table(
        "detections",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("camera_id", sa.String(40), sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("class_name", sa.String(40), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("x1", sa.Float, nullable=False),
        sa.Column("y1", sa.Float, nullable=False),
        sa.Column("x2", sa.Float, nullable=False),
        sa.Column("y2", sa.Float, nullable=False),
        sa.Column("track_id", sa.Integer),
        _point(),
        sa.Column("grid_code", sa.String(15)),
    )
    op.create_index("ix_detections_camera_at", "detections", ["camera_id", "at"])
    op.create_index("ix_detections_class_at", "detections", ["class_name", "at"])
    op.create_index("ix_detections_geom", "detections", ["geom"], postgresql_using="gist")


def _alarms() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("camera_id", sa.String(40), sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule_id", sa.BigInteger, sa.ForeignKey("camera_rules.id", ondelete="SET NULL")),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("state", sa.String(8), nullable=False, server_default="active"),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dwell_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("updates", sa.Integer, nullable=False, server_default="0"),
        _point(),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id")),
        sa.Column("key_frame", sa.Text),
        sa.CheckConstraint("state IN ('active', 'ended')", name="state"),
    )
    op.create_index("ix_alarms_camera_state", "alarms", ["camera_id", "state"])
    op.create_index("ix_alarms_geom", "alarms", ["geom"], postgresql_using="gist")
    op.create_table(
        "key_frames",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("camera_id", sa.String(40), sa.ForeignKey("cameras.id", ondelete="CASCADE"), nullable=False),
        sa.Column("alarm_id", sa.BigInteger, sa.ForeignKey("alarms.id", ondelete="SET NULL")),
        sa.Column("at", TZ, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("detections", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_key_frames_camera_at", "key_frames", ["camera_id", "at"])


def upgrade() -> None:
    _cameras()
    _rules()
    _detections()
    _alarms()


def downgrade() -> None:
    for table in ("key_frames", "alarms", "detections", "camera_rules", "cameras"):
        op.drop_table(table)
