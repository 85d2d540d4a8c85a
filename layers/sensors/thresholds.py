"""Thresholds (超标阈值) and the alarms they raise.

Defaults are GB 3095-2012's grade II limits (二级浓度限值): PM2.5 75, PM10 150, NO2 80, SO2 150 µg/m³
as 24-hour means, O3 160 µg/m³ as the daily maximum 8-hour mean, CO 4 mg/m³. The standard states
averages; a monitoring desk compares each reading against them and asks for persistence instead, so
the rule here is *N consecutive readings over the limit* (default 3, editable per pollutant) — one
noisy minute never raises an alarm, a sustained episode does.

A breach raises one alarm per sensor (the partial unique index allows one open alarm per sensor) and
one ticket in the sensor's grid; later readings over the limit only extend that alarm. The alarm closes
when its ticket closes (a trigger on ``tickets``). Readings arriving late, older than the newest
reading an earlier alarm already covered, never raise a second alarm for the same episode, so a resent
batch is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.bulk import notify, read_frame
from gis.errors import InvalidInput, NotFound
from gis.settings import CITY_TZ
from layers.accounts.scope import Scope
from layers.sensors.models import POLLUTANTS
from layers.sensors.registry import scoped_ids

LOOKBACK = timedelta(days=1)  # readings around a batch read back to find runs that span batches
POLLUTION_CATEGORY = "1101"  # categories.csv: 11 环境污染 / 大气污染超标
ALARM_CHANNEL = "onemap_alarms"


@dataclass(frozen=True)
class Rule:
    pollutant: str
    limit_value: float
    consecutive: int


@dataclass(frozen=True)
class Breach:
    """A run of ``consecutive`` readings over the limit found in a sensor's series."""

    sensor_id: str
    pollutant: str
    run_start: pd.Timestamp
    breach_at: pd.Timestamp
    last_over_at: pd.Timestamp
    peak: float
    limit_value: float
    pollutants: tuple[str, ...]


# --------------------------------------------------------------------------- the editable table

def load_rules(session: Session) -> dict[str, Rule]:
    rows = session.execute(text("SELECT pollutant, limit_value, consecutive FROM sensor_thresholds")).all()
    return {p: Rule(p, float(v), int(n)) for p, v, n in rows}


def list_thresholds(session: Session) -> list[dict]:
    rows = session.execute(text(
        "SELECT pollutant, label, limit_value, unit, averaging, consecutive, source, updated_by, updated_at "
        "FROM sensor_thresholds ORDER BY array_position(CAST(:order AS text[]), pollutant::text)"),
        {"order": list(POLLUTANTS)}).mappings().all()
    return [dict(r) for r in rows]


def set_threshold(session: Session, pollutant: str, *, who: str, limit_value: float | None = None,
                  consecutive: int | None = None) -> dict:
    """Change a pollutant's limit and/or duration rule; records who changed it."""
    if limit_value is not None and not limit_value > 0:
        raise InvalidInput(f"limit for {pollutant} must be positive, got {limit_value}")
    if consecutive is not None and consecutive < 1:
        raise InvalidInput(f"consecutive readings for {pollutant} must be at least 1, got {consecutive}")
    row = session.execute(text(
        "UPDATE sensor_thresholds SET limit_value = coalesce(:v, limit_value), "
        "consecutive = coalesce(:n, consecutive), updated_by = :who, updated_at = now(), "
        "source = CASE WHEN :v IS NULL THEN source ELSE 'edited' END "
        "WHERE pollutant = :p RETURNING pollutant"),
        {"v": limit_value, "n": consecutive, "who": who, "p": pollutant}).first()
    if row is None:
        raise NotFound(f"no threshold for pollutant {pollutant!r}; known: {', '.join(POLLUTANTS)}")
    return next(t for t in list_thresholds(session) if t["pollutant"] == pollutant)


# --------------------------------------------------------------------------- finding runs (pure)

