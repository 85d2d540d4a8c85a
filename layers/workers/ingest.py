"""GPS ingest (位置上报): a batch of fixes in any CRS → validated, flagged, resolved to grids, stored by COPY.

Columns: ``worker_id``, ``ts``, ``lon``/``lat`` (or ``x``/``y``, ``lng``), optional ``accuracy`` in
metres. Phones send GCJ-02 (Amap, WeChat) or WGS84: pass ``crs``. Refused rows (unknown worker, no or
future timestamp, a coordinate that is not a number or out of range, a negative accuracy) come back
with their row number and reason. Suspect fixes are *kept and flagged*, never silently dropped:
``zero`` (0, 0: a phone without a fix), ``accuracy`` (worse than ``max_accuracy_m``), ``speed``
(reached and left at more than ``max_speed`` m/s: a spike). Tracks ignore flagged fixes.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.coords import from_wgs84, gauss_kruger_epsg, normalize_crs, to_wgs84
from gis.locate import locate_many
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
    seconds,
    text_codes,
)
from layers.workers.live import live_index
from layers.workers.registry import known_ids
from layers.workers.tracks import MAX_SPEED, spike_mask

MAX_ACCURACY_M = 100.0
CHANNEL = "onemap_workers"
RENAME = {"worker": "worker_id", "id": "worker_id", "time": "ts", "timestamp": "ts", "lng": "lon",
          "longitude": "lon", "x": "lon", "latitude": "lat", "y": "lat", "accuracy": "accuracy_m", "acc": "accuracy_m"}


def _rename(frame: pd.DataFrame) -> pd.DataFrame:
    names = {c: RENAME[c] for c in frame.columns if c in RENAME and RENAME[c] not in frame.columns}
    return frame.rename(columns=names)


def _check_coords(batch: Batch, crs: str) -> None:
    for col in ("lon", "lat"):
        if col not in batch.frame:
            batch.frame[col] = None
        batch.reject(blank(batch.frame[col]), f"missing coordinate ({col})")
        values = pd.to_numeric(batch.frame[col], errors="coerce").to_numpy(dtype=float)
        batch.reject(~np.isfinite(values), f"non-numeric coordinate ({col})")
        batch.frame[col] = pd.to_numeric(batch.frame[col])
    if normalize_crs(crs) in ("EPSG:4326", "EPSG:4490", "gcj02", "bd09"):
        lon, lat = batch.frame["lon"].to_numpy(), batch.frame["lat"].to_numpy()
        batch.reject((np.abs(lon) > 180) | (np.abs(lat) > 90), "coordinate out of range")


def _check_accuracy(batch: Batch) -> None:
    raw = batch.frame.get("accuracy_m", pd.Series(np.nan, index=batch.frame.index))
    values = pd.to_numeric(raw, errors="coerce")
    present = ~blank(raw)
    batch.reject(present & values.isna().to_numpy(), "non-numeric accuracy")
    values = pd.to_numeric(batch.frame.get("accuracy_m", pd.Series(np.nan, index=batch.frame.index)), errors="coerce")
    batch.reject((values < 0).to_numpy(), "negative accuracy")
    batch.frame["accuracy_m"] = pd.to_numeric(
        batch.frame.get("accuracy_m", pd.Series(np.nan, index=batch.frame.index)), errors="coerce")


def validate(session: Session, data, *, crs: str = "EPSG:4326", fmt: str | None = None,
             now: datetime | None = None, known: set[str] | None = None) -> Batch:
    batch = Batch(_rename(read_table(data, fmt=fmt)))
    check_ids(batch, "worker_id", known if known is not None else known_ids(session), "worker")
    check_times(batch, "ts", now=now)
    _check_coords(batch, crs)
    _check_accuracy(batch)
    batch.rejected.sort(key=lambda r: r["row"])
    return batch


def _previous_fixes(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
    """Per worker, the newest stored good fix before the batch's first one (context for the speed test)."""
    first = frame.groupby("worker_id")["ts"].min()
    rows = session.execute(text(
        "SELECT f.w, p.ts, ST_X(p.geom), ST_Y(p.geom) FROM unnest(CAST(:w AS text[]), CAST(:t AS timestamptz[])) "
        "AS f(w, t) CROSS JOIN LATERAL (SELECT ts, geom FROM worker_positions WHERE worker_id = f.w AND ts < f.t "
        "AND flag IS NULL ORDER BY ts DESC LIMIT 1) p"),
        {"w": list(first.index), "t": [t.to_pydatetime() for t in first]}).all()
    prev = pd.DataFrame(rows, columns=["worker_id", "ts", "x", "y"])
    prev["ts"] = pd.to_datetime(prev["ts"], utc=True)
    return prev


