"""`onemap archive`: history out of PostGIS into partitioned GeoParquet (历史数据归档).

Why: PostGIS holds the city's live work; a year of GPS fixes is billions of rows that only analytics
and re-resolution read. Whole local days older than a cut-off move to the archive layout described
in :mod:`gis.scale` (``{root}/{table}/day=YYYY-MM-DD/town=<code|none>/part-*.parquet``).

Safe to re-run, per (table, day), inside one savepoint:
1. read the day's rows; drop those whose key is already archived (a crash after writing but before
   the delete committed leaves such rows: they are not written twice);
2. write the rest, one part file per town, under temporary names renamed into place;
3. read the day's partitions back: every key read in step 1 must be there exactly once;
4. delete the day's rows, ``RETURNING`` their keys: the count and the keys must equal step 1's
   (a row that arrived meanwhile would differ), else the savepoint is rolled back and nothing is
   deleted. The next run archives the late row and deletes the day.
No row is deleted before it is in the archive; no key is in the archive twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import scale
from gis.bulk import raw_connection
from gis.errors import Conflict, InvalidInput
from gis.registry import load_grids, registry_version
from gis.settings import CITY_TZ

_TS = pa.timestamp("us", tz="UTC")
_S = pa.string()
_F = pa.float64()


@dataclass(frozen=True)
class Spec:
    """One archived table: its time column, key, the day's select and delete, its Arrow schema."""

    table: str
    time: str
    keys: tuple[str, ...]
    select: str  # columns in schema order, then lon, lat; params a, b
    delete: str  # RETURNING the keys; params a, b
    schema: pa.Schema  # attributes (the point geometry is added)

    @property
    def columns(self) -> list[str]:
        return [*self.schema.names, "lon", "lat"]


_POLLUTANTS = ("pm25", "pm10", "no2", "so2", "o3", "co")
# grid_code/town_code follow the current map (re-resolution rewrites them, and the town partition
# with them); the intake_ copies keep what the row resolved to when it came in (DESIGN: records
# freeze their grid at intake so past rankings do not change). Never rewritten.
_INTAKE = [("intake_grid_code", _S), ("intake_town_code", _S)]

SPECS = {
    "worker_positions": Spec(
        "worker_positions", "ts", ("worker_id", "ts"),
        "SELECT worker_id, ts, accuracy_m, speed_ms, grid_code, town_code, match, flag, received_at, "
        "grid_code, town_code, ST_X(geom), ST_Y(geom) FROM worker_positions WHERE ts >= %(a)s AND ts < %(b)s",
        "DELETE FROM worker_positions WHERE ts >= %(a)s AND ts < %(b)s RETURNING worker_id, ts",
        pa.schema([("worker_id", _S), ("ts", _TS), ("accuracy_m", _F), ("speed_ms", _F), ("grid_code", _S),
                   ("town_code", _S), ("match", _S), ("flag", _S), ("received_at", _TS), *_INTAKE])),
    "sensor_readings": Spec(
        "sensor_readings", "ts", ("sensor_id", "ts"),
        f"SELECT r.sensor_id, r.ts, {', '.join('r.' + p for p in _POLLUTANTS)}, r.received_at, s.grid_code, "
        "s.town_code, s.match, s.grid_code, s.town_code, ST_X(s.geom), ST_Y(s.geom) FROM sensor_readings r "
        "LEFT JOIN sensors s ON s.id = r.sensor_id WHERE r.ts >= %(a)s AND r.ts < %(b)s",
        "DELETE FROM sensor_readings WHERE ts >= %(a)s AND ts < %(b)s RETURNING sensor_id, ts",
        pa.schema([("sensor_id", _S), ("ts", _TS), *[(p, _F) for p in _POLLUTANTS], ("received_at", _TS),
                   ("grid_code", _S), ("town_code", _S), ("match", _S), *_INTAKE])),
    "detections": Spec(
        "detections", "at", ("id",),
        "SELECT d.id, d.camera_id, d.at, d.class_name, d.confidence, d.x1, d.y1, d.x2, d.y2, d.track_id, "
        "d.grid_code, c.grid_code, c.town_code, d.grid_code, c.town_code, ST_X(d.geom), ST_Y(d.geom) "
        "FROM detections d "
        "LEFT JOIN cameras c ON c.id = d.camera_id WHERE d.at >= %(a)s AND d.at < %(b)s",
        "DELETE FROM detections WHERE at >= %(a)s AND at < %(b)s RETURNING id",
        pa.schema([("id", pa.int64()), ("camera_id", _S), ("at", _TS), ("class_name", _S), ("confidence", _F),
                   ("x1", _F), ("y1", _F), ("x2", _F), ("y2", _F), ("track_id", pa.int64()),
                   ("grid_code", _S), ("camera_grid_code", _S), ("town_code", _S), *_INTAKE])),
}


