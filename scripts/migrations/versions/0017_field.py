"""The field layer: idempotency keys (phones retry), worker check-ins, public reports (随手拍).

Revision ID: 0017_field
Revises: 0009_ticket_event_department, 0005
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0017_field"
down_revision = ("0009_ticket_event_department", "0005")
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("ref_id", sa.BigInteger),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "worker_checkins",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("worker_id", sa.String(40), sa.ForeignKey("workers.id"), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("accuracy_m", sa.Float),
        sa.Column("site", sa.Text, nullable=False, server_default=""),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("village_code", sa.String(12)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id")),
        sa.Column("distance_m", sa.Float),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("uq_worker_checkins_client", "worker_checkins", ["worker_id", "client_id"], unique=True)
    op.create_index("ix_worker_checkins_worker_at", "worker_checkins", ["worker_id", "at"])
    op.create_table(
        "public_reports",
        sa.Column("code", sa.String(16), primary_key=True),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("ip_hash", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_public_reports_ip_at", "public_reports", ["ip_hash", "created_at"])
    op.create_index("ix_public_reports_at", "public_reports", ["created_at"])


def downgrade() -> None:
    op.drop_table("public_reports")
    op.drop_table("worker_checkins")
    op.drop_table("idempotency_keys")
