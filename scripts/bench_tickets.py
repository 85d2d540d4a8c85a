"""`onemap bench tickets`: load 10,000 simulated tickets into the demo city, time the monthly ranking.

Baseline, named and measured in the same run: the same ranking computed in pandas after fetching the
cohort's tickets and events (what an analyst would do with an export). Both must agree on every rate;
the bench says so. The SQL ranking is timed cold (first run) and warm (median of five).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from layers.incidents import kpis as K

END = datetime(2026, 3, 28, 20, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
MONTH = "2026-03"

_FETCH = """
SELECT t.id, t.town_code AS code, e.at, e.move, e.rework,
       (e.payload->>'due')::timestamptz AS due,
       (e.payload->>'sign_due')::timestamptz AS sign_due,
       coalesce(e.payload->>'until', e.payload->>'complete_due')::timestamptz AS complete_due,
       (e.payload->>'satisfied')::boolean AS satisfied
FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id AND e.at <= :as_of
WHERE t.created_at >= :start AND t.created_at < :end AND t.created_at <= :as_of
  AND t.duplicate_of IS NULL AND t.parent_id IS NULL AND t.town_code IS NOT NULL
ORDER BY t.id, e.at, e.id
"""


def _first(ev: pd.DataFrame, moves: list[str], column: str, last: bool = False) -> pd.Series:
    rows = ev[ev.move.isin(moves)].groupby("id")
    return (rows.last() if last else rows.first())[column]


def pandas_ranking(session: Session, *, month: str, as_of: datetime) -> pd.DataFrame:
    """The baseline: fetch the cohort's events, then the KPIs.py definitions in pandas."""
    p = K.month_period(month)
    ev = pd.DataFrame(
        session.execute(text(_FETCH), {"start": p.start, "end": p.end, "as_of": as_of})
        .mappings()
        .all()
    )
    ev["on_time"] = ev["at"] <= ev["due"]
    per = ev.groupby("id").agg(code=("code", "first"), reworked=("rework", "any"))
    has = ev.assign(one=True).pivot_table(
        index="id", columns="move", values="one", aggfunc="any", fill_value=False
    )
    for move in ("reject", "dispatch", "grab", "close", "sign_off"):
        per[move] = has[move] if move in has else False
    per["dispatched"] = per.dispatch | per.grab
    per["sign_on_time"] = _first(ev, ["sign"], "on_time")
    per["sign_due"] = _first(ev, ["dispatch", "grab"], "sign_due", last=True)
    per["complete_on_time"] = _first(ev, ["complete"], "on_time", last=True)
    per["complete_due"] = _first(ev, ["dispatch", "grab", "extend"], "complete_due", last=True)
    revisits = ev[ev.move == "revisit"].assign(ok=lambda d: d.satisfied.astype(bool))
    rev = revisits.groupby("id").ok.agg(["size", "sum"]).astype(float)
    per["revisits"], per["satisfied"] = rev["size"], rev["sum"]
    per = per.fillna({"revisits": 0, "satisfied": 0})
    live = per.dispatched & ~per.sign_off & ~per.reject
    per["sign_base"] = per.sign_on_time.notna() | (live & (per.sign_due < as_of))
    per["complete_base"] = per.complete_on_time.notna() | (live & (per.complete_due < as_of))
    g = per.assign(
        sign_ok=per.sign_on_time.eq(True),
        complete_ok=per.complete_on_time.eq(True),
        fixed=per.close & ~per.reworked,
        shut=per.close | per.sign_off,
        accepted=~per.reject,
    ).groupby("code")
    s = g.sum(numeric_only=True)
    out = (
        pd.DataFrame(
            {
                "timely_sign_rate": s.sign_ok / s.sign_base.where(s.sign_base > 0),
                "on_time_completion_rate": s.complete_ok
                / s.complete_base.where(s.complete_base > 0),
                "first_time_fix_rate": s.fixed / s.close.where(s.close > 0),
                "satisfaction_rate": s.satisfied / s.revisits.where(s.revisits > 0),
                "closure_rate": s.shut / s.accepted.where(s.accepted > 0),
            }
        )
        .round(4)
        .reset_index()
    )
    return K.rank(out)


