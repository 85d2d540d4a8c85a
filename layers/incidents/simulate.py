"""A realistic week (or month) of tickets for the demo city, so the map and rankings show something true.

Why a bulk path: 10,000 tickets through the ORM one flush at a time takes minutes; here every ticket
still goes through :func:`layers.incidents.moves.plan_move` (the same workflow table, deadlines and
100% revisit rule as the API), but rows and events are inserted in batches. Duplicate detection and
split children are left to the service path. Points are sampled inside grids (urban community grids
twice as busy as village grids) and resolved with the same resolver as intake, so their frozen codes
are what intake would have stored. Cards are then computed by :func:`layers.incidents.cards.refresh_cards`.

Volumes (per day, default 150: Gaoming's 16,769 a year is ~46 a day for one district; a county of
1,347 grids with patrols and cameras sees a few times that): channels hotline 35%, patrol 25%, app
20%, WeChat 10%, camera 7%, sensor 3%; severity general 80%, important 15%, urgent 5%; most reports
in the day. Outcomes: ~3% rejected, ~15% grabbed by a town, ~15% signed late, ~18% completed late,
~2% returned, ~1% signed off, ~6% fail review, ~8% of revisits unsatisfied (second handling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from gis.errors import InvalidInput
from gis.locate import locate_many
from gis.registry import load_grids, registry_version
from layers.incidents import sla
from layers.incidents.cards import refresh_cards
from layers.incidents.categories import load_categories
from layers.incidents.models import CITIZEN_CHANNELS, Ticket, TicketEvent
from layers.incidents.moves import plan_move
from layers.incidents.routes import routing_table

CHANNEL_WEIGHTS = {
    "hotline": 0.35,
    "patrol": 0.25,
    "app": 0.20,
    "wechat": 0.10,
    "camera": 0.07,
    "sensor": 0.03,
}
MAJOR_BY_CHANNEL = {
    "hotline": {
        "01": 3,
        "02": 1,
        "03": 2,
        "04": 1,
        "05": 3,
        "06": 1,
        "07": 2,
        "08": 1,
        "09": 2,
        "10": 1,
    },
    "app": {"01": 4, "02": 1, "03": 1, "05": 3, "06": 1, "08": 1},
    "wechat": {"01": 3, "03": 1, "05": 2, "06": 1, "07": 1, "09": 1, "10": 1},
    "patrol": {"01": 4, "02": 2, "03": 1, "05": 4, "06": 1, "08": 2},
    "camera": {"12": 1},
    "sensor": {"11": 1},
}
HOUR_WEIGHTS = np.array(
    [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 12, 9, 10, 12, 12, 11, 10, 8, 7, 5, 4, 2, 1], dtype=float
)
SURNAMES = list("王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗")


class _Stop(Exception):
    """The simulated clock has reached ``end``: the ticket stays where it is."""


@dataclass
class SimTicket:
    """The fields :func:`plan_move` reads and writes, kept in memory until the batch insert."""

    channel: str
    category: str
    severity: str
    created_at: datetime
    row: dict[str, Any]
    state: str = "received"
    sign_due: datetime | None = None
    complete_due: datetime | None = None
    dispatched_at: datetime | None = None
    co_units: list[str] = field(default_factory=list)
    rework_count: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if hasattr(self, key) and key in SimTicket.__dataclass_fields__:
                setattr(self, key, value)
            self.row[key] = value


@dataclass
class SimSummary:
    tickets: int
    events: int
    start: datetime
    end: datetime
    by_state: dict[str, int]
    cards: dict[str, int]

    def text(self) -> str:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.by_state.items()))
        return (
            f"simulated {self.tickets} tickets and {self.events} events from "
            f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} ({states}); "
            f"cards: yellow {self.cards.get('yellow', 0)}, red {self.cards.get('red', 0)}"
        )


class _Life:
    """Walks one ticket through its life with random but plausible delays, until ``end``."""

    def __init__(self, t: SimTicket, rng: np.random.Generator, end: datetime) -> None:
        self.t, self.rng, self.end, self.clock = t, rng, end, t.created_at

    def after(self, hours: float) -> datetime:
        self.clock = self.clock + timedelta(hours=float(hours))
        if self.clock > self.end:
            raise _Stop
        return self.clock

    def do(
        self,
        name: str,
        role: str,
        hours: float,
        actor: str,
        note: str | None = None,
        **payload: Any,
    ) -> None:
        at = self.after(hours)
        changes, ev = plan_move(self.t, name, role=role, at=at, note=note, payload=payload)
        self.t.apply(changes)
        self.t.events.append({**ev, "actor": actor})

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def u(self, a: float, b: float) -> float:
        return float(self.rng.uniform(a, b))


def _hours_between(a: datetime, b: datetime) -> float:
    return max((b - a).total_seconds() / 3600.0, 0.05)


def _handle(life: _Life, unit_role: str, unit: str) -> None:
    """sign, start, complete (on time or late), from the ticket's current deadlines."""
    t = life.t
    late_sign = life.chance(0.15)
    life.do("sign", unit_role, life.u(2.5, 8) if late_sign else life.u(0.1, 1.5), unit)
    life.do("start", unit_role, life.u(0.1, 1.0), unit)
    span = _hours_between(t.dispatched_at or t.created_at, t.complete_due or life.clock)
    target = (t.dispatched_at or t.created_at) + timedelta(
        hours=span * (life.u(1.05, 1.6) if life.chance(0.18) else life.u(0.15, 0.9))
    )
    life.do("complete", unit_role, _hours_between(life.clock, target), unit, note="已处置完毕")


