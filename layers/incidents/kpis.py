"""Assessment figures (考核指标) per town, department or grid, computed in SQL over ``ticket_events``.

Why over the events: a month can be recomputed at any time, and a deadline extended later does not
rewrite what was due when a unit signed or completed (the deadline in force is in each ``sign`` and
``complete`` event's payload, written by the service).

Definitions (all over the *cohort*: tickets received in the period, not duplicates, not split
children; events up to ``as_of``, default now; units are the codes frozen on the ticket at intake —
``town_code`` (属地), ``department`` (the answerable department from routing), ``grid_code``):
- accepted = received − rejected (不予立案).
- timely sign-for rate (及时签收率) = tickets whose first ``sign`` was by its due / tickets signed,
  plus those dispatched, never signed, not signed off, whose latest sign deadline has passed.
- on-time completion rate (按期办结率) = tickets whose last ``complete`` was by its due / tickets
  completed, plus those not completed, not signed off, whose deadline in force has passed.
- first-time fix rate (一次性完工率) = closed without any rework event / closed (``close`` move).
- satisfaction rate (群众满意率) = satisfied revisits / revisits (every revisit counts, so an
  unsatisfied first call stays visible after the rework).
- closure rate (办结率) = closed or signed off (销号) / accepted.
A rate with an empty denominator is None. The ranking score is the mean of the available rates.

Grid calls (网格呼叫、部门报到, ``calls``; cohort: calls raised in the period, up to ``as_of``), per the
call's town, called department or grid, in extra columns (not in the ranking score):
- on-site on-time rate (到场及时率) = calls whose department arrived by the on-site deadline (water,
  power, heating, gas 1 hour; simple matters 2 hours) / calls arrived, plus those not arrived, not
  rejected or withdrawn, whose on-site deadline has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import csvsafe
from gis.errors import InvalidInput
from gis.settings import CITY_TZ
from layers.incidents.categories import load_categories, load_departments

Level = Literal["town", "department", "grid"]
LEVEL_COLUMN = {"town": "town_code", "department": "department", "grid": "grid_code"}
RATES = [
    "timely_sign_rate",
    "on_time_completion_rate",
    "first_time_fix_rate",
    "satisfaction_rate",
    "closure_rate",
]
COUNTS = [
    "received",
    "rejected",
    "accepted",
    "dispatched",
    "signed",
    "completed",
    "closed",
    "signed_off",
    "reworked",
    "revisits",
    "satisfied",
]

_PER_TICKET = """
WITH cohort AS (
    SELECT t.id, t.{key} AS code
    FROM tickets t
    WHERE t.created_at >= :start AND t.created_at < :end AND t.created_at <= :as_of
      AND t.duplicate_of IS NULL AND t.parent_id IS NULL AND t.{key} IS NOT NULL {code_filter}
), per AS (
    SELECT c.id, c.code,
        bool_or(e.move = 'reject') AS rejected,
        bool_or(e.move IN ('dispatch', 'grab')) AS dispatched,
        (array_agg(e.at <= (e.payload->>'due')::timestamptz ORDER BY e.at, e.id)
            FILTER (WHERE e.move = 'sign'))[1] AS sign_on_time,
        (array_agg((e.payload->>'sign_due')::timestamptz ORDER BY e.at DESC, e.id DESC)
            FILTER (WHERE e.move IN ('dispatch', 'grab')))[1] AS sign_due,
        (array_agg(e.at <= (e.payload->>'due')::timestamptz ORDER BY e.at DESC, e.id DESC)
            FILTER (WHERE e.move = 'complete'))[1] AS complete_on_time,
        (array_agg(coalesce(e.payload->>'until', e.payload->>'complete_due')::timestamptz
                   ORDER BY e.at DESC, e.id DESC)
            FILTER (WHERE e.move IN ('dispatch', 'grab', 'extend')))[1] AS complete_due,
        bool_or(e.rework) AS reworked,
        bool_or(e.move = 'close') AS closed,
        bool_or(e.move = 'sign_off') AS signed_off,
        count(*) FILTER (WHERE e.move = 'revisit') AS revisits,
        count(*) FILTER (WHERE e.move = 'revisit' AND (e.payload->>'satisfied')::boolean)
            AS satisfied
    FROM cohort c JOIN ticket_events e ON e.ticket_id = c.id AND e.at <= :as_of
    GROUP BY c.id, c.code
)
"""

_GROUPED = (
    _PER_TICKET
    + """