T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def _agree(sql: pd.DataFrame, pdf: pd.DataFrame) -> bool:
    a = sql.set_index("code")[K.RATES].astype(float)
    b = pdf.set_index("code")[K.RATES].astype(float).reindex(a.index)
    return bool(
        np.allclose(a.to_numpy(), b.to_numpy(), atol=1e-4, equal_nan=True)
        and sql.code.tolist() == pdf.code.tolist()
    )


def run_on(session: Session, console: Console, *, tickets: int = 10_000) -> dict:
    """Simulate ``tickets`` in March 2026 into ``session``'s demo city and time the rankings."""
    from layers.incidents.simulate import simulate

    days = 25
    load_s, summary = _timed(
        lambda: simulate(session, days=days, per_day=tickets // days, seed=1, end=END)
    )
    session.commit()
    from scripts.bench import analyze

    analyze(session.get_bind().engine.url.render_as_string(hide_password=False), "tickets", "ticket_events")
    cold_s, table = _timed(lambda: K.ranking(session, "town", month=MONTH, as_of=END))
    warm = [_timed(lambda: K.ranking(session, "town", month=MONTH, as_of=END))[0] for _ in range(5)]
    dept_s, _ = _timed(lambda: K.ranking(session, "department", month=MONTH, as_of=END))
    grid_s, grids = _timed(lambda: K.kpis(session, "grid", month=MONTH, as_of=END))
    base = [_timed(lambda: pandas_ranking(session, month=MONTH, as_of=END)) for _ in range(3)]
    base_s = statistics.median(b[0] for b in base)
    agree = _agree(table, base[0][1])
    warm_s = statistics.median(warm)
    figures = {
        "tickets": summary.tickets,
        "events": summary.events,
        "load_s": load_s,
        "ranking_cold_s": cold_s,
        "ranking_warm_s": warm_s,
        "department_s": dept_s,
        "grid_kpis_s": grid_s,
        "grids": len(grids),
        "baseline_pandas_s": base_s,
        "agree": agree,
        "towns": len(table),
    }
    _print(console, figures)
    return figures


def _print(console: Console, f: dict) -> None:
    t = Table(
        title=f"onemap bench tickets — {f['tickets']:,} tickets, {f['events']:,} events, {MONTH}"
    )
    t.add_column("step")
    t.add_column("seconds", justify="right")
    t.add_column("vs baseline", justify="right")
    t.add_row("simulate + bulk load + cards", f"{f['load_s']:.2f}", "")
    t.add_row(
        "baseline: fetch events + same KPIs in pandas (median of 3)",
        f"{f['baseline_pandas_s']:.3f}",
        "1.0x",
    )
    for label, key in (
        ("SQL town ranking, first run", "ranking_cold_s"),
        ("SQL town ranking, warm (median of 5)", "ranking_warm_s"),
        ("SQL department ranking", "department_s"),
        (f"SQL KPIs for all {f['grids']} grids", "grid_kpis_s"),
    ):
        t.add_row(label, f"{f[key]:.3f}", f"{f[key] / f['baseline_pandas_s']:.2f}x")
    console.print(t)
    verdict = "PASS" if f["ranking_cold_s"] < 2.0 else "FAIL"
    console.print(
        f"{f['towns']} towns ranked; SQL and pandas agree on every rate: {f['agree']}; "
        f"target < 2 s for the monthly ranking: {verdict}"
    )


def bench_tickets(console: Console, *, tickets: int = 10_000) -> dict:
    """In a scratch database: load the demo city, then :func:`run_on`."""
    from scripts.bench import scratch_database
    from scripts.demo_load import load_into

    with scratch_database("onemap_bench_tickets") as url:
        engine = create_engine(url)
        with Session(engine) as session:
            load_into(session, validate=False)
            session.commit()
            figures = run_on(session, console, tickets=tickets)
        engine.dispose()
    return figures