def flag_fixes(frame: pd.DataFrame, previous: pd.DataFrame | None = None, *, max_speed: float = MAX_SPEED,
               max_accuracy_m: float = MAX_ACCURACY_M) -> pd.DataFrame:
    """Add ``flag`` and ``speed_ms``; ``frame`` has worker_id, ts, x, y (WGS84), accuracy_m, ``zero``."""
    frame = frame.sort_values(["worker_id", "ts"], kind="stable").reset_index(drop=True)
    flag = np.full(len(frame), None, dtype=object)
    flag[frame["zero"].to_numpy()] = "zero"
    flag[(flag == None) & (frame["accuracy_m"].fillna(0).to_numpy() > max_accuracy_m)] = "accuracy"  # noqa: E711
    ok = flag == None  # noqa: E711
    context = previous if previous is not None else frame.iloc[0:0][["worker_id", "ts", "x", "y"]]
    good = pd.concat([context.assign(ctx=True), frame.loc[ok, ["worker_id", "ts", "x", "y"]].assign(ctx=False)])
    good["orig"] = np.r_[np.full(len(context), -1), np.flatnonzero(ok)]
    good = good.sort_values(["worker_id", "ts"], kind="stable")
    speed = np.full(len(frame), np.nan)
    if len(good):
        epsg = gauss_kruger_epsg(float(np.median(good["x"])))
        mx, my = from_wgs84(good["x"].to_numpy(), good["y"].to_numpy(), f"EPSG:{epsg}")
        t = seconds(good["ts"])
        group = pd.factorize(good["worker_id"])[0]
        spikes = spike_mask(mx, my, t, group, max_speed=max_speed)
        from layers.workers.tracks import step_speeds

        s_in, _ = step_speeds(mx, my, t, group)
        orig = good["orig"].to_numpy()
        mine = orig >= 0
        flag[orig[mine & spikes]] = "speed"
        speed[orig[mine]] = s_in[mine]
    frame["flag"] = flag
    frame["speed_ms"] = np.round(speed, 2)
    return frame


