"""The registry's tables: areas (district, town/street, village/community), grids and their edits.

Both areas and grids are versioned like MapIt's generations: an edit closes the old row
(``valid_to``) and opens new ones; nothing is deleted, so a point can be resolved as of any time.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326


class GridEdit(Base):
    """One change to the registry (import, reshape, split, merge): who, why, what closed and opened."""

    __tablename__ = "grid_edits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    who: Mapped[str] = mapped_column(String(100))
    why: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    closed_codes: Mapped[list[str]] = mapped_column(ARRAY(String(15)), default=list)
    opened_codes: Mapped[list[str]] = mapped_column(ARRAY(String(15)), default=list)


class Area(Base):
    """A district (区/县), town or street (镇/街道) or village or community (村/社区)."""

    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str | None] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(100))
    parent_code: Mapped[str | None] = mapped_column(String(12))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    edit_id: Mapped[int] = mapped_column(ForeignKey("grid_edits.id"))

    __table_args__ = (
        Index("uq_areas_current_code", "code", unique=True, postgresql_where=text("valid_to IS NULL")),
        Index("ix_areas_geom", "geom", postgresql_using="gist"),
        Index("ix_areas_parent", "parent_code"),
    )


class Grid(Base):
    """A grid (网格) with its 15-digit unified code, one row per version."""

    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(15))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    village_code: Mapped[str] = mapped_column(String(12))
    town_code: Mapped[str] = mapped_column(String(12))
    district_code: Mapped[str] = mapped_column(String(12))
    households: Mapped[int | None] = mapped_column(Integer)
    population: Mapped[int | None] = mapped_column(Integer)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    edit_id: Mapped[int] = mapped_column(ForeignKey("grid_edits.id"))
    who: Mapped[str] = mapped_column(String(100))
    why: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("uq_grids_current_code", "code", unique=True, postgresql_where=text("valid_to IS NULL")),
        Index("ix_grids_geom", "geom", postgresql_using="gist"),
        Index("ix_grids_village", "village_code"),
        Index("ix_grids_code_valid", "code", "valid_from"),
    )
