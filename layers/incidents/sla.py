"""SLA clocks (办理时限): working hours and working days on the mainland holiday calendar.

Why three clocks: the seeds count some limits in calendar hours (water, power, gas and heating on site
within 1 hour, day or night), some in working hours (a department signs within 2 hours) and most in
working days (general matters 1-3, complex ones 5). Which clock a category uses is data (its
``limit_type``), not a branch here.

Conventions, all in Asia/Shanghai:
- Working days come from ``chinese_calendar.is_workday``, which knows the State Council's holidays
  *and* the make-up working weekends (调休). For a year it does not know yet (1.11 stops at 2026) the
  schedule an admin loaded with ``onemap holidays load FILE`` is used (``layers.incidents.holidays``);
  when neither knows the year, ``CalendarNotCovered`` is raised: a deadline counted on Monday-Friday
  alone would be wrong around every holiday, silently.
- Working hours are 08:30-12:00 and 13:30-17:30 (7.5 h a day), configurable with ``WorkSchedule``.
  A clock started at night or at lunch starts counting at the next opening.
- ``add_working_days(start, n)``: the day of receipt does not count (期间开始的当日不计入, as in the
  Civil Code art. 201); the deadline is the close of the n-th working day after it.
- Every datetime must be timezone-aware (naive → ValueError); results are in Asia/Shanghai.

Which clock and limit apply (``deadline``), where ``start`` is when that clock starts:
- ``dispatch`` (from intake): 1 working day (Shouguang: 1个工作日内转派); on the urgent clock 1 hour.
- ``sign`` (from dispatch): 2 hours (Zhucheng: 2小时内签收), in working hours, or calendar hours
  on the urgent clock.
- ``onsite`` (from dispatch): 1 calendar hour for ``urgent_hours`` categories (utilities);
  2 hours for simple matters (working hours, calendar hours if urgent); other categories have none.
- ``complete`` (from dispatch): the category's limit for the severity, in its ``limit_type``.
The urgent clock means: the category's ``limit_type`` is ``urgent_hours`` or the severity is urgent.

Cards (黄牌警示、红牌督办): ``card_state`` is yellow once 80% of the allowed time is used and red once the
deadline has passed (strictly after it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import chinese_calendar

from gis.errors import CalendarNotCovered, InvalidInput
from gis.settings import CITY_TZ
from layers.incidents import holidays
from layers.incidents.categories import Category, LimitType, Severity, get_category, parse_severity

YELLOW_AT = 0.8
Clock = Literal["working", "calendar"]
Kind = Literal["dispatch", "sign", "onsite", "complete"]


@dataclass(frozen=True)
class WorkSchedule:
    """The working periods of a working day, in local time, in order and not overlapping."""

    periods: tuple[tuple[time, time], ...] = (
        (time(8, 30), time(12, 0)),
        (time(13, 30), time(17, 30)),
    )
    tz: ZoneInfo = field(default=CITY_TZ)

    def __post_init__(self) -> None:
        flat = [t for period in self.periods for t in period]
        if not flat or any(a >= b for a, b in zip(flat, flat[1:], strict=False)):
            raise ValueError(f"working periods must be non-empty, ordered, not overlapping: {flat}")

    @classmethod
    def parse(cls, text: str, tz: str | None = None) -> WorkSchedule:
        """From settings text like ``"08:30-12:00,13:30-17:30"``."""
        periods = []
        for part in text.split(","):
            a, b = (time.fromisoformat(x.strip()) for x in part.split("-"))
            periods.append((a, b))
        return cls(tuple(periods), ZoneInfo(tz) if tz else CITY_TZ)

    @property
    def hours_per_day(self) -> float:
        return sum(
            _hours(datetime.combine(date.min, b) - datetime.combine(date.min, a))
            for a, b in self.periods
        )

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's working intervals as aware datetimes (empty on a non-working day)."""
        if not is_workday(day):
            return []
        return [
            (datetime.combine(day, a, self.tz), datetime.combine(day, b, self.tz))
            for a, b in self.periods
        ]

    def close(self, day: date) -> datetime:
        return datetime.combine(day, self.periods[-1][1], self.tz)


