"""Tables of the field layer: idempotency keys, worker check-ins, public reports.

Why an idempotency table: a phone that loses the answer to a report sends it again; the report's
client-made key (``Idempotency-Key``) maps to what the first attempt created, so the retry answers the
same ticket instead of opening a second one. The key is claimed in the same transaction that creates
the ticket: a concurrent duplicate waits on the key's row and then reads the first one's answer.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from gis.db import Base


class IdempotencyKey(Base):
    """A client's key for one write (a ticket, a photo): who sent it, and what it made."""

    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(String(64), primary_key=True)  # the account, or public:<ip hash>
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))  # ticket | attachment
    ref_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CheckIn(Base):
    """A grid worker's check-in at a site (现场签到): where, when, which grid, near which ticket."""

    __tablename__ = "worker_checkins"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id"))
    client_id: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False))
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    site: Mapped[str] = mapped_column(Text, default="")
    grid_code: Mapped[str | None] = mapped_column(String(15))
    village_code: Mapped[str | None] = mapped_column(String(12))
    town_code: Mapped[str | None] = mapped_column(String(12))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    distance_m: Mapped[float | None] = mapped_column(Float)  # from the ticket's point
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("uq_worker_checkins_client", "worker_id", "client_id", unique=True),
                      Index("ix_worker_checkins_worker_at", "worker_id", "at"))


class PublicReport(Base):
    """A citizen's report from the public page and its follow-up code (查询码)."""

    __tablename__ = "public_reports"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    ip_hash: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_public_reports_ip_at", "ip_hash", "created_at"),
                      Index("ix_public_reports_at", "created_at"))
