"""The audit log (审计日志): who did what, when, from where — written off the request path.

:class:`AuditWriter` takes entries from the request handlers without waiting and writes them in
batches, in their own transactions, on one background thread: a slow or restarting database delays
the log, never a request. Entries that cannot be written are retried and kept in memory (up to a
bound) until the database is back; only beyond that bound are they dropped, and counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from gis.errors import InvalidInput
from layers.accounts.models import AuditEntry

log = logging.getLogger("onemap.audit")

FIELDS = ("at", "username", "role", "method", "path", "status", "ip", "action", "object", "detail")


LIMITS = {"username": 64, "role": 12, "method": 8, "path": 2000, "ip": 64, "action": 100, "object": 200}


def _text(value: Any, limit: int | None = None) -> Any:
    """PostgreSQL text and jsonb refuse NUL; request paths come from anyone and may hold one."""
    if isinstance(value, str):
        value = value.replace("\x00", "\\0")
        return value[:limit] if limit else value
    if isinstance(value, dict):
        return {_text(str(k)): _text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text(v) for v in value]
    return value


def clean(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry with only the known fields, NUL-free and cut to the column widths."""
    return {k: _text(entry[k], LIMITS.get(k)) for k in FIELDS if k in entry}


def write(session: Session, entries: Sequence[dict[str, Any]]) -> int:
    """Insert entries (dicts with FIELDS) in one statement; the caller owns the transaction."""
    rows = [clean(e) for e in entries]
    if rows:
        session.execute(insert(AuditEntry), rows)
    return len(rows)


def query(session: Session, *, username: str | None = None, method: str | None = None,
          path_prefix: str | None = None, action: str | None = None, status: int | None = None,
          since: datetime | None = None, until: datetime | None = None, limit: int = 100,
          offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """Entries newest first, filtered; returns (total matching, rows)."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be 1-1000 and offset >= 0")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a timezone, e.g. 2026-11-01T08:00:00+08:00")
    stmt = select(AuditEntry)
    equal: list[tuple[Any, object]] = [(AuditEntry.username, username), (AuditEntry.method, method and method.upper()),
                                       (AuditEntry.action, action), (AuditEntry.status, status)]
    for column, value in equal:
        if value is not None and value != "":
            stmt = stmt.where(column == value)
    if path_prefix:
        stmt = stmt.where(AuditEntry.path.startswith(path_prefix, autoescape=True))
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.scalars(stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset))
    return int(total or 0), [_as_dict(r) for r in rows]


def rewrite_risks(session: Session) -> list[str]:
    """Why the role this session connects as could rewrite the audit log; empty when it cannot.

    The log is tamper-proof only against a role that is no superuser, does not own (or belong to the
    owner of) ``audit_log`` — an owner may disable its append-only trigger — and holds no UPDATE,
    DELETE or TRUNCATE on it (see scripts/migrate.py)."""
    row = session.execute(text(
        "SELECT current_user, r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE'), "
        "has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE') "
        "OR has_table_privilege(c.oid, 'TRUNCATE') "
        "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'audit_log'::regclass")).one()
    user, superuser, owner, writes = row
    risks = [f"the database role {user!r} is a superuser" if superuser else "",
             f"the database role {user!r} owns the audit log" if owner else "",
             f"the database role {user!r} may update, delete or truncate audit rows" if writes else ""]
    return [f"{r}: it could rewrite the audit log (run the server as a non-owner role: README, Audit log)"
            for r in risks if r]


def _as_dict(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.id, **{k: getattr(row, k) for k in FIELDS}}


class AuditWriter:
    """A bounded queue drained by one daemon thread into ``sessions()`` transactions.

    After the first entry of a batch it lingers ``linger_s`` for more: under steady load the writes
    of a tenth of a second share one transaction instead of costing one each (at 80 writes/s the
    writer's transactions were a tenth of the server's CPU)."""

    def __init__(self, sessions: Callable[[], Session], *, max_pending: int = 100_000, batch: int = 500,
                 retry_s: float = 1.0, linger_s: float = 0.1) -> None:
        self._sessions = sessions
        self._linger_s = linger_s
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_pending)
        self._batch = batch
        self._retry_s = retry_s
        self._pending: list[dict[str, Any]] = []
        self._idle = threading.Event()
        self._idle.set()
        self.dropped = 0
        self.written = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, entry: dict[str, Any]) -> None:
        """Queue one entry; never blocks the caller."""
        self._closed = False
        self._start()
        self._idle.clear()
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            log.error("audit queue full: entry dropped (%d so far)", self.dropped)

    @property
    def pending(self) -> int:
        """Entries accepted but not yet stored."""
        return self._queue.qsize() + len(self._pending)

    def close(self, timeout: float = 5.0) -> int:
        """Shutdown: write what is queued (waiting up to ``timeout``), then stop retrying quietly.
        Returns how many entries could not be stored (logged as an error: they are lost)."""
        self.flush(timeout)
        self._closed = True
        left = self.pending
        if left:
            log.error("audit log: %d entries could not be written before shutdown (database away)", left)
        return left

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._pending and self._idle.wait(0.05):
                return True
            time.sleep(0.01)
        return False

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._pending:
                self._pending.append(self._queue.get())
                if self._linger_s and self._queue.qsize() < self._batch:
                    time.sleep(self._linger_s)
            while len(self._pending) < self._batch:
                try:
                    self._pending.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._write(self._pending):
                self.written += len(self._pending)
                self._pending = []
                if self._queue.empty():
                    self._idle.set()
            else:
                time.sleep(self._retry_s)

    def _write(self, entries: list[dict[str, Any]]) -> bool:
        try:
            session = self._sessions()
            try:
                write(session, entries)
                session.commit()
            finally:
                session.close()
            return True
        except (OperationalError, InterfaceError, PoolTimeout):  # the database is away: keep them, retry
            if not self._closed:
                log.warning("audit log not written yet (%d entries pending); retrying", len(entries))
            return False
        except Exception:  # noqa: BLE001 - a bad entry must not block the ones behind it
            log.exception("audit batch refused; writing entries one by one")
            return self._write_each(entries)

    def _write_each(self, entries: list[dict[str, Any]]) -> bool:
        for entry in entries:
            try:
                session = self._sessions()
                try:
                    write(session, [entry])
                    session.commit()
                finally:
                    session.close()
            except (OperationalError, InterfaceError, PoolTimeout):
                return False
            except Exception:  # noqa: BLE001
                self.dropped += 1
                log.exception("audit entry dropped: %s %s", entry.get("method"), entry.get("path"))
        return True
