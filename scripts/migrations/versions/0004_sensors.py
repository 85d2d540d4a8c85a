"""Sensors: registry, readings (partitioned by month), thresholds (GB 3095-2012), alarms.

Revision ID: 0004
Revises: 0002

The readings table is declared ``PARTITION BY RANGE (ts)`` with no partitions: the ingest path
creates each month when its first reading arrives. A trigger on ``tickets`` closes a sensor alarm
when its ticket is closed (or signed off), whichever process closes it.
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

# GB 3095-2012 环境空气质量标准, grade II (二级) limits; 24-hour means except O3 (daily max 8-hour mean).
THRESHOLDS = [
    ("pm25", "PM2.5", 75.0, "µg/m³", "24h"),
    ("pm10", "PM10", 150.0, "µg/m³", "24h"),
    ("no2", "NO2", 80.0, "µg/m³", "24h"),
    ("so2", "SO2", 150.0, "µg/m³", "24h"),
    ("o3", "O3", 160.0, "µg/m³", "8h"),
    ("co", "CO", 4.0, "mg/m³", "24h"),
]

READINGS = """
CREATE TABLE sensor_readings (
    sensor_id varchar(40) NOT NULL,
    ts timestamptz NOT NULL,
    pm25 double precision, pm10 double precision, no2 double precision,
    so2 double precision, o3 double precision, co double precision,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_sensor_readings_non_negative CHECK (
        coalesce(pm25, 0) >= 0 AND coalesce(pm10, 0) >= 0 AND coalesce(no2, 0) >= 0 AND
        coalesce(so2, 0) >= 0 AND coalesce(o3, 0) >= 0 AND coalesce(co, 0) >= 0)
) PARTITION BY RANGE (ts);
CREATE UNIQUE INDEX uq_sensor_readings_sensor_ts ON sensor_readings (sensor_id, ts DESC);
"""

CLOSE_ALARMS = """
CREATE OR REPLACE FUNCTION sensor_alarms_close_with_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sensor_alarms SET state = 'closed', closed_at = coalesce(NEW.closed_at, now()),
           note = 'ticket ' || NEW.id || ' ' || NEW.state
     WHERE ticket_id = NEW.id AND state = 'open';
    RETURN NULL;
END
$$;
CREATE TRIGGER tickets_close_sensor_alarms AFTER UPDATE OF state ON tickets
    FOR EACH ROW WHEN (NEW.state IN ('closed', 'signed_off') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION sensor_alarms_close_with_ticket();
"""


def _sensors() -> None:
    op.create_table(
        "sensors",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False, server_default="air"),
        sa.Column("pollutants", sa.ARRAY(sa.String(8)), nullable=False),
        sa.Column("owner", sa.String(100)),
        sa.Column("status", sa.String(10), nullable=False, server_default="active"),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("village_code", sa.String(12)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("district_code", sa.String(12)),
        sa.Column("registry_version", sa.Integer),
        sa.Column("match", sa.String(10)),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('air', 'enterprise', 'water', 'noise')", name="kind"),
        sa.CheckConstraint("status IN ('active', 'offline', 'retired')", name="status"),
    )
    op.create_index("ix_sensors_geom", "sensors", ["geom"], postgresql_using="gist")
    op.create_index("ix_sensors_grid", "sensors", ["grid_code"])
    op.create_index("ix_sensors_town", "sensors", ["town_code"])


def _thresholds() -> None:
    table = op.create_table(
        "sensor_thresholds",
        sa.Column("pollutant", sa.String(8), primary_key=True),
        sa.Column("label", sa.String(20), nullable=False),
        sa.Column("limit_value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(10), nullable=False),
        sa.Column("averaging", sa.String(10), nullable=False),
        sa.Column("consecutive", sa.Integer, nullable=False, server_default="3"),
        sa.Column("source", sa.String(60), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False, server_default="migration"),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("limit_value > 0", name="limit_positive"),
        sa.CheckConstraint("consecutive >= 1", name="consecutive_positive"),
    )
    op.bulk_insert(table, [
        {"pollutant": p, "label": label, "limit_value": v, "unit": unit, "averaging": avg, "consecutive": 3,
         "source": "GB 3095-2012 grade II"}
        for p, label, v, unit, avg in THRESHOLDS
    ])


def _alarms() -> None:
    op.create_table(
        "sensor_alarms",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("sensor_id", sa.String(40), sa.ForeignKey("sensors.id"), nullable=False),
        sa.Column("pollutant", sa.String(8), nullable=False),
        sa.Column("pollutants", sa.ARRAY(sa.String(8)), nullable=False),
        sa.Column("run_start", TZ, nullable=False),
        sa.Column("breach_at", TZ, nullable=False),
        sa.Column("last_over_at", TZ, nullable=False),
        sa.Column("peak", sa.Float, nullable=False),
        sa.Column("limit_value", sa.Float, nullable=False),
        sa.Column("state", sa.String(8), nullable=False, server_default="open"),
        sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("tickets.id")),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("detail", JSONB, nullable=False, server_default="{}"),
        sa.Column("raised_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("closed_at", TZ),
        sa.Column("note", sa.Text),
        sa.CheckConstraint("state IN ('open', 'closed')", name="state"),
    )
    op.create_index("uq_sensor_alarms_open", "sensor_alarms", ["sensor_id"], unique=True,
                    postgresql_where=sa.text("state = 'open'"))
    op.create_index("ix_sensor_alarms_sensor_breach", "sensor_alarms", ["sensor_id", "breach_at"])
    op.create_index("ix_sensor_alarms_ticket", "sensor_alarms", ["ticket_id"])


def upgrade() -> None:
    _sensors()
    op.execute(READINGS)
    _thresholds()
    _alarms()
    op.execute(CLOSE_ALARMS)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tickets_close_sensor_alarms ON tickets")
    op.execute("DROP FUNCTION IF EXISTS sensor_alarms_close_with_ticket()")
    op.drop_table("sensor_alarms")
    op.drop_table("sensor_thresholds")
    op.execute("DROP TABLE IF EXISTS sensor_readings CASCADE")
    op.drop_table("sensors")
