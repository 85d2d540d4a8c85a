"""Standard addresses (标准地址) for geocoding.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "standard_addresses",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("district", sa.String(50)),
        sa.Column("town", sa.String(50)),
        sa.Column("road", sa.String(100), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("building", sa.String(20)),
        sa.Column("unit", sa.String(20)),
        sa.Column("full_text", sa.String(300), nullable=False),
        sa.Column("norm_key", sa.String(200), nullable=False),
        sa.Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("grid_code", sa.String(15)),
        sa.Column("village_code", sa.String(12)),
        sa.Column("town_code", sa.String(12)),
        sa.Column("district_code", sa.String(12)),
        sa.Column("match", sa.String(10), nullable=False),
        sa.Column("registry_version", sa.Integer, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("grid_code IS NULL OR grid_code ~ '^[0-9]{15}$'", name="grid_code_digits"),
    )
    op.create_index("ix_standard_addresses_geom", "standard_addresses", ["geom"], postgresql_using="gist")
    op.create_index("ix_standard_addresses_norm_key", "standard_addresses", ["norm_key"])
    op.create_index("ix_standard_addresses_road_number", "standard_addresses", ["road", "number"])


def downgrade() -> None:
    op.drop_table("standard_addresses")