SELECT code,
    count(*) AS received,
    count(*) FILTER (WHERE rejected) AS rejected,
    count(*) FILTER (WHERE NOT rejected) AS accepted,
    count(*) FILTER (WHERE dispatched) AS dispatched,
    count(*) FILTER (WHERE sign_on_time IS NOT NULL) AS signed,
    count(*) FILTER (WHERE complete_on_time IS NOT NULL) AS completed,
    count(*) FILTER (WHERE closed) AS closed,
    count(*) FILTER (WHERE signed_off) AS signed_off,
    count(*) FILTER (WHERE reworked) AS reworked,
    sum(revisits)::int AS revisits,
    sum(satisfied)::int AS satisfied,
    count(*) FILTER (WHERE sign_on_time) AS sign_ok,
    count(*) FILTER (WHERE sign_on_time IS NOT NULL OR (dispatched AND NOT signed_off
                     AND NOT rejected AND sign_due < :as_of)) AS sign_base,
    count(*) FILTER (WHERE complete_on_time) AS complete_ok,
    count(*) FILTER (WHERE complete_on_time IS NOT NULL OR (dispatched AND NOT signed_off
                     AND NOT rejected AND complete_due < :as_of)) AS complete_base,
    count(*) FILTER (WHERE closed AND NOT reworked) AS fixed_first
FROM per GROUP BY code ORDER BY code
"""
)

CALL_COLUMNS = ["calls", "calls_onsite", "calls_onsite_on_time", "onsite_on_time_rate"]

_CALLS = """
SELECT c.{key} AS code,
    count(*) AS calls,
    count(*) FILTER (WHERE c.arrived_at IS NOT NULL AND c.arrived_at <= :as_of) AS calls_onsite,
    count(*) FILTER (WHERE c.arrived_at <= :as_of AND c.onsite_on_time) AS calls_onsite_on_time,
    count(*) FILTER (WHERE (c.arrived_at IS NOT NULL AND c.arrived_at <= :as_of AND c.onsite_on_time IS NOT NULL)
                     OR ((c.arrived_at IS NULL OR c.arrived_at > :as_of) AND c.onsite_due < :as_of
                         AND c.state NOT IN ('rejected', 'withdrawn'))) AS onsite_base
FROM calls c
WHERE c.created_at >= :start AND c.created_at < :end AND c.created_at <= :as_of AND c.{key} IS NOT NULL
  {code_filter}
GROUP BY 1 ORDER BY 1
"""

_BY_CATEGORY = """
SELECT t.{key} AS code, t.category, count(*) AS n
FROM tickets t
WHERE t.created_at >= :start AND t.created_at < :end AND t.created_at <= :as_of
  AND t.duplicate_of IS NULL AND t.parent_id IS NULL AND t.{key} IS NOT NULL {code_filter}
GROUP BY 1, 2 ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Period:
    """[start, end) in absolute time; a month is counted on Asia/Shanghai's calendar."""

    start: datetime
    end: datetime
    label: str