def _review_and_revisit(life: _Life, unit_role: str, unit: str) -> None:
    """Review (6% fail: rework), revisit citizens (8% unsatisfied: rework), close."""
    if life.chance(0.06):
        life.do("review_fail", "district", life.u(0.3, 3), "指挥中心", note="照片与现场不符")
        life.do("complete", unit_role, life.u(2, 10), unit, note="已重新处置")
    life.do("review_pass", "district", life.u(0.3, 4), "指挥中心")
    if life.t.channel in CITIZEN_CHANNELS:
        if life.chance(0.08):
            life.do(
                "revisit",
                "district",
                life.u(0.5, 12),
                "回访员",
                satisfaction=int(life.rng.integers(1, 3)),
            )
            life.do("complete", unit_role, life.u(2, 12), unit, note="二次办理完毕")
            life.do("review_pass", "district", life.u(0.3, 3), "指挥中心")
        life.do(
            "revisit",
            "district",
            life.u(0.5, 12),
            "回访员",
            satisfaction=int(life.rng.choice([3, 4, 5, 5, 5])),
        )
    life.do("close", "district", life.u(0.1, 2), "指挥中心")


def live(t: SimTicket, rng: np.random.Generator, end: datetime) -> None:
    """One ticket's life; stops silently when the simulated clock passes ``end``."""
    life = _Life(t, rng, end)
    row = t.row
    try:
        if life.chance(0.03):
            life.do("reject", "district", life.u(0.2, 2), "指挥中心", note="经核实不属实")
            return
        if t.channel in CITIZEN_CHANNELS and life.chance(0.4):
            life.do("check", "grid_worker", life.u(0.2, 2), "网格员", verified=True)
        town, dept = row["town_code"], row["department"]
        delay = life.u(24, 40) if life.chance(0.05) else life.u(0.1, 1.5)
        if row["needs_town"] and life.chance(0.15):
            life.do("grab", "town", delay, f"{town}值班", assignee=town)
        else:
            life.do(
                "dispatch",
                "district",
                delay,
                "指挥中心",
                assignee=town if row["needs_town"] else dept,
            )
        role, unit = ("town", f"{town}值班") if row["needs_town"] else ("department", dept)
        if life.chance(0.02):
            life.do("return", role, life.u(0.5, 3), unit, note="需区级协调多部门")
            life.do("dispatch", "district", life.u(0.5, 4), "指挥中心", assignee=dept)
            role, unit = "department", dept
        if life.chance(0.01):
            life.do(
                "sign_off", "district", life.u(4, 48), "指挥中心", note="客观无法解决，批准销号"
            )
            return
        _handle(life, role, unit)
        _review_and_revisit(life, role, unit)
    except _Stop:
        return