DEFAULT_SCHEDULE = WorkSchedule()


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600.0


@lru_cache(maxsize=8192)
def _package_workday(day: date) -> bool | None:
    """The package's answer, None for a year it does not know."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


def is_workday(day: date) -> bool:
    """Whether ``day`` is a working day in mainland China (holidays and make-up days included).

    Raises ``CalendarNotCovered`` for a year neither the package nor a loaded schedule knows."""
    known = _package_workday(day)
    if known is not None:
        return known
    loaded = holidays.loaded_years().get(day.year)
    if loaded is None:
        raise CalendarNotCovered(
            f"the holiday calendar does not cover {day.year} (chinese-calendar knows up to "
            f"{covered_until()}): load the State Council's {day.year} schedule with "
            f"`onemap holidays load FILE`, or upgrade chinese-calendar",
            detail={"year": day.year})
    return loaded.is_workday(day)


def covered_until() -> int:
    """The last year the installed chinese-calendar package knows."""
    return max(d.year for d in chinese_calendar.holidays)


def reset_calendar() -> None:
    """Forget cached days and loaded years (after upgrading chinese-calendar in place; tests)."""
    _package_workday.cache_clear()
    holidays.forget()


def _local(moment: datetime, tz: ZoneInfo, name: str = "datetime") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} {moment.isoformat()} is naive: give a timezone (Asia/Shanghai)")
    return moment.astimezone(tz)


def _non_negative(amount: float, what: str) -> None:
    if amount < 0:
        raise ValueError(f"{what} must be >= 0, got {amount}")


def add_urgent_hours(start: datetime, hours: float, *, tz: ZoneInfo = CITY_TZ) -> datetime:
    """``start`` plus calendar hours, day and night (utilities on site within 1 hour)."""
    _non_negative(hours, "hours")
    return _local(start, tz, "start") + timedelta(hours=hours)


def add_working_hours(
    start: datetime, hours: float, *, schedule: WorkSchedule = DEFAULT_SCHEDULE
) -> datetime:
    """The moment ``hours`` working hours after ``start``; a deadline on a period's end stays there."""
    _non_negative(hours, "hours")
    cursor = _local(start, schedule.tz, "start")
    remaining = timedelta(hours=hours)
    if not remaining:
        return cursor
    day = cursor.date()
    while True:
        for a, b in schedule.intervals(day):
            begin = max(a, cursor)
            if begin >= b:
                continue
            if remaining <= b - begin:
                return begin + remaining
            remaining -= b - begin
        day += timedelta(days=1)


def _next_workday(day: date) -> date:
    day += timedelta(days=1)
    while not is_workday(day):
        day += timedelta(days=1)
    return day


def add_working_days(
    start: datetime, days: int, *, schedule: WorkSchedule = DEFAULT_SCHEDULE
) -> datetime:
    """The close of the ``days``-th working day after the day of ``start`` (that day not counted).

    ``days=0`` means "today": the close of the start day if it is a working day not yet closed,
    otherwise of the next working day.
    """
    if days != int(days):
        raise ValueError(f"working days must be a whole number, got {days}")
    _non_negative(days, "days")
    local = _local(start, schedule.tz, "start")
    day = local.date()
    if days == 0:
        if is_workday(day) and local < schedule.close(day):
            return schedule.close(day)
        return schedule.close(_next_workday(day))
    for _ in range(int(days)):
        day = _next_workday(day)
    return schedule.close(day)


