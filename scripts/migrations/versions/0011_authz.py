"""Scheduled server jobs: one row per job, claimed by whichever server process runs it.

Why a table: with several server processes each running the same timer, the row is the claim. A
process locks it with FOR UPDATE SKIP LOCKED (a process that finds it locked skips: another one is
running the job) and runs the job only when the last start is older than the job's period (another
process ran it recently). ``result`` keeps the last run's counts for operators.

Revision ID: 0011_authz
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011_authz"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("started_at", TZ),
        sa.Column("finished_at", TZ),
        sa.Column("result", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.execute("INSERT INTO job_runs (name) VALUES ('ticket_cards')")


def downgrade() -> None:
    op.drop_table("job_runs")
