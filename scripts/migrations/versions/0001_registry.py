"""Grid registry: edits, areas, grids (versioned).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _versioned() -> list[sa.Column]:
    return [
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("edit_id", sa.BigInteger, sa.ForeignKey("grid_edits.id"), nullable=False),
    ]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "grid_edits",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("who", sa.String(100), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("closed_codes", sa.ARRAY(sa.String(15)), nullable=False, server_default="{}"),
        sa.Column("opened_codes", sa.ARRAY(sa.String(15)), nullable=False, server_default="{}"),
    )
    op.create_table(
        "areas",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(12)),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("parent_code", sa.String(12)),
        *_versioned(),
        sa.CheckConstraint("code ~ '^[0-9]{12}$'", name="code_digits"),
        sa.CheckConstraint("level IN ('district', 'town', 'village')", name="level"),
    )
    op.create_index("uq_areas_current_code", "areas", ["code"], unique=True,
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.create_index("ix_areas_geom", "areas", ["geom"], postgresql_using="gist")
    op.create_index("ix_areas_parent", "areas", ["parent_code"])
    op.create_table(
        "grids",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("code", sa.String(15), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("village_code", sa.String(12), nullable=False),
        sa.Column("town_code", sa.String(12), nullable=False),
        sa.Column("district_code", sa.String(12), nullable=False),
        sa.Column("households", sa.Integer),
        sa.Column("population", sa.Integer),
        *_versioned(),
        sa.Column("who", sa.String(100), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.CheckConstraint("code ~ '^[0-9]{15}$'", name="code_digits"),
        sa.CheckConstraint("kind IN ('basic', 'dedicated')", name="kind"),
        sa.CheckConstraint("substr(code, 1, 12) = village_code", name="code_prefix"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity"),
    )
    op.create_index("uq_grids_current_code", "grids", ["code"], unique=True,
                    postgresql_where=sa.text("valid_to IS NULL"))
    op.create_index("ix_grids_geom", "grids", ["geom"], postgresql_using="gist")
    op.create_index("ix_grids_village", "grids", ["village_code"])
    op.create_index("ix_grids_code_valid", "grids", ["code", "valid_from"])


def downgrade() -> None:
    op.drop_table("grids")
    op.drop_table("areas")
    op.drop_table("grid_edits")