def _resolved(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
    zero = frame["zero"].to_numpy()
    where = locate_many(session, frame["x"].to_numpy(), frame["y"].to_numpy())
    for col in ("grid_code", "town_code", "match"):
        values = where[col].to_numpy(dtype=object)
        frame[col] = np.where(zero | pd.isna(values), None, values)
    return frame


def ingest_positions(session: Session, data, *, crs: str = "EPSG:4326", fmt: str | None = None,
                     now: datetime | None = None, max_speed: float = MAX_SPEED,
                     max_accuracy_m: float = MAX_ACCURACY_M, publish: bool = True) -> IngestResult:
    """Validate, flag, resolve and store a batch of fixes; update last positions and the live index."""
    batch = validate(session, data, crs=crs, fmt=fmt, now=now)
    frame = batch.frame
    received = len(frame) + len(batch.rejected)
    if frame.empty:
        return IngestResult(received, 0, 0, batch.rejected)
    lon, lat = frame["lon"].to_numpy(dtype=float), frame["lat"].to_numpy(dtype=float)
    zero = (np.abs(lon) < 1e-9) & (np.abs(lat) < 1e-9)
    x, y = to_wgs84(lon, lat, crs)
    frame = frame.assign(x=np.where(zero, 0.0, x), y=np.where(zero, 0.0, y), zero=zero)
    frame = flag_fixes(frame, _previous_fixes(session, frame), max_speed=max_speed, max_accuracy_m=max_accuracy_m)
    frame = _resolved(session, frame)
    ensure_month_partitions(session, "worker_positions", frame["ts"])
    inserted = _store(session, frame)
    latest = _update_last(session, frame)
    if publish and inserted:
        _publish(session, latest)
    return IngestResult(received=received, inserted=inserted, duplicates=len(frame) - inserted,
                        rejected=batch.rejected, flagged=int(frame["flag"].notna().sum()))


FLAG_CODES = {None: 0, "zero": 1, "accuracy": 2, "speed": 3}


def _store(session: Session, frame: pd.DataFrame) -> int:
    """Binary COPY of the batch; text travels as codes into small lookup arrays."""
    workers, worker_ids = text_codes(frame["worker_id"])
    grids, grid_codes = text_codes(frame["grid_code"])
    towns, town_codes = text_codes(frame["town_code"])
    matches, match_names = text_codes(frame["match"])
    flags = frame["flag"].map(FLAG_CODES).fillna(0).to_numpy(dtype=np.int32)
    columns = [Column("worker", workers, "int4"), Column("ts", micros(frame["ts"]), "timestamptz"),
               Column("x", frame["x"].to_numpy(dtype=float), "float8"),
               Column("y", frame["y"].to_numpy(dtype=float), "float8"),
               Column("acc", frame["accuracy_m"].to_numpy(dtype=float), "float8"),
               Column("speed", frame["speed_ms"].to_numpy(dtype=float), "float8"),
               Column("grid", grids, "int4"), Column("town", towns, "int4"), Column("match", matches, "int4"),
               Column("flag", flags, "int4")]
    selects = {"worker_id": "(CAST(%(w)s AS text[]))[s.worker]", "ts": "s.ts",
               "geom": "ST_SetSRID(ST_MakePoint(s.x, s.y), 4326)", "accuracy_m": "NULLIF(s.acc, 'NaN')",
               "speed_ms": "NULLIF(s.speed, 'NaN')", "grid_code": "(CAST(%(g)s AS text[]))[s.grid]",
               "town_code": "(CAST(%(t)s AS text[]))[s.town]", "match": "(CAST(%(m)s AS text[]))[s.match]",
               "flag": "(CAST(%(f)s AS text[]))[s.flag]"}
    lookups = {"w": worker_ids, "g": grid_codes, "t": town_codes, "m": match_names,
               "f": ["zero", "accuracy", "speed"]}
    return copy_upsert(session, "worker_positions", columns, selects, lookups)


def _update_last(session: Session, frame: pd.DataFrame) -> pd.DataFrame:
    """Upsert each worker's newest good fix of the batch where it is newer than the stored one."""
    good = frame[frame["flag"].isna()]
    latest = good.drop_duplicates("worker_id", keep="last")  # frame is sorted by worker, ts
    if latest.empty:
        return latest
    session.execute(text(
        "INSERT INTO worker_last_positions (worker_id, ts, geom, accuracy_m, grid_code, town_code, updated_at) "
        "SELECT w, t, ST_SetSRID(ST_MakePoint(x, y), 4326), a, gc, tc, now() FROM unnest(CAST(:w AS text[]), "
        "CAST(:t AS timestamptz[]), CAST(:x AS float8[]), CAST(:y AS float8[]), CAST(:a AS float8[]), "
        "CAST(:gc AS text[]), CAST(:tc AS text[])) AS u(w, t, x, y, a, gc, tc) ON CONFLICT (worker_id) DO UPDATE SET ts = EXCLUDED.ts, "
        "geom = EXCLUDED.geom, accuracy_m = EXCLUDED.accuracy_m, grid_code = EXCLUDED.grid_code, "
        "town_code = EXCLUDED.town_code, updated_at = now() WHERE EXCLUDED.ts > worker_last_positions.ts"),
        {"w": list(latest["worker_id"]), "t": [t.to_pydatetime() for t in latest["ts"]], "x": [float(v) for v in latest["x"]],
         "y": [float(v) for v in latest["y"]],
         "a": [None if pd.isna(a) else float(a) for a in latest["accuracy_m"]],
         "gc": _texts(latest["grid_code"]), "tc": _texts(latest["town_code"])})
    index = live_index(session)
    for r in latest.itertuples(index=False):
        index.update(r.worker_id, float(r.x), float(r.y), r.ts.to_pydatetime(),
                     grid_code=r.grid_code if isinstance(r.grid_code, str) else None)
    return latest


def _texts(values: pd.Series) -> list[str | None]:
    return [v if isinstance(v, str) else None for v in values]


def _publish(session: Session, latest: pd.DataFrame) -> None:
    """Tell the web viewer (LISTEN onemap_workers) where workers are now."""
    notify(session, CHANNEL, {"kind": "positions", "count": len(latest), "workers": [
        {"id": r.worker_id, "lon": round(float(r.x), 6), "lat": round(float(r.y), 6), "ts": r.ts.isoformat(),
         "grid_code": r.grid_code if isinstance(r.grid_code, str) else None} for r in latest.itertuples(index=False)]})
