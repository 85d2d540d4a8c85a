"""GPS ingest (位置上报): a batch of fixes in any CRS → validated, flagged, resolved to grids, stored.

Columns: ``worker_id``, ``ts``, ``lon``/``lat`` (or ``x``/``y``, ``lng``), optional ``accuracy`` in
metres. Phones send GCJ-02 (Amap, WeChat) or WGS84: pass ``crs``. Refused rows (unknown worker, no or
future timestamp, a coordinate that is not a number or out of range, a negative accuracy) come back
with their row number and reason. Suspect fixes are *kept and flagged*, never silently dropped:
``zero`` (0, 0: a phone without a fix), ``accuracy`` (worse than ``max_accuracy_m``), ``speed``
(reached and left at more than ``max_speed`` m/s: a spike). Tracks ignore flagged fixes.

Phones post a handful of fixes at a time, many times a second across a city, so every step works on
numpy arrays (``gis.batch``), not DataFrames: a 10-fix batch costs a few milliseconds of CPU,
much of it the grid lookup and five statements (known workers, the previous fixes, partitions, the
insert, last positions with the viewer's notification); a million-fix file runs the same code, vectorised.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from gis.batch import IngestResult, Rows, check_ids, check_times, read_rows
from gis.batch_values import missing, numbers, seconds
from gis.bulk import (
    Column,
    ensure_month_partitions,
    micros,
    notify,
    notify_body,
    raw_connection,
    text_codes,
    upsert,
)
from gis.coords import from_wgs84, gauss_kruger_epsg, normalize_crs, to_wgs84
from gis.locate import locate_arrays
from layers.accounts.scope import Scope
from layers.workers.live import live_index
from layers.workers.registry import known_in_scope
from layers.workers.tracks import MAX_SPEED, spike_mask, step_speeds

MAX_ACCURACY_M = 100.0
CHANNEL = "onemap_workers"
RENAME = {"worker": "worker_id", "id": "worker_id", "time": "ts", "timestamp": "ts", "lng": "lon",
          "longitude": "lon", "x": "lon", "latitude": "lat", "y": "lat", "accuracy": "accuracy_m", "acc": "accuracy_m"}
FLAGS = np.array([None, "zero", "accuracy", "speed"], dtype=object)  # flag_code → flag

Fixes = dict[str, np.ndarray]  # one array per column, one entry per fix


def _rename(rows: Rows) -> Rows:
    return rows.rename({c: RENAME[c] for c in rows.columns if c in RENAME and RENAME[c] not in rows.columns})


def _check_coords(rows: Rows, crs: str) -> None:
    for col in ("lon", "lat"):
        raw = rows.get(col)
        values = numbers(raw)
        rows[col] = values
        rows.reject((missing(raw), f"missing coordinate ({col})"), (~np.isfinite(values), f"non-numeric coordinate ({col})"))
    if normalize_crs(crs) in ("EPSG:4326", "EPSG:4490", "gcj02", "bd09"):
        rows.reject(((np.abs(rows["lon"]) > 180) | (np.abs(rows["lat"]) > 90), "coordinate out of range"))


def _check_accuracy(rows: Rows) -> None:
    raw = rows.get("accuracy_m")
    values = numbers(raw)
    rows["accuracy_m"] = values
    rows.reject((~missing(raw) & np.isnan(values), "non-numeric accuracy"), (values < 0, "negative accuracy"))


def validate(session: Session, data, *, crs: str = "EPSG:4326", fmt: str | None = None,
             now: datetime | None = None, known: set[str] | None = None, scope: Scope | None = None) -> Rows:
    """Parse and check a batch; the good rows keep worker_id, ts (``datetime64[us]`` UTC), lon, lat,
    accuracy_m. Workers are looked up by the batch's own ids unless ``known`` is given; a worker
    outside ``scope`` (for a grid worker: anyone but itself) refuses the whole batch (Forbidden)."""
    rows = _rename(read_rows(data, fmt=fmt))
    check_ids(rows, "worker_id", known if known is not None else partial(known_in_scope, session, scope), "worker")
    check_times(rows, "ts", now=now)
    _check_coords(rows, crs)
    _check_accuracy(rows)
    rows.rejected.sort(key=lambda r: r["row"])
    return rows


def _previous_fixes(session: Session, fixes: Fixes) -> Fixes:
    """Per worker, the newest stored good fix before the batch's first one (context for the speed test)."""
    codes, workers = pd.factorize(fixes["worker_id"])
    first = np.full(len(workers), np.iinfo(np.int64).max)
    np.minimum.at(first, codes, fixes["ts"].view(np.int64))
    with raw_connection(session).cursor() as cur:
        cur.execute(
            "SELECT f.w, p.ts AT TIME ZONE 'UTC', ST_X(p.geom), ST_Y(p.geom) "
            "FROM unnest(CAST(%s AS text[]), CAST(%s AS timestamp[])) AS f(w, t) CROSS JOIN LATERAL "
            "(SELECT ts, geom FROM worker_positions WHERE worker_id = f.w AND ts < (f.t AT TIME ZONE 'UTC') "
            "AND flag IS NULL ORDER BY ts DESC LIMIT 1) p",
            [list(workers), first.astype("datetime64[us]").tolist()])
        rows = cur.fetchall()
    return {"worker_id": np.array([r[0] for r in rows], dtype=object),
            "ts": np.array([r[1] for r in rows], dtype="datetime64[us]"),
            "x": np.array([r[2] for r in rows], dtype=float), "y": np.array([r[3] for r in rows], dtype=float)}


