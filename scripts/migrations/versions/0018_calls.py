"""Grid calls, departments report (网格呼叫、部门报到) and the base data of people, places, things and
organisations (人、地、事、物、组织).

Calls: ``calls`` (one row per call, its place frozen like a ticket's), ``call_events`` (append-only
timeline, as ``ticket_events``) and ``call_limits`` (each level's time limit as data, seeded with
Zhucheng's figures and the levels' own; planners edit rows, never code).

Base data: ``buildings`` (楼栋/房屋), ``households`` (户), ``residents`` (人口), ``base_units`` (企业商户 and
组织), ``key_sites`` (重点场所: 危化品企业, 农业园区), each attached to the grid (codes frozen) and, where
known, to a standard address; who captured and last updated each row (``captured_by`` = a worker id).

Revision ID: 0018_calls
Revises: 0005 (workers; tickets before it), depends on 0003 (standard addresses) and 0007 (accounts)
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0018_calls"
down_revision = "0005"
branch_labels = None
depends_on = ("0003", "0007")

TZ = sa.DateTime(timezone=True)

APPEND_ONLY = """
CREATE FUNCTION call_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'call_events is append-only: % refused (the timeline is never rewritten)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER call_events_no_update_delete BEFORE UPDATE OR DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION call_events_append_only();
CREATE TRIGGER call_events_no_truncate BEFORE TRUNCATE ON call_events
    FOR EACH STATEMENT EXECUTE FUNCTION call_events_append_only();
