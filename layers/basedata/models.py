"""The base-data tables. Each row freezes the grid, village, town and district codes it was captured in
(like a ticket), so the area scope filters them the same way, and records who captured and last
updated it (``captured_by`` is the worker id / username): the "objects captured" per worker."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, BigInteger, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base

SRID = 4326


class _Placed:
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    district_code: Mapped[str | None] = mapped_column(String(12))
    captured_by: Mapped[str | None] = mapped_column(String(100))
    captured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_by: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Building(_Placed, Base):
    """A building or a rural house (楼栋/房屋)."""

    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(12))
    floors: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(300))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("standard_addresses.id"))


class Household(_Placed, Base):
    """A household (户): ``members`` is how many people live in it, recorded or not."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    household_no: Mapped[str] = mapped_column(String(30))
    head_name: Mapped[str] = mapped_column(String(50))
    members: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    phone: Mapped[str | None] = mapped_column(String(30))
    room: Mapped[str | None] = mapped_column(String(30))
    address: Mapped[str | None] = mapped_column(String(300))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"))
    address_id: Mapped[int | None] = mapped_column(ForeignKey("standard_addresses.id"))


class Resident(_Placed, Base):
    """A person (人口): registered (户籍), resident (常住) or floating (流动)."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"))
    name: Mapped[str] = mapped_column(String(50))
    gender: Mapped[str | None] = mapped_column(String(1))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    id_number: Mapped[str | None] = mapped_column(String(18))
    phone: Mapped[str | None] = mapped_column(String(30))
    relation: Mapped[str | None] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(10))
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(20)), default=list)


class BaseUnit(_Placed, Base):
    """A business (企业/商户, ``unit_type`` business) or an organisation (组织, ``organisation``)."""

    __tablename__ = "base_units"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    unit_type: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    credit_code: Mapped[str | None] = mapped_column(String(18))
    contact: Mapped[str | None] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(30))
    employees: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(300))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"))


class KeySite(_Placed, Base):
    """A key site (重点场所): a hazardous-chemical plant, a farm park (often a dedicated grid), with the
    cameras and sensors that watch it."""

    __tablename__ = "key_sites"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(12))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("base_units.id"))
    camera_ids: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    sensor_ids: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)
    note: Mapped[str] = mapped_column(Text, default="")