@dataclass(frozen=True)
class DayResult:
    """One (table, day) archived: rows moved, rows written now, rows found already archived."""

    table: str
    day: date
    rows: int
    written: int
    already: int
    partitions: int


def _cursor_frame(session: Session, sql: str, params: dict, columns: list[str]) -> pd.DataFrame:
    with raw_connection(session).cursor() as cur:
        cur.execute(sql, params)
        return pd.DataFrame.from_records(cur.fetchall(), columns=columns)


def _typed(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    for f in spec.schema:
        if f.type == _TS:
            frame[f.name] = pd.to_datetime(frame[f.name], utc=True).astype("datetime64[us, UTC]")
        elif f.type == _F:
            frame[f.name] = pd.to_numeric(frame[f.name]).astype(float)
        elif f.type == pa.int64():
            frame[f.name] = frame[f.name].astype("Int64")
    frame["lon"] = pd.to_numeric(frame["lon"]).astype(float)
    frame["lat"] = pd.to_numeric(frame["lat"]).astype(float)
    return frame


def _keys(frame: pd.DataFrame, spec: Spec) -> pd.Index:
    """The rows' keys; times as integer microseconds so stored and read-back values compare exactly."""
    arrays = []
    for k in spec.keys:
        col = frame[k]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]").astype(np.int64)
        arrays.append(col.astype(np.int64) if k == "id" else col.astype(object) if k != spec.time else col)
    return pd.MultiIndex.from_arrays(arrays) if len(arrays) > 1 else pd.Index(arrays[0])


def archived_keys(root: Path, spec: Spec, day: date) -> pd.Index:
    """Keys of every row archived for ``day`` (all towns)."""
    files = scale.part_files(scale.partitions(root, spec.table, start=day, end=day))
    frames = [scale.read_part(f, columns=list(spec.keys)) for f in files]
    if not frames:
        return _keys(pd.DataFrame({k: pd.Series([], dtype="datetime64[us, UTC]" if k == spec.time else object)
                                   for k in spec.keys}), spec)
    return _keys(pd.concat(frames, ignore_index=True), spec)


def _write(root: Path, spec: Spec, day: date, frame: pd.DataFrame) -> int:
    """One part file per town for the day, rows in key order; returns the partitions written."""
    frame = frame.sort_values(list(spec.keys), kind="stable")
    towns = frame["town_code"].astype(object).where(frame["town_code"].notna(), scale.NO_TOWN)
    schema = scale.with_geometry(spec.schema)
    for town, part in frame.groupby(towns, sort=True):
        scale.write_part(part, scale.partition_dir(root, spec.table, day.isoformat(), town), schema)
    return int(towns.nunique())


