"""Readings ingest (监测数据接入): a batch of CSV, JSON lines or records → validated → COPY → alarms.

One row is one sensor at one instant with any of the pollutant columns (``pm25`` or ``PM2.5``,
``pm10``, ``no2``, ``so2``, ``o3``, ``co``). Bad rows never stop good ones: each refused row comes
back with its 1-based row number and the reason (unknown sensor, no timestamp, a timestamp more than
five minutes in the future, a negative or non-numeric concentration, no value at all). Naive
timestamps are city time (Asia/Shanghai). A resent batch inserts nothing (``ON CONFLICT DO NOTHING``
on (sensor_id, ts)); readings may arrive in any order.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from gis.batch import IngestResult, Rows, check_ids, check_times, read_rows
from gis.batch_values import missing, numbers
from gis.bulk import Column, ensure_month_partitions, micros, notify, text_codes, upsert
from layers.accounts.scope import Scope
from layers.sensors import thresholds
from layers.sensors.models import POLLUTANTS
from layers.sensors.registry import ALIASES, known_in_scope


def _rename(rows: Rows) -> Rows:
    columns = list(rows.columns)
    names = {c: ALIASES[c.replace(" ", "")] for c in columns if c.replace(" ", "") in ALIASES}
    names.update({c: "sensor_id" for c in ("sensor", "id", "device_id") if c in columns and "sensor_id" not in columns})
    names.update({c: "ts" for c in ("time", "timestamp", "datetime") if c in columns and "ts" not in columns})
    return rows.rename(names)


def _check_values(rows: Rows) -> None:
    """Numbers only, never negative; a row must carry at least one pollutant."""
    for name in POLLUTANTS:
        if name not in rows:
            rows[name] = np.full(len(rows), np.nan)
            continue
        raw = rows[name]
        values = numbers(raw)
        rows[name] = values
        rows.reject((~missing(raw) & np.isnan(values), f"non-numeric {name}"),
                    (np.isinf(values), f"non-numeric {name}"), (values < 0, f"negative concentration ({name})"))
    rows.reject((np.all([np.isnan(rows[p]) for p in POLLUTANTS], axis=0), "no pollutant value"))


def validate(session: Session, data, *, fmt: str | None = None, now: datetime | None = None,
             known: set[str] | None = None, scope: Scope | None = None) -> Rows:
    """Parse and check a batch; the good rows keep sensor_id, ts (``datetime64[us]`` UTC) and the
    pollutants as floats (NaN: not measured). Sensors are looked up by the batch's own ids unless
    ``known`` is given; a sensor outside ``scope`` refuses the whole batch (Forbidden)."""
    rows = _rename(read_rows(data, fmt=fmt))
    check_ids(rows, "sensor_id", known if known is not None else partial(known_in_scope, session, scope), "sensor")
    check_times(rows, "ts", now=now)
    _check_values(rows)
    rows.rejected.sort(key=lambda r: r["row"])
    return rows


def _store(session: Session, rows: Rows) -> int:
    codes, ids = text_codes(rows["sensor_id"])
    columns = [Column("sensor", codes, "int4"), Column("ts", micros(rows["ts"]), "timestamptz")]
    columns += [Column(p, rows[p].astype(float), "float8") for p in POLLUTANTS]
    selects = {"sensor_id": "(CAST(%(ids)s AS text[]))[s.sensor]", "ts": "s.ts",
               **{p: f"NULLIF(s.{p}, 'NaN')" for p in POLLUTANTS}}
    return upsert(session, "sensor_readings", columns, selects, {"ids": ids})


def ingest_readings(session: Session, data, *, fmt: str | None = None, now: datetime | None = None,
                    evaluate: bool = True, open_tickets: bool = True, scope: Scope | None = None) -> IngestResult:
    """Validate, store (idempotently) and evaluate thresholds for a batch of readings (sent by ``scope``:
    only for its own sensors)."""
    rows = validate(session, data, fmt=fmt, now=now, scope=scope)
    received = len(rows) + len(rows.rejected)
    if not len(rows):
        return IngestResult(received, 0, 0, rows.rejected)
    ensure_month_partitions(session, "sensor_readings", rows["ts"])
    inserted = _store(session, rows)
    alarms: list[int] = []
    if evaluate and inserted:
        frame = pd.DataFrame({"sensor_id": rows["sensor_id"], **{p: rows[p] for p in POLLUTANTS}})
        suspects = thresholds.sensors_over(frame, thresholds.load_rules(session))
        if suspects:
            start, end = rows["ts"].min(), rows["ts"].max()
            alarms = thresholds.evaluate(session, suspects, pd.Timestamp(start, tz="UTC").to_pydatetime(),
                                         pd.Timestamp(end, tz="UTC").to_pydatetime(), open_tickets=open_tickets)
    if inserted:
        notify(session, "onemap_sensors", {"kind": "readings", "count": inserted,
                                           "sensors": sorted(set(rows["sensor_id"].tolist()))})
    return IngestResult(received=received, inserted=inserted, duplicates=len(rows) - inserted,
                        rejected=rows.rejected, alarms_opened=alarms)
