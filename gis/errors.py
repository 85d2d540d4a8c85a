"""Domain errors raised by gis/ and layers/; api/errors.py maps each to one HTTP status."""

from __future__ import annotations

from typing import Any


class OneMapError(Exception):
    """Base class: the message is meant for people and is safe to show."""

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(OneMapError):
    """Input that cannot be used as given (bad file, bad column, bad value)."""


class InvalidGeometry(InvalidInput):
    """A geometry that is not valid, of the wrong type, or outside the city."""


class UnknownCRS(InvalidInput):
    """A coordinate reference system that PROJ does not know and OneMap does not handle."""


class CodeError(InvalidInput):
    """A malformed, duplicate or misplaced area or grid code."""


class NotFound(OneMapError):
    """The thing asked for does not exist (or is not visible to the caller)."""


class Forbidden(OneMapError):
    """The caller is known but may not do this: another role's move, a body role that is not the
    account's, a backdated time, a write for a sensor or worker outside its area. The message says
    why; ``detail`` may name the offending ids, which the caller sent itself."""


class Conflict(OneMapError):
    """The request clashes with the current state (e.g. a code already registered)."""


class TopologyError(OneMapError):
    """A grid set failed topology validation; ``detail`` holds the report (with GeoJSON)."""


class IllegalMove(OneMapError):
    """A workflow move not allowed from the current state; ``detail`` lists the allowed ones."""


class CalendarNotCovered(OneMapError):
    """The holiday calendar does not know a year a deadline falls in: an operator must load that
    year's official schedule (``onemap holidays load FILE``) instead of the system guessing."""


class RateLimited(OneMapError):
    """Too many requests from one caller (or in all); ``detail['retry_after']`` in seconds (HTTP 429)."""


class DatabaseUnavailable(OneMapError):
    """PostGIS cannot be reached right now."""
