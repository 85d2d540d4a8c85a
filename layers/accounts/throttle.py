"""Sign-in throttling (登录限流): per IP, per account, and a lock per (account, IP).

What an attacker could do before: guess any account's password from many addresses, freeze the city
administrator by failing five times on purpose (the lock was per account), and tell real usernames from
unknown ones by the answer ("locked" only for real ones). Now:

- **Per (account, IP) lock**: ``lockout_failures`` wrong passwords for one username from one address
  lock that pair for ``lockout_minutes``. Someone failing from outside locks only themselves; the city
  administrator signing in from the command hall is not frozen.
- **Per account**: more than ``ACCOUNT_FAILURES`` failures for one username in ``WINDOW_S`` from all
  addresses together (a distributed guess) throttle that username for every address *except* those
  it has signed in from successfully before, so the owner keeps signing in.
- **Per IP**: more than ``IP_FAILURES`` failed sign-ins from one address in ``WINDOW_S``, whatever
  the usernames, throttle that address (spraying one password over many usernames). Successful
  sign-ins are not counted: a command hall behind one NAT address signs in all morning.

Every refusal is 429 with ``Retry-After``, for unknown usernames exactly as for real ones (the counts
are keyed by the text sent, not by an account row), so neither the message nor the status tells
whether an account exists. The counts live in PostgreSQL (``sign_in_failures``, ``sign_in_pairs``),
so every server process sees the same ones: N processes no longer give an attacker N times the budget
(they did while the counts were in each process's memory). Each check is one query and each failure
one short transaction of its own, committed even though the request answers 401; refused attempts
write nothing, so the table holds at most ``IP_FAILURES`` rows per address per window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.db import transaction

WINDOW_S = 15 * 60.0
IP_FAILURES = 100  # failed sign-ins per address per window, any usernames
ACCOUNT_FAILURES = 30  # failures per username per window, all addresses together

Sessions = Callable[[], AbstractContextManager[Session]]  # a transaction to use, committed on exit


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in attempt is refused now and for how long (seconds, for Retry-After)."""

    reason: str
    retry_after: int


CHECK_SQL = text("""
SELECT (SELECT locked_until FROM sign_in_pairs WHERE username = :u AND ip = :ip AND locked_until > :now),
       (SELECT count(*) FROM sign_in_failures WHERE ip = :ip AND at > :since),
       (SELECT min(at) FROM sign_in_failures WHERE ip = :ip AND at > :since),
       (SELECT count(*) FROM sign_in_failures WHERE username = :u AND at > :since),
       (SELECT min(at) FROM sign_in_failures WHERE username = :u AND at > :since),
       coalesce((SELECT known FROM sign_in_pairs WHERE username = :u AND ip = :ip), false)
""")
PAIR_COUNT_SQL = text("""
SELECT count(*) FROM sign_in_failures f
 WHERE f.username = :u AND f.ip = :ip AND f.at > :since
   AND f.at > coalesce((SELECT reset_at FROM sign_in_pairs WHERE username = :u AND ip = :ip), '-Infinity')
""")
PAIR_SQL = text("""
INSERT INTO sign_in_pairs (username, ip, reset_at, locked_until, known)
VALUES (:u, :ip, :now, :until, :known)
ON CONFLICT (username, ip) DO UPDATE SET reset_at = EXCLUDED.reset_at,
  locked_until = greatest(sign_in_pairs.locked_until, EXCLUDED.locked_until),
  known = sign_in_pairs.known OR EXCLUDED.known
""")


class SignInThrottle:
    """The counts of one database, shared by every process that uses it. ``sessions`` gives the
    transaction each question or record runs in (the app: a fresh session committed at once)."""

    def __init__(self, sessions: Sessions, *, clock: Callable[[], float] = time.time) -> None:
        self.sessions = sessions
        self.clock = clock

    def check(self, username: str, ip: str) -> Refusal | None:
        """Refusal if this attempt may not be made now, else None."""
        now = self.clock()
        with self.sessions() as session:
            until, ip_n, ip_first, user_n, user_first, known = session.execute(
                CHECK_SQL, {"u": username, "ip": ip, "now": now, "since": now - WINDOW_S}).one()
        if until is not None:
            return Refusal("too many failed sign-ins from this address: wait and try again", _ceil(until - now))
        if ip_n >= IP_FAILURES:
            return Refusal("too many failed sign-ins from this address: wait and try again",
                           _ceil(ip_first + WINDOW_S - now))
        if user_n >= ACCOUNT_FAILURES and not known:
            return Refusal("too many failed sign-ins: wait and try again", _ceil(user_first + WINDOW_S - now))
        return None

    def failed(self, username: str, ip: str, *, lockout_failures: int, lockout_minutes: int) -> None:
        """Count a failure; the pair's ``lockout_failures``-th within ``lockout_minutes`` locks it."""
        now, lockout = self.clock(), lockout_minutes * 60.0
        with self.sessions() as session:
            session.execute(text("DELETE FROM sign_in_failures WHERE at <= :old"),
                            {"old": now - max(WINDOW_S, lockout)})
            session.execute(text("INSERT INTO sign_in_failures (at, username, ip) VALUES (:now, :u, :ip)"),
                            {"now": now, "u": username, "ip": ip})
            count = session.scalar(PAIR_COUNT_SQL, {"u": username, "ip": ip, "since": now - lockout})
            if count >= lockout_failures:  # locked; the pair counts afresh once the lock ends
                session.execute(PAIR_SQL, {"u": username, "ip": ip, "now": now, "until": now + lockout,
                                           "known": False})

    def succeeded(self, username: str, ip: str) -> None:
        """The pair counts afresh, and the account is known at this address from now on."""
        with self.sessions() as session:
            session.execute(PAIR_SQL, {"u": username, "ip": ip, "now": self.clock(), "until": 0, "known": True})


def committing(factory: Callable[[], Session]) -> Sessions:
    """Sessions from ``factory``, each committed (or rolled back) and closed at the end."""
    return partial(transaction, factory)


def nested_in(session: Session) -> Sessions:
    """Savepoints of one given session (tests: the throttle writes into the rolled-back session)."""

    @contextmanager
    def scope() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return scope


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))
