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

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from layers.sensors import thresholds
from layers.sensors.bulk import (
    Batch,
    Column,
    IngestResult,
    blank,
    check_ids,
    check_times,
    copy_upsert,
    ensure_month_partitions,
    micros,
    notify,
    read_table,
    text_codes,
)
from layers.sensors.models import POLLUTANTS
from layers.sensors.registry import ALIASES, known_ids


def _rename(frame: pd.DataFrame) -> pd.DataFrame:
    names = {c: ALIASES[c.replace(" ", "")] for c in frame.columns if c.replace(" ", "") in ALIASES}
    names.update({c: "sensor_id" for c in ("sensor", "id", "device_id") if c in frame.columns
                  and "sensor_id" not in frame.columns})
    names.update({c: "ts" for c in ("time", "timestamp", "datetime") if c in frame.columns and "ts" not in frame.columns})
    return frame.rename(columns=names)


def _check_values(batch: Batch) -> None:
    """Numbers only, never negative; a row must carry at least one pollutant."""
    for name in POLLUTANTS:
        if name not in batch.frame:
            batch.frame[name] = np.nan
            continue
        raw = batch.frame[name]
        if not pd.api.types.is_numeric_dtype(raw):
            present = ~blank(raw)
            values = pd.to_numeric(raw.where(present), errors="coerce")
            batch.reject(present & values.isna().to_numpy(), f"non-numeric {name}")
        values = pd.to_numeric(batch.frame[name], errors="coerce").astype(float)
        batch.reject(~np.isfinite(values.fillna(0).to_numpy()), f"non-numeric {name}")
        values = pd.to_numeric(batch.frame[name], errors="coerce").astype(float)
        batch.reject((values < 0).to_numpy(), f"negative concentration ({name})")
        batch.frame[name] = pd.to_numeric(batch.frame[name], errors="coerce").astype(float)
    batch.reject(batch.frame[list(POLLUTANTS)].isna().all(axis=1).to_numpy(), "no pollutant value")


def validate(session: Session, data, *, fmt: str | None = None, now: datetime | None = None,
             known: set[str] | None = None) -> Batch:
    """Parse and check a batch; the frame keeps only good rows, typed (ts as UTC)."""
    batch = Batch(_rename(read_table(data, fmt=fmt)))
    check_ids(batch, "sensor_id", known if known is not None else known_ids(session), "sensor")
    check_times(batch, "ts", now=now)
    _check_values(batch)
    batch.rejected.sort(key=lambda r: r["row"])
    return batch


def _store(session: Session, frame: pd.DataFrame) -> int:
    codes, ids = text_codes(frame["sensor_id"])
    columns = [Column("sensor", codes, "int4"), Column("ts", micros(frame["ts"]), "timestamptz")]
    columns += [Column(p, frame[p].to_numpy(dtype=float), "float8") for p in POLLUTANTS]
    selects = {"sensor_id": "(CAST(%(ids)s AS text[]))[s.sensor]", "ts": "s.ts",
               **{p: f"NULLIF(s.{p}, 'NaN')" for p in POLLUTANTS}}
    return copy_upsert(session, "sensor_readings", columns, selects, {"ids": ids})


def ingest_readings(session: Session, data, *, fmt: str | None = None, now: datetime | None = None,
                    evaluate: bool = True, open_tickets: bool = True) -> IngestResult:
    """Validate, store (idempotently) and evaluate thresholds for a batch of readings."""
    batch = validate(session, data, fmt=fmt, now=now)
    frame = batch.frame
    received = len(frame) + len(batch.rejected)
    if frame.empty:
        return IngestResult(received, 0, 0, batch.rejected)
    ensure_month_partitions(session, "sensor_readings", frame["ts"])
    inserted = _store(session, frame)
    alarms: list[int] = []
    suspects = thresholds.sensors_over(frame, thresholds.load_rules(session)) if evaluate and inserted else []
    if suspects:
        alarms = thresholds.evaluate(session, suspects,
                                     frame["ts"].min().to_pydatetime(), frame["ts"].max().to_pydatetime(),
                                     open_tickets=open_tickets)
    if inserted:
        notify(session, "onemap_sensors", {"kind": "readings", "count": inserted,
                                           "sensors": sorted(frame["sensor_id"].unique().tolist())})
    return IngestResult(received=received, inserted=inserted, duplicates=len(frame) - inserted,
                        rejected=batch.rejected, alarms_opened=alarms)
