"""Tickets: tickets, append-only events (trigger), attachments, routing overrides, duplicate links.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION ticket_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket_events is append-only: % refused (the timeline is never rewritten)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER ticket_events_no_update_delete BEFORE UPDATE OR DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION ticket_events_append_only();
CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_append_only();
"""


def _tickets() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("category", sa.String(4), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("reporter_name", sa.String(50)),
        sa.Column("reporter_phone", sa.String(30)),
        sa.Column("source_ref", sa.String(100)),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False)),
        sa.Column("address", sa.Text),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("village_code", sa.String(12)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("district_code", sa.String(12)),
        sa.Column("registry_version", sa.Integer),
        sa.Column("match", sa.String(10)),
        sa.Column("distance_m", sa.Float),
        sa.Column("unplaced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("unplaced_reason", sa.Text),
        sa.Column("state", sa.String(12), nullable=False, server_default="received"),
        sa.Column("department", sa.String(20), nullable=False),
        sa.Column("needs_town", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(20)),
        sa.Column("co_units", sa.ARRAY(sa.String(20)), nullable=False, server_default="{}"),
        sa.Column("parent_id", sa.BigInteger, sa.ForeignKey("tickets.id")),
        sa.Column("duplicate_of", sa.BigInteger, sa.ForeignKey("tickets.id")),
        sa.Column("rework_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("revisited", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("satisfied", sa.Boolean),
        sa.Column("dispatched_at", TZ),
        sa.Column("dispatch_due", TZ),
        sa.Column("sign_due", TZ),
        sa.Column("onsite_due", TZ),
        sa.Column("complete_due", TZ),
        sa.Column("card", sa.String(6), nullable=False, server_default="ok"),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("closed_at", TZ),
        sa.CheckConstraint(
            "channel IN ('hotline', 'app', 'wechat', 'patrol', 'camera', 'sensor')", name="channel"
        ),
        sa.CheckConstraint("category ~ '^[0-9]{4}$'", name="category_digits"),
        sa.CheckConstraint("severity IN ('general', 'important', 'urgent')", name="severity"),
        sa.CheckConstraint("card IN ('ok', 'yellow', 'red')", name="card"),
        sa.CheckConstraint("unplaced OR grid_code IS NOT NULL", name="placed_has_grid"),
        sa.CheckConstraint("rework_count >= 0", name="rework_count"),
    )
    op.create_index("ix_tickets_geom", "tickets", ["geom"], postgresql_using="gist")
    op.create_index("ix_tickets_category_created", "tickets", ["category", "created_at"])
    op.create_index("ix_tickets_state", "tickets", ["state"])
    op.create_index("ix_tickets_town", "tickets", ["town_code"])
    op.create_index("ix_tickets_grid", "tickets", ["grid_code"])
    op.create_index("ix_tickets_created", "tickets", ["created_at"])


def _events() -> None:
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("move", sa.String(12), nullable=False),
        sa.Column("from_state", sa.String(12)),
        sa.Column("to_state", sa.String(12), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("rework", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("payload", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index("ix_ticket_events_ticket_at", "ticket_events", ["ticket_id", "at"])
    op.create_index("ix_ticket_events_move_at", "ticket_events", ["move", "at"])
    op.execute(APPEND_ONLY)


def _others() -> None:
    op.create_table(
        "ticket_attachments",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(50), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_by", sa.String(100), nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("size > 0 AND size <= 10485760", name="size"),
    )
    op.create_index("ix_ticket_attachments_ticket", "ticket_attachments", ["ticket_id"])
    op.create_table(
        "routing_overrides",
        sa.Column("category", sa.String(4), primary_key=True),
        sa.Column("department", sa.String(20), nullable=False),
        sa.Column("needs_town", sa.Boolean, nullable=False),
        sa.Column("who", sa.String(100), nullable=False),
        sa.Column("why", sa.Text, nullable=False, server_default=""),
        sa.Column("at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "ticket_duplicates",
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("duplicate_of", sa.BigInteger, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("distance_m", sa.Float, nullable=False),
        sa.Column("minutes_apart", sa.Float, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
    )


def upgrade() -> None:
    _tickets()
    _events()
    _others()


def downgrade() -> None:
    op.drop_table("ticket_duplicates")
    op.drop_table("routing_overrides")
    op.drop_table("ticket_attachments")
    op.execute("DROP TABLE ticket_events")
    op.execute("DROP FUNCTION IF EXISTS ticket_events_append_only()")
    op.drop_table("tickets")