def month_period(month: str) -> Period:
    """``"2026-10"`` → 1 Oct 00:00 to 1 Nov 00:00, Asia/Shanghai."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=CITY_TZ)
    except ValueError:
        raise InvalidInput(f"month {month!r} must look like YYYY-MM, e.g. 2026-10") from None
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=CITY_TZ)
    return Period(start, end, month)


def period(
    month: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> Period:
    """A month, or any [start, end) with timezones."""
    if month:
        return month_period(month)
    if start is None or end is None:
        raise InvalidInput("give a month (YYYY-MM) or both start and end")
    if start.tzinfo is None or end.tzinfo is None or end <= start:
        raise InvalidInput("start and end need timezones and end must be after start")
    return Period(start, end, f"{start.isoformat()}/{end.isoformat()}")


def _level(level: str) -> str:
    if level not in LEVEL_COLUMN:
        raise InvalidInput(f"unknown level {level!r}; use town, department or grid")
    return LEVEL_COLUMN[level]


def _rate(ok: pd.Series, base: pd.Series) -> pd.Series:
    out = (ok.astype(float) / base.where(base > 0)).round(4)
    return out.astype(object).where(out.notna(), None)


def _names(session: Session, level: str, codes: list[str]) -> dict[str, str]:
    if level == "department":
        return {c: d.name for c, d in load_departments().items()}
    table = "areas" if level == "town" else "grids"
    rows = session.execute(
        text(f"SELECT code, name FROM {table} WHERE code = ANY(:c) ORDER BY valid_to NULLS FIRST"),
        {"c": codes},
    ).all()
    names: dict[str, str] = {}
    for code, name in rows:
        names.setdefault(code, name)
    return names


def _params(p: Period, as_of: datetime | None, code: str | None) -> dict:
    return {"start": p.start, "end": p.end, "as_of": as_of or datetime.now(UTC), "code": code}


def kpis(
    session: Session,
    level: str,
    *,
    month: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    code: str | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """One row per unit (code) with the counts and the five rates; empty frame when nothing."""
    key, p = _level(level), period(month, start, end)
    sql = _GROUPED.format(key=key, code_filter=f"AND t.{key} = :code" if code else "")
    frame = pd.DataFrame(session.execute(text(sql), _params(p, as_of, code)).mappings().all())
    calls = _calls_onsite(session, key, p, as_of, code)
    if frame.empty and calls.empty:
        return pd.DataFrame(columns=["code", "name", *COUNTS, *RATES, *CALL_COLUMNS])
    frame = _with_calls(frame, calls)
    frame["timely_sign_rate"] = _rate(frame.sign_ok, frame.sign_base)
    frame["on_time_completion_rate"] = _rate(frame.complete_ok, frame.complete_base)
    frame["first_time_fix_rate"] = _rate(frame.fixed_first, frame.closed)
    frame["satisfaction_rate"] = _rate(frame.satisfied, frame.revisits)
    frame["closure_rate"] = _rate(frame.closed + frame.signed_off, frame.accepted)
    frame["name"] = frame.code.map(_names(session, level, frame.code.tolist()))
    frame[COUNTS] = frame[COUNTS].astype(int)
    frame["onsite_on_time_rate"] = _rate(frame.calls_onsite_on_time, frame.onsite_base)
    frame[CALL_COLUMNS[:3]] = frame[CALL_COLUMNS[:3]].astype(int)
    return frame[["code", "name", *COUNTS, *RATES, *CALL_COLUMNS]]


def _calls_onsite(session: Session, key: str, p: Period, as_of: datetime | None, code: str | None) -> pd.DataFrame:
    """Per unit: grid calls raised, arrived on site, on time, and the on-site rate's denominator."""
    sql = _CALLS.format(key=key, code_filter=f"AND c.{key} = :code" if code else "")
    rows = session.execute(text(sql), _params(p, as_of, code)).mappings().all()
    return pd.DataFrame(rows, columns=["code", "calls", "calls_onsite", "calls_onsite_on_time", "onsite_base"])


_TICKET_SUMS = [*COUNTS, "sign_ok", "sign_base", "complete_ok", "complete_base", "fixed_first"]


def _with_calls(frame: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """Tickets' counts and the calls' side by side; a unit with only one of them gets zeros for the other."""
    if frame.empty:
        frame = pd.DataFrame(columns=["code", *_TICKET_SUMS])
    out = frame.merge(calls, on="code", how="outer").sort_values("code").reset_index(drop=True)
    numeric = [c for c in (*_TICKET_SUMS, "calls", "calls_onsite", "calls_onsite_on_time", "onsite_base")]
    out[numeric] = out[numeric].fillna(0).astype(int)
    return out


def counts_by_category(
    session: Session,
    level: str,
    *,
    month: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    code: str | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """Tickets received per unit and category (code, category, category_name, n)."""
    key, p = _level(level), period(month, start, end)
    sql = _BY_CATEGORY.format(key=key, code_filter=f"AND t.{key} = :code" if code else "")
    frame = pd.DataFrame(
        session.execute(text(sql), _params(p, as_of, code)).mappings().all(),
        columns=["code", "category", "n"],
    )
    categories = load_categories()
    frame["category_name"] = frame.category.map(lambda c: categories[c].name)
    return frame[["code", "category", "category_name", "n"]]


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Score = mean of the available rates; rank 1 is best (ties: closure rate, then code)."""
    if frame.empty:
        return frame.assign(score=pd.Series(dtype=float), rank=pd.Series(dtype=int))
    rates = frame[RATES].astype(float)
    out = frame.assign(score=rates.mean(axis=1, skipna=True).round(4))
    out = out.sort_values(
        ["score", "closure_rate", "code"],
        ascending=[False, False, True],
        na_position="last",
        key=lambda s: s.astype(float) if s.name != "code" else s,
    )
    out["rank"] = range(1, len(out) + 1)
    return out.reset_index(drop=True)


def ranking(
    session: Session,
    level: str,
    *,
    month: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """The monthly ranking table (月度排名) of towns or departments."""
    if level not in ("town", "department"):
        raise InvalidInput(f"rankings are by town or department, not {level!r}")
    return rank(kpis(session, level, month=month, start=start, end=end, as_of=as_of))


def to_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 with a BOM, so Excel on Chinese Windows opens the names correctly."""
    return csvsafe.frame(frame).to_csv(index=False).encode("utf-8-sig")