def _metres(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 → metres in the Gauss-Krüger zone of the points' median longitude."""
    x, y = from_wgs84(lon, lat, f"EPSG:{gauss_kruger_epsg(float(np.median(lon)))}")  # cheap in any thread
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def flag_fixes(fixes: Fixes, previous: Fixes | None = None, *, max_speed: float = MAX_SPEED,
               max_accuracy_m: float = MAX_ACCURACY_M) -> Fixes:
    """The fixes sorted by worker then time, with ``flag_code`` (index into :data:`FLAGS`), ``flag`` and
    ``speed_ms``; ``fixes`` has worker_id, ts, x, y (WGS84), accuracy_m, ``zero``; ``previous`` is the
    stored context (worker_id, ts, x, y) the speed test starts from."""
    codes = pd.factorize(fixes["worker_id"], sort=True)[0]
    order = np.lexsort((fixes["ts"].view(np.int64), codes))
    out = {name: values[order] for name, values in fixes.items()}
    zero = out["zero"]
    accuracy = out["accuracy_m"]
    poor = ~zero & (np.where(np.isnan(accuracy), 0.0, accuracy) > max_accuracy_m)
    code = np.where(zero, 1, np.where(poor, 2, 0)).astype(np.int8)
    speed = np.full(len(code), np.nan)
    ok = np.flatnonzero(code == 0)
    context = previous if previous is not None else {"worker_id": np.array([], dtype=object),
                                                     "ts": np.array([], dtype="datetime64[us]"),
                                                     "x": np.array([]), "y": np.array([])}
    if len(ok):
        worker = np.concatenate([context["worker_id"], out["worker_id"][ok]])
        ts = np.concatenate([context["ts"].astype("datetime64[us]"), out["ts"][ok]])
        x = np.concatenate([context["x"], out["x"][ok]])
        y = np.concatenate([context["y"], out["y"][ok]])
        orig = np.concatenate([np.full(len(context["x"]), -1), ok])
        group = pd.factorize(worker, sort=True)[0]
        by = np.lexsort((ts.view(np.int64), group))  # stable: a stored fix before a batch one at a tie
        mx, my = _metres(x[by], y[by])
        t, group, orig = seconds(ts[by]), group[by], orig[by]
        spikes = spike_mask(mx, my, t, group, max_speed=max_speed)
        s_in, _ = step_speeds(mx, my, t, group)
        mine = orig >= 0
        code[orig[mine & spikes]] = 3
        speed[orig[mine]] = s_in[mine]
    out["flag_code"] = code
    out["flag"] = FLAGS[code]
    out["speed_ms"] = np.round(speed, 2)
    return out


def _resolve(session: Session, fixes: Fixes) -> None:
    where = locate_arrays(session, fixes["x"], fixes["y"])
    for col in ("grid_code", "town_code", "match"):
        values = where[col]
        kept = np.asarray(values, dtype=object).copy()
        kept[fixes["zero"] | pd.isna(values)] = None
        fixes[col] = kept


def ingest_positions(session: Session, data, *, crs: str = "EPSG:4326", fmt: str | None = None,
                     now: datetime | None = None, max_speed: float = MAX_SPEED,
                     max_accuracy_m: float = MAX_ACCURACY_M, publish: bool = True,
                     scope: Scope | None = None) -> IngestResult:
    """Validate, flag, resolve and store a batch of fixes (sent by ``scope``: only for the workers it
    may report for); update last positions and the live index."""
    rows = validate(session, data, crs=crs, fmt=fmt, now=now, scope=scope)
    received = len(rows) + len(rows.rejected)
    if not len(rows):
        return IngestResult(received, 0, 0, rows.rejected)
    lon, lat = rows["lon"], rows["lat"]
    zero = (np.abs(lon) < 1e-9) & (np.abs(lat) < 1e-9)
    x, y = to_wgs84(lon, lat, crs)
    fixes = {"worker_id": rows["worker_id"], "ts": rows["ts"], "x": np.where(zero, 0.0, x),
             "y": np.where(zero, 0.0, y), "accuracy_m": rows["accuracy_m"], "zero": zero}
    fixes = flag_fixes(fixes, _previous_fixes(session, fixes), max_speed=max_speed, max_accuracy_m=max_accuracy_m)
    _resolve(session, fixes)
    ensure_month_partitions(session, "worker_positions", fixes["ts"])
    inserted = _store(session, fixes)
    _update_last(session, fixes, publish=publish and inserted > 0)
    flagged = int(np.count_nonzero(fixes["flag_code"]))
    return IngestResult(received=received, inserted=inserted, duplicates=len(rows) - inserted,
                        rejected=rows.rejected, flagged=flagged)


def _store(session: Session, fixes: Fixes) -> int:
    """Text travels as codes into small lookup arrays (see ``bulk.upsert``)."""
    workers, worker_ids = text_codes(fixes["worker_id"])
    grids, grid_codes = text_codes(fixes["grid_code"])
    towns, town_codes = text_codes(fixes["town_code"])
    matches, match_names = text_codes(fixes["match"])
    columns = [Column("worker", workers, "int4"), Column("ts", micros(fixes["ts"]), "timestamptz"),
               Column("x", fixes["x"].astype(float), "float8"), Column("y", fixes["y"].astype(float), "float8"),
               Column("acc", fixes["accuracy_m"].astype(float), "float8"),
               Column("speed", fixes["speed_ms"].astype(float), "float8"),
               Column("grid", grids, "int4"), Column("town", towns, "int4"), Column("match", matches, "int4"),
               Column("flag", fixes["flag_code"].astype(np.int32), "int4")]
    selects = {"worker_id": "(CAST(%(w)s AS text[]))[s.worker]", "ts": "s.ts",
               "geom": "ST_SetSRID(ST_MakePoint(s.x, s.y), 4326)", "accuracy_m": "NULLIF(s.acc, 'NaN')",
               "speed_ms": "NULLIF(s.speed, 'NaN')", "grid_code": "(CAST(%(g)s AS text[]))[s.grid]",
               "town_code": "(CAST(%(t)s AS text[]))[s.town]", "match": "(CAST(%(m)s AS text[]))[s.match]",
               "flag": "(CAST(%(f)s AS text[]))[s.flag]"}
    lookups = {"w": worker_ids, "g": grid_codes, "t": town_codes, "m": match_names, "f": list(FLAGS[1:])}
    return upsert(session, "worker_positions", columns, selects, lookups)


def _update_last(session: Session, fixes: Fixes, *, publish: bool = False) -> list[tuple]:
    """Upsert each worker's newest good fix of the batch where it is newer than the stored one, move the
    workers in the live index and, with ``publish``, tell the web viewer (LISTEN onemap_workers) in the
    same statement. Returns the newest fixes as (worker_id, lon, lat, ts, grid_code)."""
    good = np.flatnonzero(fixes["flag_code"] == 0)
    if not len(good):
        if publish:
            notify(session, CHANNEL, _message([]))
        return []
    worker = fixes["worker_id"][good]
    last = good[np.r_[worker[1:] != worker[:-1], True]]  # fixes are sorted by worker, then time
    ids = fixes["worker_id"][last].tolist()
    stamps = [t.replace(tzinfo=UTC) for t in fixes["ts"][last].tolist()]
    x, y = fixes["x"][last].tolist(), fixes["y"][last].tolist()
    accuracy = [None if np.isnan(a) else a for a in fixes["accuracy_m"][last].tolist()]
    grids, towns = fixes["grid_code"][last].tolist(), fixes["town_code"][last].tolist()
    latest = list(zip(ids, x, y, stamps, grids, strict=True))
    with raw_connection(session).cursor() as cur:
        cur.execute(
            "WITH up AS (INSERT INTO worker_last_positions (worker_id, ts, geom, accuracy_m, grid_code, town_code, "
            "updated_at) SELECT w, t, ST_SetSRID(ST_MakePoint(x, y), 4326), a, gc, tc, now() "
            "FROM unnest(CAST(%s AS text[]), CAST(%s AS timestamptz[]), CAST(%s AS float8[]), CAST(%s AS float8[]), "
            "CAST(%s AS float8[]), CAST(%s AS text[]), CAST(%s AS text[])) AS u(w, t, x, y, a, gc, tc) "
            "ON CONFLICT (worker_id) DO UPDATE SET ts = EXCLUDED.ts, geom = EXCLUDED.geom, "
            "accuracy_m = EXCLUDED.accuracy_m, grid_code = EXCLUDED.grid_code, town_code = EXCLUDED.town_code, "
            "updated_at = now() WHERE EXCLUDED.ts > worker_last_positions.ts) "
            "SELECT pg_notify(%s, %s) WHERE %s",
            [ids, stamps, x, y, accuracy, grids, towns, CHANNEL, notify_body(_message(latest)) if publish else "", publish])
    index = live_index(session)
    for worker_id, lon, lat, ts, grid_code in latest:
        index.update(worker_id, lon, lat, ts, grid_code=grid_code)
    return latest


def _message(latest: list[tuple]) -> dict:
    """Where workers are now, for the web viewer."""
    return {"kind": "positions", "count": len(latest), "workers": [
        {"id": w, "lon": round(lon, 6), "lat": round(lat, 6), "ts": ts.isoformat(), "grid_code": g}
        for w, lon, lat, ts, g in latest]}