def working_hours_between(
    a: datetime, b: datetime, *, schedule: WorkSchedule = DEFAULT_SCHEDULE
) -> float:
    """Working hours from ``a`` to ``b`` (negative when ``b`` is before ``a``)."""
    a, b = _local(a, schedule.tz, "a"), _local(b, schedule.tz, "b")
    if b < a:
        return -working_hours_between(b, a, schedule=schedule)
    total = timedelta()
    day = a.date()
    while day <= b.date():
        for start, end in schedule.intervals(day):
            overlap = min(end, b) - max(start, a)
            if overlap > timedelta():
                total += overlap
        day += timedelta(days=1)
    return _hours(total)


def _as_category(category: Category | str) -> Category:
    return category if isinstance(category, Category) else get_category(category)


def clock_of(category: Category | str, severity: Severity | str) -> Clock:
    """``calendar`` on the urgent clock (urgent_hours category or urgent severity), else ``working``."""
    cat, sev = _as_category(category), parse_severity(severity)
    urgent = cat.limit_type is LimitType.URGENT_HOURS or sev is Severity.URGENT
    return "calendar" if urgent else "working"


def _add(start: datetime, amount: float, unit: LimitType, schedule: WorkSchedule) -> datetime:
    if unit is LimitType.URGENT_HOURS:
        return add_urgent_hours(start, amount, tz=schedule.tz)
    if unit is LimitType.WORKING_HOURS:
        return add_working_hours(start, amount, schedule=schedule)
    return add_working_days(start, int(amount), schedule=schedule)


def _hours_unit(clock: Clock) -> LimitType:
    return LimitType.URGENT_HOURS if clock == "calendar" else LimitType.WORKING_HOURS


def deadline(
    start: datetime,
    category: Category | str,
    severity: Severity | str,
    kind: Kind = "complete",
    *,
    schedule: WorkSchedule = DEFAULT_SCHEDULE,
) -> datetime:
    """When the ``kind`` clock started at ``start`` runs out (rules in the module docstring)."""
    cat, sev = _as_category(category), parse_severity(severity)
    clock = clock_of(cat, sev)
    if kind == "complete":
        return _add(start, cat.limit(sev), cat.limit_type, schedule)
    if kind == "sign":
        return _add(start, 2, _hours_unit(clock), schedule)
    if kind == "dispatch":
        if clock == "calendar":
            return add_urgent_hours(start, 1, tz=schedule.tz)
        return add_working_days(start, 1, schedule=schedule)
    if kind == "onsite":
        if cat.limit_type is LimitType.URGENT_HOURS:
            return add_urgent_hours(start, 1, tz=schedule.tz)
        if cat.complexity == "simple":
            return _add(start, 2, _hours_unit(clock), schedule)
        raise InvalidInput(f"category {cat.code} {cat.name} has no on-site deadline")
    raise InvalidInput(f"unknown deadline kind {kind!r}; use dispatch, sign, onsite or complete")


def _elapsed(a: datetime, b: datetime, clock: Clock, schedule: WorkSchedule) -> float:
    if clock == "calendar":
        return _hours(_local(b, schedule.tz) - _local(a, schedule.tz))
    return working_hours_between(a, b, schedule=schedule)


def card_state(
    now: datetime,
    start: datetime,
    deadline: datetime,
    *,
    clock: Clock = "working",
    schedule: WorkSchedule = DEFAULT_SCHEDULE,
) -> Literal["ok", "yellow", "red"]:
    """ok, yellow (>= 80% of the allowed time used) or red (deadline passed: 红牌).

    Time is measured on ``clock`` (see ``clock_of``): on the working clock a night or a weekend does
    not use up allowed time. If no working time lies between start and deadline, calendar time is used.
    """
    if _local(now, schedule.tz, "now") > _local(deadline, schedule.tz, "deadline"):
        return "red"
    allowed = _elapsed(start, deadline, clock, schedule)
    if allowed <= 0 and clock == "working":
        clock, allowed = "calendar", _elapsed(start, deadline, "calendar", schedule)
    if allowed <= 0:
        return "yellow"
    used = _elapsed(start, now, clock, schedule)
    return "yellow" if used >= YELLOW_AT * allowed else "ok"
