"""Workers: people, grid assignments, GPS fixes (partitioned by month), last fix per worker.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

POSITIONS = """
CREATE TABLE worker_positions (
    worker_id varchar(40) NOT NULL,
    ts timestamptz NOT NULL,
    geom geometry(POINT, 4326) NOT NULL,
    accuracy_m double precision,
    speed_ms double precision,
    grid_code varchar(15),
    town_code varchar(12),
    match varchar(10),
    flag varchar(10) CONSTRAINT ck_worker_positions_flag CHECK (flag IN ('zero', 'accuracy', 'speed')),
    received_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (ts);
CREATE UNIQUE INDEX uq_worker_positions_worker_ts ON worker_positions (worker_id, ts DESC);
"""


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("phone", sa.String(30)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("on_duty", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("role IN ('grid_chief', 'full_time', 'specialist', 'helper')", name="role"),
    )
    op.create_index("ix_workers_town", "workers", ["town_code"])
    op.create_table(
        "worker_grids",
        sa.Column("worker_id", sa.String(40), sa.ForeignKey("workers.id"), primary_key=True),
        sa.Column("grid_code", sa.String(15), primary_key=True),
        sa.Column("since", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("grid_code ~ '^[0-9]{15}$'", name="grid_code_digits"),
    )
    op.create_index("ix_worker_grids_grid", "worker_grids", ["grid_code"])
    op.execute(POSITIONS)
    op.create_table(
        "worker_last_positions",
        sa.Column("worker_id", sa.String(40), sa.ForeignKey("workers.id"), primary_key=True),
        sa.Column("ts", TZ, nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("accuracy_m", sa.Float),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_worker_last_positions_updated", "worker_last_positions", ["updated_at"])


def downgrade() -> None:
    op.drop_table("worker_last_positions")
    op.execute("DROP TABLE IF EXISTS worker_positions CASCADE")
    op.drop_table("worker_grids")
    op.drop_table("workers")
