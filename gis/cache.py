"""One process-wide cache for everything read from the database and kept between requests.

Why one class: the API serves sync routes from a thread pool, so every cache is shared by threads;
before this module each one (tiles, rendered grids, resolver indexes, gazetteers, ...) was its own
dict with its own eviction rule, some without a lock. :class:`Cache` is a small LRU with an optional
time to live, one lock, and build-once semantics: concurrent callers asking for the same missing key
wait for one build instead of each running the same query.

Keys name what the value depends on, starting with the database (tests run several in one process)
and usually the registry version (:func:`gis.registry.registry_version`, the newest edit id): a key
that carries the version is never stale, it just stops being asked for and ages out.
"""

from __future__ import annotations

import enum
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

V = TypeVar("V")


class _Default(enum.Enum):
    TTL = "the cache's own ttl"


OWN_TTL = _Default.TTL

_ALL: weakref.WeakSet[Cache] = weakref.WeakSet()


def database_key(session: Session) -> str:
    """Which database a session reads (the first part of every key: tests run several databases)."""
    bind = session.get_bind()
    url = getattr(bind, "url", None) or bind.engine.url
    return url.render_as_string(hide_password=True)


class Cache(Generic[V]):
    """An LRU of at most ``size`` values; each expires ``ttl`` seconds after it was stored (None: never,
    or per :meth:`put`). Thread-safe; :meth:`get_or_make` builds a missing value once."""

    def __init__(self, name: str, *, size: int = 128, ttl: float | None = None) -> None:
        self.name = name
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[Hashable, tuple[float | None, V]] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()
        _ALL.add(self)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __repr__(self) -> str:
        return f"Cache({self.name!r}, size={self.size}, ttl={self.ttl}, held={len(self)})"

    def get(self, key: Hashable) -> V | None:
        """The value for ``key`` or None (missing or expired)."""
        with self._lock:
            return self._get(key)

    def put(self, key: Hashable, value: V, *, ttl: float | None | _Default = OWN_TTL) -> None:
        """Store ``value``; ``ttl`` overrides the cache's own (None: this value never expires)."""
        life = self.ttl if ttl is OWN_TTL else ttl
        with self._lock:
            self._put(key, value, life)

    def get_or_make(self, key: Hashable, make: Callable[[], V], *, ttl: float | None | _Default = OWN_TTL) -> V:
        """The value for ``key``, made by ``make()`` when missing; concurrent callers of the same key
        wait for that one call. A ``make`` that raises stores nothing (values are never None)."""
        with self._lock:
            hit = self._get(key)
            if hit is not None:
                return hit
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                hit = self._get(key)
            if hit is not None:
                return hit
            try:
                value = make()
                self.put(key, value, ttl=ttl)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _get(self, key: Hashable) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] is not None and hit[0] <= time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[1]

    def _put(self, key: Hashable, value: V, ttl: float | None) -> None:
        self._items[key] = (None if ttl is None else time.monotonic() + ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def clear_all() -> None:
    """Forget every cache in the process (tests that write behind the caches' backs call this)."""
    for cache in list(_ALL):
        cache.clear()