def _created_times(rng: np.random.Generator, n: int, start: datetime, days: int) -> list[datetime]:
    """``n`` sorted times in [start, start + days], busier by day than by night (local hours)."""
    base = start.astimezone(sla.CITY_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=days)
    picked: list[datetime] = []
    while len(picked) < n:
        m = 2 * (n - len(picked)) + 16
        day = rng.integers(0, days + 1, m)
        hour = rng.choice(24, m, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
        offsets = day * 86400 + hour * 3600 + rng.integers(0, 3600, m)
        times = (base + timedelta(seconds=int(s)) for s in offsets)
        picked.extend(t for t in times if start <= t <= end)
    return sorted(picked[:n])


def sample_points(grids: pd.DataFrame, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random point inside ``grids.geometry[idx[i]]`` for every i (rejection in the bbox)."""
    out = np.zeros((len(idx), 2))
    for g in np.unique(idx):
        where = np.flatnonzero(idx == g)
        geom = grids.geometry.iloc[g]
        x0, y0, x1, y1 = geom.bounds
        got: list[np.ndarray] = []
        while sum(len(a) for a in got) < len(where):
            xy = rng.uniform((x0, y0), (x1, y1), size=(4 * len(where) + 8, 2))
            got.append(xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])])
        out[where] = np.concatenate(got)[: len(where)]
    return out


def _categories(rng: np.random.Generator, channels: np.ndarray) -> np.ndarray:
    by_major: dict[str, list[str]] = {}
    for code, c in load_categories().items():
        by_major.setdefault(c.major_code, []).append(code)
    out = np.empty(len(channels), dtype=object)
    for channel, majors in MAJOR_BY_CHANNEL.items():
        where = np.flatnonzero(channels == channel)
        codes = [c for m in majors for c in by_major[m]]
        weights = np.array([majors[c[:2]] / len(by_major[c[:2]]) for c in codes])
        out[where] = rng.choice(codes, len(where), p=weights / weights.sum())
    return out


def _frame(session: Session, rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Channels, categories, severities, places (resolved like intake) for ``n`` tickets."""
    grids = load_grids(session)
    if grids.empty:
        raise InvalidInput("no grids: load the demo city first (onemap demo --no-serve)")
    weight = np.where(grids.town_code.str[6:9].astype(int) < 100, 2.0, 1.0)
    idx = rng.choice(len(grids), n, p=weight / weight.sum())
    xy = sample_points(grids, idx, rng)
    frame = locate_many(session, xy[:, 0], xy[:, 1])
    frame["lon"], frame["lat"] = xy[:, 0], xy[:, 1]
    names = list(CHANNEL_WEIGHTS)
    frame["channel"] = rng.choice(names, n, p=np.array([CHANNEL_WEIGHTS[c] for c in names]))
    frame["category"] = _categories(rng, frame.channel.to_numpy())
    frame["severity"] = rng.choice(["general", "important", "urgent"], n, p=[0.8, 0.15, 0.05])
    return frame.reset_index(drop=True)


def _row(rec: Any, at: datetime, rng: np.random.Generator, route: Any, version: int) -> dict:
    citizen = rec.channel in CITIZEN_CHANNELS
    name = load_categories()[rec.category].name
    return {
        "channel": rec.channel,
        "category": rec.category,
        "severity": rec.severity,
        "description": f"{rec.village_name or ''}{name}，请尽快处理",
        "reporter_name": f"{rng.choice(SURNAMES)}先生" if citizen else None,
        "reporter_phone": f"1{rng.integers(3, 10)}{rng.integers(0, 10**9):09d}"
        if citizen
        else None,
        "source_ref": f"{rec.channel}-{rng.integers(1, 400):04d}" if not citizen else None,
        "geom": f"SRID=4326;POINT({rec.lon:.7f} {rec.lat:.7f})",
        "grid_code": rec.grid_code,
        "village_code": rec.village_code,
        "town_code": rec.town_code,
        "district_code": rec.district_code,
        "registry_version": version,
        "match": rec.match,
        "distance_m": None if rec.distance_m is None else float(rec.distance_m),
        "unplaced": False,
        "state": "received",
        "department": route.department,
        "needs_town": route.needs_town,
        "co_units": [],
        "rework_count": 0,
        "revisited": False,
        "card": "ok",
        "created_at": at,
        "updated_at": at,
        "dispatch_due": sla.deadline(at, rec.category, rec.severity, "dispatch"),
    }


ROW_KEYS = [c.key for c in Ticket.__table__.columns if c.key != "id"]


def _insert(session: Session, tickets: list[SimTicket]) -> int:
    """Ids drawn from the sequence first, then plain multi-row inserts (no RETURNING round trips)."""
    conn = session.connection()
    ids = (
        conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('tickets', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": len(tickets)},
        )
        .scalars()
        .all()
    )
    rows = [
        {"id": tid, **{k: t.row.get(k) for k in ROW_KEYS}}
        for tid, t in zip(ids, tickets, strict=True)
    ]
    events = []
    for tid, t in zip(ids, tickets, strict=True):
        events.append(
            {
                "ticket_id": tid,
                "at": t.created_at,
                "actor": "intake",
                "role": "system",
                "move": "receive",
                "from_state": None,
                "to_state": "received",
                "note": None,
                "rework": False,
                "payload": {
                    "channel": t.channel,
                    "unplaced": False,
                    "reason": None,
                    "grid_code": t.row["grid_code"],
                    "department": t.row["department"],
                    "simulated": True,
                },
            }
        )
        events.extend({**ev, "ticket_id": tid} for ev in t.events)
    for i in range(0, len(rows), 2000):
        conn.execute(insert(Ticket), rows[i : i + 2000])
    for i in range(0, len(events), 5000):
        conn.execute(insert(TicketEvent), events[i : i + 5000])
    return len(events)


def simulate(
    session: Session,
    *,
    days: int = 7,
    seed: int = 20261001,
    per_day: int = 150,
    end: datetime | None = None,
    cards: bool = True,
) -> SimSummary:
    """Write ``days * per_day`` tickets received over the ``days`` before ``end`` (default now)."""
    if days < 1 or per_day < 1:
        raise InvalidInput("days and per_day must be at least 1")
    end = end or datetime.now(UTC)
    if end.tzinfo is None:
        raise InvalidInput("end needs a timezone")
    start = end - timedelta(days=days)
    rng = np.random.default_rng(seed)
    frame = _frame(session, rng, days * per_day)
    times = _created_times(rng, len(frame), start, days)
    table = routing_table(session)
    version = registry_version(session)
    tickets = []
    for rec, at in zip(frame.itertuples(index=False), times, strict=True):
        row = _row(rec, at, rng, table.route(rec.category), version)
        t = SimTicket(rec.channel, rec.category, rec.severity, at, row)
        live(t, rng, end)
        tickets.append(t)
    n_events = _insert(session, tickets)
    session.flush()
    counts = refresh_cards(session, end) if cards else {}
    by_state = pd.Series([t.state for t in tickets]).value_counts().to_dict()
    return SimSummary(len(tickets), n_events, start, end, by_state, counts)
