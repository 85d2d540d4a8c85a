"""Sign-in throttling (登录限流): per IP, per account, and a lock per (account, IP).

What an attacker could do before: guess any account's password from many addresses, freeze the city
administrator by failing five times on purpose (the lock was per account), and tell real usernames from
unknown ones by the answer ("locked" only for real ones). Now:

- **Per (account, IP) lock**: ``lockout_failures`` wrong passwords for one username from one address
  lock that pair for ``lockout_minutes``. Someone failing from outside locks only themselves; the city
  administrator signing in from the command hall is not frozen.
- **Per account**: more than ``ACCOUNT_FAILURES`` failures for one username in ``WINDOW_S`` from all
  addresses together (a distributed guess) throttle that username for every address *except* those
  it has signed in from successfully before (remembered per process), so the owner keeps signing in.
- **Per IP**: more than ``IP_FAILURES`` failed sign-ins from one address in ``WINDOW_S``, whatever
  the usernames, throttle that address (spraying one password over many usernames). Successful
  sign-ins are not counted: a command hall behind one NAT address signs in all morning.

Every refusal is 429 with ``Retry-After``, for unknown usernames exactly as for real ones (the counts
are keyed by the text sent, not by an account row), so neither the message nor the status tells
whether an account exists. The counts live in the process's memory: cheap, no write per attempt, and
bounded (oldest keys dropped beyond ``MAX_KEYS``); with N server processes an attacker gets at most N
times the budget, which still turns millions of guesses into hundreds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

WINDOW_S = 15 * 60.0
IP_FAILURES = 100  # failed sign-ins per address per window, any usernames
ACCOUNT_FAILURES = 30  # failures per username per window, all addresses together
MAX_KEYS = 50_000
KNOWN_GOOD = 8  # addresses remembered per username after a successful sign-in


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in attempt is refused now and for how long (seconds, for Retry-After)."""

    reason: str
    retry_after: int


class _Windows:
    """Timestamps per key within a sliding window; bounded in keys."""

    def __init__(self) -> None:
        self.items: OrderedDict[str, deque[float]] = OrderedDict()

    def count(self, key: str, now: float, window: float) -> deque[float]:
        stamps = self.items.get(key)
        if stamps is None:
            return deque()
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        return stamps

    def add(self, key: str, now: float) -> None:
        stamps = self.items.setdefault(key, deque())
        stamps.append(now)
        self.items.move_to_end(key)
        while len(self.items) > MAX_KEYS:
            self.items.popitem(last=False)


class SignInThrottle:
    """One per app (``app.state.sign_in_throttle``, so one per server process)."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.ips = _Windows()
        self.accounts = _Windows()
        self.pairs = _Windows()
        self.locked: OrderedDict[str, float] = OrderedDict()  # "user\0ip" → until
        self.good: dict[str, deque[str]] = {}

    def check(self, username: str, ip: str) -> Refusal | None:
        """Refusal if this attempt may not be made now, else None."""
        now = self.clock()
        pair = f"{username}\0{ip}"
        with self.lock:
            until = self.locked.get(pair)
            if until is not None and until > now:
                return Refusal("too many failed sign-ins from this address: wait and try again", _ceil(until - now))
            ip_stamps = self.ips.count(ip, now, WINDOW_S)
            if len(ip_stamps) >= IP_FAILURES:
                return Refusal("too many failed sign-ins from this address: wait and try again",
                               _ceil(ip_stamps[0] + WINDOW_S - now))
            failures = self.accounts.count(username, now, WINDOW_S)
            if len(failures) >= ACCOUNT_FAILURES and ip not in self.good.get(username, ()):
                return Refusal("too many failed sign-ins: wait and try again", _ceil(failures[0] + WINDOW_S - now))
        return None

    def failed(self, username: str, ip: str, *, lockout_failures: int, lockout_minutes: int) -> None:
        now = self.clock()
        pair = f"{username}\0{ip}"
        with self.lock:
            self.ips.add(ip, now)
            self.accounts.add(username, now)
            self.pairs.add(pair, now)
            if len(self.pairs.count(pair, now, lockout_minutes * 60.0)) >= lockout_failures:
                self.locked[pair] = now + lockout_minutes * 60.0
                self.locked.move_to_end(pair)
                self.pairs.items.pop(pair, None)
                while len(self.locked) > MAX_KEYS:
                    self.locked.popitem(last=False)

    def succeeded(self, username: str, ip: str) -> None:
        with self.lock:
            self.pairs.items.pop(f"{username}\0{ip}", None)
            known = self.good.setdefault(username, deque(maxlen=KNOWN_GOOD))
            if ip not in known:
                known.append(ip)
            if len(self.good) > MAX_KEYS:
                self.good.pop(next(iter(self.good)))

    def clear(self) -> None:
        with self.lock:
            for windows in (self.ips, self.accounts, self.pairs):
                windows.items.clear()
            self.locked.clear()
            self.good.clear()


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))

