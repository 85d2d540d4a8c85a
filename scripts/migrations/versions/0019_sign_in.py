"""Sign-in throttle counts shared by every server process.

The counts lived in each process's memory, so N server processes gave an attacker N times the
budget. ``sign_in_failures`` holds one row per failed attempt inside the window (older rows are
deleted as new ones arrive); ``sign_in_pairs`` holds, per (username, address), the lock, where the
pair's count restarts, and whether the account has signed in from there before. Times are epoch
seconds from the server's clock, like the windows they are compared with.

Revision ID: 0019_sign_in
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_sign_in"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_failures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
    )
    op.create_index("sign_in_failures_user", "sign_in_failures", ["username", "at"])
    op.create_index("sign_in_failures_ip", "sign_in_failures", ["ip", "at"])
    op.create_index("sign_in_failures_at", "sign_in_failures", ["at"])
    op.create_table(
        "sign_in_pairs",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("ip", sa.String(64), primary_key=True),
        sa.Column("reset_at", sa.Float, nullable=False, server_default="0"),
        sa.Column("locked_until", sa.Float, nullable=False, server_default="0"),
        sa.Column("known", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("sign_in_pairs")
    op.drop_table("sign_in_failures")
