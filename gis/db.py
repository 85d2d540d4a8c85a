"""Engine, sessions and the declarative base shared by every layer's tables."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import Any, Literal

import psycopg
from sqlalchemy import Engine, MetaData, create_engine, text
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


def psycopg_connection(session: Session) -> psycopg.Connection:
    """The psycopg 3 connection under ``session``, inside the session's own transaction (for COPY)."""
    raw = session.connection().connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise RuntimeError(f"OneMap needs the psycopg 3 driver, not {type(raw).__name__}")
    return raw


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(engine(url), expire_on_commit=False)


def session_scope(url: str | None = None) -> AbstractContextManager[Session]:
    """One unit of work on the database at ``url``: commit on success, roll back on any error."""
    return transaction(session_factory(url))


@contextmanager
def transaction(factory: Callable[[], Session]) -> Iterator[Session]:
    """One unit of work in a session from ``factory``: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class SideConnections:
    """Short read-only questions asked on every request (the registry version, the caller's account)
    on the process's own autocommit connections instead of the request's session.

    One round trip (~0.1 ms) instead of a pool checkout, a pre-ping, BEGIN, the query and COMMIT, and
    the caller's session stays untouched, so a route that needs nothing else from the database never
    holds a pooled connection. The answer is as fresh as the session's would be (each question sees
    everything committed before it). A few connections per database per process, each used by one
    thread at a time (the lock guards only the idle list, never a query). A session already inside a
    transaction (it may hold its own uncommitted change) or bound to a connection (tests) is asked
    itself, as is every session when all side connections are busy or the database is away (then the
    session's own error says so: HTTP 503)."""

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._idle: dict[str, list[psycopg.Connection]] = {}
        self._open: dict[str, int] = {}
        self._size = size

    def fetchone(self, session: Session, sql: str, params: dict[str, Any] | None = None) -> tuple | None:
        """The first row of ``sql`` (psycopg ``%(name)s`` placeholders) or None."""
        bind = session.get_bind()
        if session.in_transaction() or not isinstance(bind, Engine):  # its own snapshot and changes
            return self._on_session(session, sql, params)
        key = bind.url.render_as_string(hide_password=False)
        conn = self._take(key)
        if conn is None:
            return self._on_session(session, sql, params)
        try:
            if conn is True:  # a new connection: made outside the lock
                conn = psycopg.connect(bind.url.set(drivername="postgresql").render_as_string(hide_password=False),
                                       autocommit=True, connect_timeout=5)
            row = conn.execute(sql, params, prepare=True).fetchone()
        except psycopg.Error:
            self._drop(key, conn)
            return self._on_session(session, sql, params)  # restarted or away: the session says which
        with self._lock:
            self._idle.setdefault(key, []).append(conn)
        return None if row is None else tuple(row)

    @staticmethod
    def _on_session(session: Session, sql: str, params: dict[str, Any] | None) -> tuple | None:
        """Through SQLAlchemy, so a database that is away raises its OperationalError (HTTP 503)."""
        converted = sql.replace("%(", ":").replace(")s", "") if params else sql
        row = session.execute(text(converted), params or {}).first()
        return None if row is None else tuple(row)

    def _take(self, key: str) -> psycopg.Connection | Literal[True] | None:
        """An idle connection, True to make a new one, or None when all are busy."""
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if idle:
                return idle.pop()
            if self._open.get(key, 0) < self._size:
                self._open[key] = self._open.get(key, 0) + 1
                return True
        return None

    def _drop(self, key: str, conn: psycopg.Connection | bool) -> None:
        with self._lock:
            self._open[key] -= 1
        if isinstance(conn, psycopg.Connection):
            conn.close()

    def databases(self) -> list[str]:
        with self._lock:
            return [k for k, n in self._open.items() if n]


SIDE = SideConnections()
