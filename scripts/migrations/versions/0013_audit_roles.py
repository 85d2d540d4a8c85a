"""The application runs as a role that owns nothing: monthly partitions through the owner, and the
audit log's append-only trigger re-stated.

The app role (see ``scripts.migrate.grant_app_role``) may not create tables, but the ingest paths
make a month's partition of ``sensor_readings`` / ``worker_positions`` when the first row of that
month arrives. ``onemap_month_partition(parent, moment)`` does it as the owner (SECURITY DEFINER): it
accepts only a range-partitioned table in ``public`` and makes the one calendar month (UTC) holding
``moment``, named ``<parent>_pYYYYMM``, under an advisory lock so racing ingesters do not collide. Nothing
the caller passes reaches the SQL except as a quoted identifier or literal.

The audit log's trigger (0007) refuses UPDATE, DELETE and TRUNCATE for everyone, the owner too; the
app role additionally holds only SELECT and INSERT on the table, and, not owning it, cannot disable
the trigger.

Revision ID: 0013_audit_roles
Revises: 0007
"""

from alembic import op

revision = "0013_audit_roles"
down_revision = "0007"
branch_labels = None
depends_on = None

MONTH_PARTITION = """
CREATE OR REPLACE FUNCTION onemap_month_partition(parent text, moment timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first_day timestamptz := date_trunc('month', moment AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    part text := parent || '_p' || to_char(first_day AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF moment IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
        WHERE c.relnamespace = 'public'::regnamespace AND c.relname = parent AND p.partstrat = 'r') THEN
        RAISE EXCEPTION 'onemap_month_partition: % is not a partitioned table', parent
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass(format('public.%I', part)) IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext(part));
        EXECUTE format('CREATE TABLE IF NOT EXISTS public.%I PARTITION OF public.%I FOR VALUES FROM (%L) TO (%L)',
                       part, parent, first_day, first_day + interval '1 month');
    END IF;
    RETURN part;
END $$;
REVOKE ALL ON FUNCTION onemap_month_partition(text, timestamptz) FROM PUBLIC;
"""

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(MONTH_PARTITION)
    op.execute(APPEND_ONLY)


def downgrade() -> None:
    op.execute("DROP FUNCTION onemap_month_partition(text, timestamptz)")
