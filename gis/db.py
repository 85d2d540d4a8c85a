"""Engine, sessions and the declarative base shared by every layer's tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from gis.settings import database_settings

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def engine(url: str | None = None) -> Engine:
    """One engine (one pool) per database URL, however the URL is given (None: the configured one)."""
    return _engine(url or database_settings().url())


def forget_engines() -> None:
    """Drop the cached engines (their pools close when unused): the configured URL changed."""
    _engine.cache_clear()


@lru_cache
def _engine(url: str) -> Engine:
    settings = database_settings()
    return create_engine(url, pool_size=settings.pool_size, max_overflow=settings.pool_overflow,
                         pool_timeout=10, pool_pre_ping=True)


def warm_pool(eng: Engine, connections: int) -> int:
    """Open ``connections`` pooled connections at once and have each backend load PostGIS, so the
    first requests after a start do not pay for new backends; returns how many were warmed."""
    held = []
    try:
        for _ in range(connections):
            conn = eng.connect()
            held.append(conn)
            conn.exec_driver_sql("SELECT ST_AsBinary(ST_MakePoint(0, 0))")
            conn.rollback()
    finally:
        for conn in held:
            conn.close()
    return len(held)


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