def archive_day(session: Session, root: Path, table: str, day: date) -> DayResult:
    """Move one local day of ``table`` into the archive (the steps in the module docstring)."""
    spec = SPECS[table]
    a, b = scale.day_bounds(day)
    with session.begin_nested():
        frame = _typed(_cursor_frame(session, spec.select, {"a": a, "b": b}, spec.columns), spec)
        if frame.empty:
            return DayResult(table, day, 0, 0, 0, 0)
        keys = _keys(frame, spec)
        if keys.has_duplicates:
            raise Conflict(f"{table} has duplicate keys on {day}; archive refused")
        new = frame[~keys.isin(archived_keys(root, spec, day))]
        touched = _write(root, spec, day, new) if len(new) else 0
        stored = archived_keys(root, spec, day)
        if stored.has_duplicates or not keys.isin(stored).all():
            raise Conflict(f"{table} {day}: the archive read back does not hold every row once; nothing deleted")
        deleted = _cursor_frame(session, spec.delete, {"a": a, "b": b}, list(spec.keys))
        deleted = _typed_keys(deleted, spec)
        if len(deleted) != len(frame) or not _keys(deleted, spec).isin(stored).all():
            raise Conflict(f"{table} {day}: rows changed while archiving ({len(deleted)} to delete, "
                           f"{len(frame)} archived); nothing deleted, run again")
    return DayResult(table, day, len(frame), len(new), len(frame) - len(new), touched)


def _typed_keys(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    if spec.time in frame:
        frame[spec.time] = pd.to_datetime(frame[spec.time], utc=True).astype("datetime64[us, UTC]")
    return frame


def exists(session: Session, table: str) -> bool:
    return session.scalar(text("SELECT to_regclass(:t)"), {"t": table}) is not None


def pending_days(session: Session, table: str, before: date) -> list[date]:
    """The local days of ``table`` holding rows older than ``before`` (local midnight)."""
    spec = SPECS[table]
    cut, _ = scale.day_bounds(before)
    first = session.scalar(text(f"SELECT min({spec.time}) FROM {table} WHERE {spec.time} < :cut"), {"cut": cut})
    if first is None:
        return []
    day = first.astimezone(CITY_TZ).date()
    return [day + timedelta(days=i) for i in range((before - day).days)]


def archive(session: Session, root: Path, *, before: date, tables: list[str] | None = None) -> list[DayResult]:
    """Archive every whole local day before ``before`` of the tables that exist (default: all)."""
    unknown = set(tables or []) - set(SPECS)
    if unknown:
        raise InvalidInput(f"cannot archive {sorted(unknown)}; archivable tables: {sorted(SPECS)}")
    results = []
    for table in tables or list(SPECS):
        if exists(session, table):
            results += [r for d in pending_days(session, table, before)
                        if (r := archive_day(session, root, table, d)).rows]
    return results


# --------------------------------------------------------------------------- after a redraw


def affected_towns(session: Session, since_edit: int) -> set[str]:
    """Towns whose grids changed in edits after ``since_edit`` (closed or opened codes, grid_edits)."""
    rows = session.execute(text("SELECT closed_codes, opened_codes FROM grid_edits WHERE id > :v"),
                           {"v": since_edit}).all()
    return {c[:9] + "000" for closed, opened in rows for c in [*(closed or []), *(opened or [])]}


def _state_path(root: Path, table: str) -> Path:
    return Path(root) / table / "_resolved.json"


def resolved_version(root: Path, table: str) -> int | None:
    """The registry version the archive of ``table`` was last re-resolved against (None: never)."""
    path = _state_path(root, table)
    return json.loads(path.read_text())["registry_version"] if path.exists() else None


def reresolve_after_edits(session: Session, root: Path, table: str = "worker_positions", *,
                          since_edit: int | None = None, client=None) -> tuple[scale.Reresolved, set[str]]:
    """Re-resolve only the partitions of towns redrawn since ``since_edit`` (default: the version the
    archive was last re-resolved against, else 0) against the current grids; remember the version."""
    since = since_edit if since_edit is not None else (resolved_version(root, table) or 0)
    towns = affected_towns(session, since)
    version = registry_version(session)
    done = scale.reresolve(root, table, load_grids(session), towns=towns, client=client, version=version) \
        if towns else scale.Reresolved(0, 0, 0, 0, 0)
    path = _state_path(root, table)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"registry_version": version, "at": datetime.now(CITY_TZ).isoformat()}))
    return done, towns