"""

# stage, key, minutes, clock, title. Zhucheng: a department signs within 2 hours; water, power, heating
# and gas on site within 1 hour; simple matters within 2 hours. The approval levels' limits are ours.
LIMITS = [
    ("grid_chief", "*", 30, "calendar", "网格长把关"),
    ("community", "*", 60, "calendar", "社区书记把关"),
    ("town", "*", 60, "calendar", "镇街分管负责同志把关"),
    ("sign", "*", 120, "calendar", "部门签收"),
    ("onsite", "*", 120, "calendar", "简易事项到场"),
    ("onsite", "water", 60, "calendar", "供水到场"),
    ("onsite", "power", 60, "calendar", "供电到场"),
    ("onsite", "heating", 60, "calendar", "供暖到场"),
    ("onsite", "gas", 60, "calendar", "燃气到场"),
]


def _place_columns() -> list[sa.Column]:
    return [
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False)),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("village_code", sa.String(12)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("district_code", sa.String(12)),
    ]


def _captured_columns() -> list[sa.Column]:
    return [
        sa.Column("captured_by", sa.String(100)),
        sa.Column("captured_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_by", sa.String(100)),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    ]


def _calls() -> None:
    op.create_table(
        "call_limits",
        sa.Column("stage", sa.String(20), primary_key=True),
        sa.Column("key", sa.String(20), primary_key=True, server_default="*"),
        sa.Column("minutes", sa.Integer, nullable=False),
        sa.Column("clock", sa.String(8), nullable=False, server_default="calendar"),
        sa.Column("title", sa.String(50), nullable=False, server_default=""),
        sa.CheckConstraint("minutes > 0", name="minutes_positive"),
        sa.CheckConstraint("clock IN ('calendar', 'working')", name="clock_kind"),
    )
    op.bulk_insert(sa.table("call_limits", sa.column("stage"), sa.column("key"), sa.column("minutes"),
                            sa.column("clock"), sa.column("title")),
                   [dict(zip(("stage", "key", "minutes", "clock", "title"), row, strict=True)) for row in LIMITS])
    op.create_table(
        "calls",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id")),
        sa.Column("category", sa.String(4)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("department", sa.String(20), nullable=False),
        *_place_columns(),
        sa.Column("raised_by", sa.String(100), nullable=False),
        sa.Column("raised_level", sa.String(12), nullable=False),
        sa.Column("state", sa.String(14), nullable=False),
        sa.Column("level_due", TZ),
        sa.Column("sign_due", TZ),
        sa.Column("onsite_due", TZ),
        sa.Column("dispatched_at", TZ),
        sa.Column("signed_at", TZ),
        sa.Column("arrived_at", TZ),
        sa.Column("arrive_geom", Geometry("POINT", srid=4326, spatial_index=False)),
        sa.Column("arrive_distance_m", sa.Float),
        sa.Column("onsite_on_time", sa.Boolean),
        sa.Column("sign_on_time", sa.Boolean),
        sa.Column("resolved_at", TZ),
        sa.Column("overdue", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("escalations", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_calls_state", "calls", ["state"])
    op.create_index("ix_calls_town", "calls", ["town_code"])
    op.create_index("ix_calls_grid", "calls", ["grid_code"])
    op.create_index("ix_calls_department", "calls", ["department"])
    op.create_index("ix_calls_created", "calls", ["created_at"])
    op.create_table(
        "call_events",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("call_id", sa.BigInteger, sa.ForeignKey("calls.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("move", sa.String(12), nullable=False),
        sa.Column("from_state", sa.String(14)),
        sa.Column("to_state", sa.String(14), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("payload", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index("ix_call_events_call_at", "call_events", ["call_id", "at"])
    op.execute(APPEND_ONLY)


def _basedata() -> None:
    op.create_table(
        "buildings",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("floors", sa.Integer),
        sa.Column("address", sa.String(300)),
        sa.Column("address_id", sa.BigInteger, sa.ForeignKey("standard_addresses.id", ondelete="SET NULL")),
        *_place_columns(),
        *_captured_columns(),
        sa.CheckConstraint("kind IN ('residential', 'house', 'commercial', 'industrial', 'public')", name="kind"),
    )
    op.create_table(
        "households",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("household_no", sa.String(30), nullable=False),
        sa.Column("head_name", sa.String(50), nullable=False),
        sa.Column("members", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("phone", sa.String(30)),
        sa.Column("room", sa.String(30)),
        sa.Column("address", sa.String(300)),
        sa.Column("building_id", sa.BigInteger, sa.ForeignKey("buildings.id")),
        sa.Column("address_id", sa.BigInteger, sa.ForeignKey("standard_addresses.id", ondelete="SET NULL")),
        *_place_columns(),
        *_captured_columns(),
        sa.CheckConstraint("members >= 0", name="members_non_negative"),
        sa.CheckConstraint("kind IN ('registered', 'resident', 'floating')", name="kind"),
    )
    op.create_index("uq_households_no", "households", ["household_no"], unique=True)
    op.create_table(
        "residents",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("household_id", sa.BigInteger, sa.ForeignKey("households.id")),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("gender", sa.String(1)),
        sa.Column("birth_year", sa.Integer),
        sa.Column("id_number", sa.String(18)),
        sa.Column("phone", sa.String(30)),
        sa.Column("relation", sa.String(10)),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("tags", ARRAY(sa.String(20)), nullable=False, server_default="{}"),
        *_place_columns(),
        *_captured_columns(),
        sa.CheckConstraint("gender IS NULL OR gender IN ('男', '女')", name="gender"),
        sa.CheckConstraint("kind IN ('registered', 'resident', 'floating')", name="kind"),
    )
    op.create_index("ix_residents_household", "residents", ["household_id"])
    op.create_table(
        "base_units",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("unit_type", sa.String(12), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("credit_code", sa.String(18)),
        sa.Column("contact", sa.String(50)),
        sa.Column("phone", sa.String(30)),
        sa.Column("employees", sa.Integer),
        sa.Column("address", sa.String(300)),
        sa.Column("building_id", sa.BigInteger, sa.ForeignKey("buildings.id")),
        *_place_columns(),
        *_captured_columns(),
        sa.CheckConstraint("unit_type IN ('business', 'organisation')", name="unit_type"),
    )
    op.create_table(
        "key_sites",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("unit_id", sa.BigInteger, sa.ForeignKey("base_units.id")),
        sa.Column("camera_ids", ARRAY(sa.String(40)), nullable=False, server_default="{}"),
        sa.Column("sensor_ids", ARRAY(sa.String(40)), nullable=False, server_default="{}"),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        *_place_columns(),
        *_captured_columns(),
        sa.CheckConstraint("kind IN ('hazchem', 'farm_park', 'market', 'school', 'hospital', 'other')",
                           name="kind"),
    )
    for table in ("buildings", "households", "residents", "base_units", "key_sites"):
        op.create_index(f"ix_{table}_grid", table, ["grid_code"])
        op.create_index(f"ix_{table}_captured_by", table, ["captured_by", "captured_at"])


def upgrade() -> None:
    _calls()
    _basedata()


def downgrade() -> None:
    for table in ("key_sites", "base_units", "residents", "households", "buildings", "call_events", "calls",
                  "call_limits"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS call_events_append_only()")