def _runs(sensor: np.ndarray, over: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by sensor then time: a run id per row and the row's 1-based place in its run."""
    same = np.r_[False, sensor[1:] == sensor[:-1]]
    prev_over = np.r_[False, over[:-1]]
    starts = over & ~(prev_over & same)
    run_id = np.cumsum(starts)
    place = np.zeros(len(over), dtype=np.int64)
    if over.any():
        ids = run_id[over]
        first = np.searchsorted(ids, ids, side="left")  # rows of a run are contiguous among over rows
        place[over] = np.arange(len(ids)) - first + 1
    return run_id, place


def find_breaches(readings: pd.DataFrame, rules: dict[str, Rule],
                  after: dict[str, pd.Timestamp] | None = None) -> list[Breach]:
    """The first run of ``consecutive`` readings over the limit per sensor, after its cut-off time.

    ``readings``: sensor_id, ts and pollutant columns. ``after``: per sensor, readings at or before
    this time belong to episodes already alarmed and are not counted.
    """
    if readings.empty:
        return []
    frame = readings.sort_values(["sensor_id", "ts"], kind="stable").reset_index(drop=True)
    eligible = np.ones(len(frame), dtype=bool)
    if after:
        cut = frame["sensor_id"].map(after)
        eligible = (cut.isna() | (frame["ts"] > cut)).to_numpy()
    sensor = frame["sensor_id"].to_numpy(dtype=object)
    stamps = frame["ts"].dt.tz_convert(UTC).dt.tz_localize(None).to_numpy()  # datetime64, not objects
    found = [_pollutant_breaches(frame, sensor, stamps, eligible, rule) for rule in rules.values()
             if rule.pollutant in frame]
    found = [f for f in found if not f.empty]
    if not found:
        return []
    runs = pd.concat(found, ignore_index=True).sort_values(["sensor_id", "breach_at", "pollutant"])
    names = runs.groupby("sensor_id")["pollutant"].agg(
        lambda s: tuple(sorted(set(s), key=POLLUTANTS.index)))
    first = runs.drop_duplicates("sensor_id", keep="first")
    return [Breach(r.sensor_id, r.pollutant, r.run_start, r.breach_at, r.last_over_at, float(r.peak),
                   float(r.limit_value), names[r.sensor_id]) for r in first.itertuples(index=False)]


def _pollutant_breaches(frame: pd.DataFrame, sensor: np.ndarray, stamps: np.ndarray, eligible: np.ndarray,
                        rule: Rule) -> pd.DataFrame:
    """Runs of one pollutant at least ``consecutive`` long: start, breach time, newest time, peak."""
    values = frame[rule.pollutant].to_numpy(dtype=float)
    over = (np.nan_to_num(values, nan=-np.inf) > rule.limit_value) & eligible
    run_id, place = _runs(sensor, over)
    rows = pd.DataFrame({"sensor_id": sensor[over], "run": run_id[over], "ts": stamps[over],
                         "value": values[over], "place": place[over]})
    if rows.empty:
        return rows
    runs = rows.groupby("run").agg(sensor_id=("sensor_id", "first"), run_start=("ts", "min"),
                                   last_over_at=("ts", "max"), peak=("value", "max"), length=("place", "max"))
    breach_at = rows[rows["place"] == rule.consecutive].set_index("run")["ts"]
    runs = runs[runs["length"] >= rule.consecutive].join(breach_at.rename("breach_at"))
    runs = runs.groupby("sensor_id", as_index=False).first()  # the first long-enough run per sensor
    for col in ("run_start", "last_over_at", "breach_at"):
        runs[col] = pd.to_datetime(runs[col], utc=True)
    return runs.assign(pollutant=rule.pollutant, limit_value=rule.limit_value)


def over_mask(readings: pd.DataFrame, rules: dict[str, Rule]) -> np.ndarray:
    """True for readings over any limit (used to extend an open alarm)."""
    mask = np.zeros(len(readings), dtype=bool)
    for pollutant, rule in rules.items():
        if pollutant in readings:
            mask |= np.nan_to_num(readings[pollutant].to_numpy(dtype=float), nan=-np.inf) > rule.limit_value
    return mask


# --------------------------------------------------------------------------- alarms in the database

def _window(session: Session, sensors: list[str], start: datetime, end: datetime) -> pd.DataFrame:
    frame = read_frame(session, f"SELECT sensor_id, ts, {', '.join(POLLUTANTS)} FROM sensor_readings "
                       "WHERE sensor_id = ANY(%s) AND ts BETWEEN %s AND %s", (sensors, start, end),
                       ["sensor_id", "ts", *POLLUTANTS])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _latest_alarms(session: Session, sensors: list[str]) -> pd.DataFrame:
    rows = session.execute(text(
        "SELECT DISTINCT ON (sensor_id) sensor_id, id, state, last_over_at FROM sensor_alarms "
        "WHERE sensor_id = ANY(:ids) ORDER BY sensor_id, last_over_at DESC, id DESC"), {"ids": sensors}).all()
    frame = pd.DataFrame(rows, columns=["sensor_id", "id", "state", "last_over_at"])
    frame["last_over_at"] = pd.to_datetime(frame["last_over_at"], utc=True)
    return frame.set_index("sensor_id")


def evaluate(session: Session, sensors: list[str], start: datetime, end: datetime, *,
             open_tickets: bool = True) -> list[int]:
    """Look at the readings around a batch and raise (or extend) alarms; returns new alarm ids."""
    if not sensors:
        return []
    readings = _window(session, sensors, start - LOOKBACK, end + LOOKBACK)
    rules = load_rules(session)
    latest = _latest_alarms(session, sensors)
    _extend_open(session, readings, rules, latest[latest["state"] == "open"])
    cutoff = latest["last_over_at"].to_dict()
    is_open = set(latest.index[latest["state"] == "open"])
    new = [b for b in find_breaches(readings, rules, cutoff) if b.sensor_id not in is_open]
    return [_raise(session, b, open_tickets=open_tickets) for b in sorted(new, key=lambda b: b.sensor_id)]


def sensors_over(batch: pd.DataFrame, rules: dict[str, Rule]) -> list[str]:
    """Sensors with at least one reading over a limit in the batch: only their alarms can change
    (a run is made of readings over the limit, so a batch without one cannot start or extend one)."""
    return sorted(batch.loc[over_mask(batch, rules), "sensor_id"].unique())


def _extend_open(session: Session, readings: pd.DataFrame, rules: dict[str, Rule], open_: pd.DataFrame) -> None:
    """An open alarm absorbs later readings over the limit: its newest time and its peak move on."""
    if open_.empty or readings.empty:
        return
    over = readings[over_mask(readings, rules) & readings["sensor_id"].isin(open_.index).to_numpy()]
    over = over[over["ts"] > over["sensor_id"].map(open_["last_over_at"])]
    for sensor_id, group in over.groupby("sensor_id"):
        session.execute(text(
            "UPDATE sensor_alarms SET last_over_at = greatest(last_over_at, :t), "
            "peak = greatest(peak, coalesce(CAST(:peak AS float8), peak)) WHERE id = :id"),
            {"t": group["ts"].max().to_pydatetime(), "id": int(open_.at[sensor_id, "id"]),
             "peak": _peak(group, rules)})


def _peak(group: pd.DataFrame, rules: dict[str, Rule]) -> float | None:
    values = [group[p].max() for p in rules if p in group and group[p].notna().any()]
    return float(max(values)) if values else None


def _raise(session: Session, breach: Breach, *, open_tickets: bool) -> int:
    sensor = session.execute(text(
        "SELECT id, name, owner, grid_code, town_code, ST_X(geom) AS lon, ST_Y(geom) AS lat "
        "FROM sensors WHERE id = :id"), {"id": breach.sensor_id}).mappings().one()
    alarm_id = session.execute(text(
        "INSERT INTO sensor_alarms (sensor_id, pollutant, pollutants, run_start, breach_at, last_over_at, "
        "peak, limit_value, grid_code, town_code, detail) VALUES (:s, :p, :ps, :rs, :ba, :lo, :peak, :lim, "
        ":g, :t, CAST(:d AS jsonb)) RETURNING id"),
        {"s": breach.sensor_id, "p": breach.pollutant, "ps": list(breach.pollutants),
         "rs": breach.run_start.to_pydatetime(), "ba": breach.breach_at.to_pydatetime(),
         "lo": breach.last_over_at.to_pydatetime(), "peak": breach.peak, "lim": breach.limit_value,
         "g": sensor["grid_code"], "t": sensor["town_code"],
         "d": pd.Series({"sensor_name": sensor["name"], "owner": sensor["owner"]}).to_json(force_ascii=False)},
    ).scalar_one()
    ticket_id = open_ticket(session, alarm_id, breach, sensor) if open_tickets else None
    notify(session, ALARM_CHANNEL, {
        "kind": "sensor_alarm", "alarm_id": alarm_id, "sensor_id": breach.sensor_id, "name": sensor["name"],
        "pollutant": breach.pollutant, "peak": breach.peak, "limit": breach.limit_value,
        "breach_at": breach.breach_at.isoformat(), "grid_code": sensor["grid_code"],
        "town_code": sensor["town_code"], "lon": sensor["lon"], "lat": sensor["lat"], "ticket_id": ticket_id})
    return int(alarm_id)


def describe(breach: Breach, sensor: dict) -> str:
    """The ticket's text, in Chinese as the desk reads it."""
    label = {"pm25": "PM2.5", "pm10": "PM10", "no2": "NO2", "so2": "SO2", "o3": "O3", "co": "CO"}
    unit = "mg/m³" if breach.pollutant == "co" else "µg/m³"
    owner = f"（{sensor['owner']}）" if sensor.get("owner") else ""
    others = "、".join(label[p] for p in breach.pollutants if p != breach.pollutant)
    also = f"；同时超标：{others}" if others else ""
    start = breach.run_start.tz_convert(CITY_TZ).strftime("%Y-%m-%d %H:%M")
    return (f"监测点 {sensor['name']}{owner} {label[breach.pollutant]} 自 {start} 起连续超标，"
            f"峰值 {breach.peak:g} {unit}，限值 {breach.limit_value:g} {unit}{also}")


def open_ticket(session: Session, alarm_id: int, breach: Breach, sensor) -> int:
    """One ticket in the sensor's grid through the tickets service (channel ``sensor``, category 1101).

    The ticket is received at the breach time (or now, if the clock says the breach is in the future),
    so a replayed day keeps its timeline; ``source_ref`` names the sensor.
    """
    from layers.incidents.intake import create_ticket

    at = min(breach.breach_at.to_pydatetime(), datetime.now(UTC))
    ticket = create_ticket(
        session, channel="sensor", category=POLLUTION_CATEGORY, severity="important",
        description=describe(breach, dict(sensor)), lon=float(sensor["lon"]), lat=float(sensor["lat"]),
        source_ref=breach.sensor_id, actor="sensor-alarm", at=at)
    session.execute(text("UPDATE sensor_alarms SET ticket_id = :t WHERE id = :a"), {"t": ticket.id, "a": alarm_id})
    return int(ticket.id)


def list_alarms(session: Session, *, state: str | None = None, sensor_id: str | None = None,
                limit: int = 500, scope: Scope | None = None) -> list[dict]:
    """Alarms newest first; within ``scope`` (the sensor's area) when given."""
    ids = scoped_ids(session, scope)
    rows = session.execute(text(
        "SELECT a.id, a.sensor_id, s.name AS sensor_name, a.pollutant, a.pollutants, a.run_start, a.breach_at, "
        "a.last_over_at, a.peak, a.limit_value, a.state, a.ticket_id, a.grid_code, a.town_code, a.raised_at, "
        "a.closed_at FROM sensor_alarms a JOIN sensors s ON s.id = a.sensor_id "
        "WHERE (CAST(:st AS text) IS NULL OR a.state = :st) AND (CAST(:sid AS text) IS NULL OR a.sensor_id = :sid) "
        "AND (CAST(:ids AS text[]) IS NULL OR a.sensor_id = ANY(CAST(:ids AS text[]))) "
        "ORDER BY a.breach_at DESC LIMIT :lim"),
        {"st": state, "sid": sensor_id, "lim": limit, "ids": ids}).mappings().all()
    return [dict(r) for r in rows]
