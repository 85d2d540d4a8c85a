"""Bulk machinery shared by sensor readings and worker positions: parse a batch, reject bad rows with
their row numbers, create monthly partitions on demand, and land rows idempotently.

One behaviour at every size. A phone posts ten fixes, the CLI a million rows; both go through the same
checks, on numpy columns (:class:`Rows`) rather than a DataFrame, because every pandas call costs tens of
microseconds whatever its size and a small batch made of a few hundred of them cost ~30 ms of CPU. Where
a per-value Python step would be slow at a million rows (reading CSV, parsing text timestamps), the
vectorised pandas step is used above a size, and both give the same answer (tests compare them).

Storing: rows go in with ``INSERT ... ON CONFLICT DO NOTHING``, so a resent batch (or an overlapping
one) is a no-op for rows already stored, ingestion is idempotent on (id, ts), and rows may arrive in
any order. A small batch is one statement over ``unnest`` of arrays; a big one is first copied into a
temporary table with binary COPY, the fastest way into PostgreSQL, which cannot skip duplicates by
itself. Sensors, worker positions and the archive all use it, so it lives in gis/ (it knows no layer).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from gis.errors import InvalidInput

CITY_TZ = ZoneInfo("Asia/Shanghai")
COPY_CHUNK = 200_000
UNNEST_MAX_ROWS = 200  # up to this many rows one INSERT over unnest(arrays), beyond it COPY (measured)
SIMPLE_CSV_MAX_CHARS = 64 * 1024  # plain CSV up to this size (~1,000 rows) is split in Python, beyond it pandas reads it
FUTURE_TOLERANCE = timedelta(minutes=5)  # device clocks drift; beyond this a timestamp is refused


@dataclass
class Batch:
    """Rows that passed validation (``frame``, with the 1-based input ``row``) and the refused ones."""

    frame: pd.DataFrame
    rejected: list[dict] = field(default_factory=list)

    def reject(self, mask: np.ndarray | pd.Series, reason: str) -> None:
        """Move the rows under ``mask`` to ``rejected`` with ``reason`` (first reason wins)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.rejected.extend({"row": int(r), "reason": reason} for r in self.frame.loc[mask, "row"])
        self.frame = self.frame.loc[~mask].reset_index(drop=True)


@dataclass
class Rows:
    """A batch as named numpy columns, the 1-based input ``row`` of each, and the refused rows.

    Text columns are object arrays (str, or None/NaN where missing) until a check types them; times are
    ``datetime64[us]`` in UTC once :func:`check_times` has run.
    """

    columns: dict[str, np.ndarray]
    row: np.ndarray
    rejected: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.row)

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self.columns[name] = values

    def get(self, name: str) -> np.ndarray:
        """The column ``name``; an absent one is added, all missing, so the checks refuse its rows."""
        if name not in self.columns:
            self.columns[name] = np.full(len(self), None, dtype=object)
        return self.columns[name]

    def rename(self, names: dict[str, str]) -> Rows:
        """Rename columns; when two land on one name the first keeps it."""
        columns: dict[str, np.ndarray] = {}
        for name, values in self.columns.items():
            columns.setdefault(names.get(name, name), values)
        self.columns = columns
        return self

    def reject(self, *checks: tuple[np.ndarray, str]) -> None:
        """Refuse rows: each ``(mask, reason)`` in order, a row taking the first reason whose mask holds it."""
        taken = np.zeros(len(self), dtype=bool)
        for mask, reason in checks:
            new = np.asarray(mask, dtype=bool) & ~taken
            if new.any():
                self.rejected.extend({"row": int(r), "reason": reason} for r in self.row[new])
                taken |= new
        if taken.any():
            keep = ~taken
            self.row = self.row[keep]
            self.columns = {name: values[keep] for name, values in self.columns.items()}


@dataclass
class IngestResult:
    """What a batch did: counts, refused rows (row number + reason) and anything raised."""

    received: int
    inserted: int
    duplicates: int
    rejected: list[dict]
    flagged: int = 0
    alarms_opened: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- parsing

def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the batch is not UTF-8 text: {exc}") from exc


def _sniff(body: str, fmt: str | None) -> str:
    return fmt or ("jsonl" if body.lstrip()[:1] in ("{", "[") else "csv")


def read_table(data: bytes | str | pd.DataFrame | list[dict], *, fmt: str | None = None) -> pd.DataFrame:
    """A batch as a DataFrame of strings, one row per input row, numbered from 1 in ``row``.

    ``fmt`` is ``csv`` or ``jsonl``; when None it is sniffed (a first character ``{`` means JSON lines).
    Everything stays text here so validation can say exactly which row was bad and why. (The registries
    read their files with this; the ingest paths use :func:`read_rows`.)
    """
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, list):
        frame = pd.DataFrame.from_records(_objects(data))
    else:
        body = _text(data)
        frame = pd.DataFrame.from_records(_records(body)) if _sniff(body, fmt) == "jsonl" else _csv(body)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame.insert(0, "row", np.arange(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def read_rows(data: bytes | str | pd.DataFrame | list[dict], *, fmt: str | None = None) -> Rows:
    """A batch as :class:`Rows`: the same reading as :func:`read_table` (names stripped and lower-cased),
    as arrays. A DataFrame's datetime columns arrive as UTC (naive ones are city time)."""
    if isinstance(data, pd.DataFrame):
        columns: dict[str, np.ndarray] = {}
        for name in data.columns:
            columns.setdefault(str(name).strip().lower(), _series_values(data[name]))
        n = len(data)
    elif isinstance(data, list):
        columns, n = _record_columns(_objects(data))
    else:
        body = _text(data)
        if _sniff(body, fmt) == "jsonl":
            columns, n = _record_columns(_records(body))
        else:
            columns, n = _csv_columns(body)
    return Rows(columns, np.arange(1, n + 1))


def _series_values(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        stamps = values if values.dt.tz is not None else values.dt.tz_localize(
            CITY_TZ, ambiguous="NaT", nonexistent="NaT")
        return utc_micros(stamps)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy()
    return values.to_numpy(dtype=object)


def _csv(body: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"cannot read the CSV batch: {exc}") from exc


def _csv_columns(body: str) -> tuple[dict[str, np.ndarray], int]:
    simple = _simple_csv(body)
    if simple is not None:
        return simple
    frame = _csv(body)
    columns: dict[str, np.ndarray] = {}
    for name in frame.columns:
        columns.setdefault(str(name).strip().lower(), frame[name].to_numpy(dtype=object))
    return columns, len(frame)


def _simple_csv(body: str) -> tuple[dict[str, np.ndarray], int] | None:
    """A small CSV without quotes, blank lines or ragged rows, split in Python: what pandas reads from
    it (every cell a string, an empty one NaN), without pandas' ~2 ms per call. None: ask pandas."""
    if len(body) > SIMPLE_CSV_MAX_CHARS or any(c in body for c in ('"', "\x00", "\ufeff")):
        return None
    body = body.replace("\r\n", "\n")
    lines = body.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines or "\r" in body:
        return None
    header = lines[0].split(",")
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        return None
    cells = [line.split(",") for line in lines[1:]]
    if any(len(c) != len(header) or not line.strip() for c, line in zip(cells, lines[1:], strict=True)):
        return None
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        values = np.empty(len(cells), dtype=object)
        values[:] = [c[j] if c[j] != "" else np.nan for c in cells]
        columns.setdefault(name.strip().lower(), values)
    return columns, len(cells)


def _records(body: str) -> list[dict]:
    stripped = body.strip()
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"cannot read the JSON batch: {exc}") from exc
        except RecursionError as exc:
            raise InvalidInput("cannot read the JSON batch: nested too deeply") from exc
        return _objects(records if isinstance(records, list) else [records])
    records = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            records.append({})
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            record = None
        records.append(record if isinstance(record, dict) else {"_bad_json": f"line {number} is not a JSON object"})
    return records


def _objects(records: list) -> list[dict]:
    """Records as dicts; anything else is marked, to be refused as "not a JSON object"."""
    if all(isinstance(r, dict) for r in records):
        return records
    return [r if isinstance(r, dict) else {"_bad_json": f"item {i} is not a JSON object"}
            for i, r in enumerate(records, start=1)]


def _record_columns(records: list[dict]) -> tuple[dict[str, np.ndarray], int]:
    """Columns of the records' values as they are (str, int, float, None ...), keys in first-seen order."""
    n = len(records)
    names = list(records[0]) if n else []
    extra = set().union(*records).difference(names) if n else set()
    names += sorted(extra, key=str)
    columns: dict[str, np.ndarray] = {}
    for name in names:
        key = str(name).strip().lower()
        if key not in columns:
            columns[key] = np.fromiter((r.get(name) for r in records), dtype=object, count=n)
    return columns, n


def blank(values: pd.Series) -> np.ndarray:
    """True where a cell is missing or only whitespace."""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return values.isna().to_numpy()
    as_text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    return (as_text == "").to_numpy()


def missing(values: np.ndarray) -> np.ndarray:
    """:func:`blank` for an array: True where a value is missing (None, NaN, NaT) or only whitespace."""
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind != "O":
        return np.zeros(len(values), dtype=bool)
    na = pd.isna(values)
    return na | np.fromiter((not gone and not str(v).strip() for v, gone in zip(values, na, strict=True)),
                            dtype=bool, count=len(values))


def numbers(values: np.ndarray) -> np.ndarray:
    """Float64; NaN where a value is missing or not a number (``pd.to_numeric`` with ``errors="coerce"``)."""
    if values.dtype.kind == "f":
        return values.astype(float, copy=False)
    try:
        return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)
    except (TypeError, ValueError):  # a list or an object in a cell: one by one
        return np.array([_number(v) for v in values], dtype=float)


def _number(value) -> float:
    try:
        return float(pd.to_numeric(value, errors="coerce"))
    except (TypeError, ValueError):
        return np.nan


# --------------------------------------------------------------------------- times

_NAT = np.datetime64("NaT", "us")
_NAT_INT = np.iinfo(np.int64).min  # NaT as int64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICRO = timedelta(microseconds=1)
# ISO 8601 as phones and servers write it, years 1950-2199 (well inside pandas' range; the city's clock
# changes since then all fell on whole hours): parsed one by one with datetime.fromisoformat, which reads
# these exactly as pandas does (tests hold them together).
_ISO = re.compile(r"(19[5-9]|2[01]\d)\d-\d\d-\d\d([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]\d\d:?\d\d)?)?")
FAST_TIMES_MAX = 1_000  # text timestamps up to this many per batch are parsed one by one (measured)


def utc_micros(stamps: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Timestamps → ``datetime64[us]`` in UTC (naive); aware pandas ones are converted, numpy ones and
    naive pandas ones are taken as UTC already. Sub-microsecond parts are floored, as PostgreSQL keeps µs."""
    if isinstance(stamps, np.ndarray) and stamps.dtype.kind == "M":
        return stamps.astype("datetime64[us]")
    index = pd.DatetimeIndex(stamps)
    if index.tz is not None:
        index = index.tz_convert(UTC).tz_localize(None)
    return index.floor("us").to_numpy().astype("datetime64[us]")


def utc_instant(moment: datetime) -> np.datetime64:
    """A datetime → ``datetime64[us]`` in UTC (a naive one is taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")


def parse_times(values: np.ndarray) -> np.ndarray:
    """Timestamps → ``datetime64[us]`` in UTC, NaT where unreadable or missing. Naive ones are city time
    (Asia/Shanghai); numbers above 1e8 (and numeric text) are epoch seconds."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return values.astype("datetime64[us]")
    out = np.full(len(values), _NAT)
    objects = values.astype(object)
    if values.dtype.kind == "O" and any(isinstance(v, datetime) for v in objects):
        objects = np.fromiter((v.isoformat() if isinstance(v, datetime) else v for v in objects),
                              dtype=object, count=len(objects))
    numeric = numbers(objects)
    is_epoch = numeric > 1e8
    if is_epoch.any():
        out[is_epoch] = utc_micros(pd.to_datetime(numeric[is_epoch], unit="s", utc=True, errors="coerce"))
    rest = ~is_epoch & ~pd.isna(objects)
    if rest.any():
        out[rest] = parse_text_times([str(v) for v in objects[rest]])
    return out


def parse_text_times(texts: list[str], *, fast: bool | None = None) -> np.ndarray:
    """Text timestamps → ``datetime64[us]`` UTC. ISO 8601 strings of a small batch are read one by one
    (a microsecond or two each); the rest, and big batches, by pandas (``format="mixed"``) as one array."""
    if fast is None:
        fast = len(texts) <= FAST_TIMES_MAX
    micros_ = np.full(len(texts), _NAT_INT, dtype=np.int64)
    slow = []
    for i, value in enumerate(texts):
        if fast and _ISO.fullmatch(value):
            micros_[i] = _iso_micros(value)
        else:
            slow.append(i)
    out = micros_.view("datetime64[us]")
    if slow:
        out[slow] = _pandas_times(pd.Series([texts[i] for i in slow], dtype=object))
    return out


def _iso_micros(value: str) -> int:
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return _NAT_INT
    if stamp.tzinfo is not None:
        return (stamp - _EPOCH) // _MICRO
    offset = _city_offset(stamp.year, stamp.month, stamp.day, stamp.hour)
    if offset is None:
        return _NAT_INT  # a wall time that happened twice or never (clock changes): ambiguous, refused
    return (stamp - _NAIVE_EPOCH) // _MICRO - offset


@lru_cache(maxsize=4096)
def _city_offset(year: int, month: int, day: int, hour: int) -> int | None:
    """The city's UTC offset in µs during a wall-clock hour; None in an hour the clocks skipped or repeated."""
    wall = datetime(year, month, day, hour)
    offsets = {wall.replace(minute=m, tzinfo=CITY_TZ, fold=f).utcoffset() for m in (0, 59) for f in (0, 1)}
    offset = offsets.pop() if len(offsets) == 1 else None
    return None if offset is None else offset // _MICRO


def _pandas_times(values: pd.Series) -> np.ndarray:
    try:  # one pass when the batch is consistent: all with an offset, or all naive
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(CITY_TZ, ambiguous="NaT", nonexistent="NaT")
        return utc_micros(parsed)
    except (ValueError, TypeError, AttributeError):
        pass
    out = []
    for raw in values:  # mixed offsets, or naive beside aware: one by one
        stamp = pd.to_datetime(raw, errors="coerce")
        if stamp is pd.NaT or pd.isna(stamp):
            out.append(pd.NaT)
        elif stamp.tzinfo is None:
            local = stamp.tz_localize(CITY_TZ, ambiguous="NaT", nonexistent="NaT")
            out.append(pd.NaT if local is pd.NaT else local.tz_convert(UTC))
        else:
            out.append(stamp.tz_convert(UTC))
    return utc_micros(pd.to_datetime(out, utc=True))


def check_times(rows: Rows, column: str = "ts", *, now: datetime | None = None) -> None:
    """Refuse rows without a timestamp, with an unreadable one, or in the future beyond tolerance;
    the column becomes ``datetime64[us]`` UTC."""
    values = rows.get(column)
    empty = missing(values)
    stamps = parse_times(values)
    rows[column] = stamps
    limit = utc_instant(now or datetime.now(UTC)) + np.timedelta64(FUTURE_TOLERANCE)
    ahead = f"timestamp in the future (more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} min ahead)"
    rows.reject((empty, "missing timestamp"), (np.isnat(stamps), "unreadable timestamp"), (stamps > limit, ahead))


KnownIds = set[str] | Callable[[list[str]], set[str]]


def check_ids(rows: Rows, column: str, known: KnownIds, what: str) -> None:
    """Refuse rows that are not JSON objects, or whose id is missing or not registered. ``known`` is the
    set of registered ids, or a function asked with the batch's distinct ids that returns the known ones."""
    not_json = ~pd.isna(rows["_bad_json"]) if "_bad_json" in rows else np.zeros(len(rows), dtype=bool)
    values = rows.get(column)
    try:
        codes, uniques = pd.factorize(values)  # missing → -1: a few distinct ids, however many rows
    except TypeError:  # a list or an object as an id: its text, which no registered id is
        codes, uniques = pd.factorize(np.fromiter((v if isinstance(v, str | int | float) or v is None else str(v)
                                                   for v in values), dtype=object, count=len(values)))
    stripped = [str(u).strip() for u in uniques]
    ids = np.array([*stripped, ""], dtype=object)[codes]
    distinct = sorted({s for s in stripped if s})
    found = (known(distinct) if distinct else set()) if callable(known) else known
    unknown = np.array([s not in found for s in stripped] + [False], dtype=bool)[codes]
    rows[column] = ids
    rows.reject((not_json, "not a JSON object"), (ids == "", f"missing {what} id"), (unknown, f"unknown {what} id"))


# --------------------------------------------------------------------------- partitions and storing

def seconds(stamps: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps → float seconds since the epoch (aware pandas ones, or ``datetime64`` in UTC)."""
    if isinstance(stamps, np.ndarray):
        return stamps.astype("datetime64[us]").astype(np.int64) / 1e6
    return ((stamps - pd.Timestamp(0, tz=UTC)) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)


def raw_connection(session: Session):
    """The psycopg 3 connection under the session, inside the session's own transaction."""
    return session.connection().connection.driver_connection


def read_frame(session: Session, sql: str, params: tuple, columns: list[str]) -> pd.DataFrame:
    """A query straight into a DataFrame through the raw cursor (no ORM row objects on big reads)."""
    with raw_connection(session).cursor() as cur:
        cur.execute(sql, params)
        return pd.DataFrame.from_records(cur.fetchall(), columns=columns)


def month_starts(stamps: pd.Series | np.ndarray) -> list[pd.Timestamp]:
    """The distinct UTC month starts a batch touches."""
    micros_ = utc_micros(stamps) if len(stamps) else np.array([], dtype="datetime64[us]")
    months = np.unique(micros_[~np.isnat(micros_)].astype("datetime64[M]"))
    return [pd.Timestamp(m).tz_localize(UTC) for m in months]


def ensure_month_partitions(session: Session, parent: str, stamps: pd.Series | np.ndarray) -> list[str]:
    """Create the monthly partitions of ``parent`` a batch needs (named ``parent_pYYYYMM``).

    One query asks which are missing (``to_regclass``, no lock); those are made by
    ``onemap_month_partition`` (migration 0013): the application's role owns no table and may not
    create one, so the owner makes the partition (SECURITY DEFINER), under an advisory lock so two
    ingesters racing for a new month do not collide. Not cached in the process: a cache would outlive
    a rolled-back transaction that created a partition, and the query is one round trip.
    """
    starts = month_starts(stamps)
    if not starts:
        return []
    names = [f"{parent}_p{start:%Y%m}" for start in starts]
    created = []
    with raw_connection(session).cursor() as cur:
        cur.execute("SELECT n FROM unnest(CAST(%s AS text[])) AS n WHERE to_regclass(n) IS NULL", [names])
        absent = {r[0] for r in cur.fetchall()}
        for start, name in zip(starts, names, strict=True):
            if name in absent:
                cur.execute("SELECT onemap_month_partition(%s, %s)", [parent, start.to_pydatetime()])
                created.append(name)
    return created


@dataclass(frozen=True)
class Column:
    """One staged column: a fixed-width array and its PostgreSQL type.

    Text travels as int4 codes into a lookup array (see :func:`text_codes`), timestamps as int8
    microseconds since 2000-01-01 (PostgreSQL's own binary form), floats as float8 with NaN for NULL.
    Everything is fixed width, so numpy packs a whole batch at once — no Python loop per row, no CSV.
    """

    name: str
    values: np.ndarray
    pg_type: str  # int4 | int8 | float8 | timestamptz


_NP = {"int4": ">i4", "int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_HEADER = b"PGCOPY\n\xff\r\n\x00" + np.array([0, 0], ">i4").tobytes()
_TRAILER = b"\xff\xff"


def text_codes(values: Iterable) -> tuple[np.ndarray, list[str]]:
    """Text → (int4 codes, lookup list): 0 for missing, i for lookup[i] in PostgreSQL's 1-based array
    subscript, which reads NULL for 0."""
    array = values if isinstance(values, np.ndarray) and values.dtype == object else np.asarray(
        list(values), dtype=object)
    codes, uniques = pd.factorize(array)  # None and NaN → -1
    return (codes + 1).astype(np.int32), [str(u) for u in uniques]


def micros(stamps: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps (aware pandas, or ``datetime64`` UTC) → int8 microseconds since 2000-01-01 UTC (binary timestamptz)."""
    return (utc_micros(stamps) - _PG_EPOCH).astype(np.int64)


def pack_rows(columns: list[Column]) -> bytes:
    """The rows as binary COPY tuples (field count, then length + big-endian value per field)."""
    fields = [("count", ">i2")]
    for i, col in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"val{i}", _NP[col.pg_type])]
    rows = np.empty(len(columns[0].values), dtype=np.dtype(fields))
    rows["count"] = len(columns)
    for i, col in enumerate(columns):
        rows[f"len{i}"] = np.dtype(_NP[col.pg_type]).itemsize
        rows[f"val{i}"] = col.values
    return rows.tobytes()


def upsert(session: Session, table: str, columns: list[Column], selects: dict[str, str],
           lookups: dict[str, list[str]] | None = None) -> int:
    """``INSERT INTO table (...) SELECT ... ON CONFLICT DO NOTHING`` of ``columns``: stored rows are
    skipped, so a resent batch inserts nothing. Returns the number of rows inserted.

    ``selects`` maps each target column to an expression over the staged row ``s``; ``lookups`` are the
    text arrays those expressions index, e.g. ``(CAST(%(ids)s AS text[]))[s.worker]``. Up to
    ``UNNEST_MAX_ROWS`` rows the stage is ``unnest`` of arrays in the statement itself (one round trip);
    beyond, a temporary table filled by binary COPY (:func:`copy_upsert`).
    """
    n = len(columns[0].values)
    if n == 0:
        return 0
    if n > UNNEST_MAX_ROWS:
        return copy_upsert(session, table, columns, selects, lookups)
    params: dict = {**(lookups or {}), **{f"stage_{c.name}": _array_literal(c) for c in columns}}
    arrays = ", ".join(f"CAST(%(stage_{c.name})s AS {c.pg_type}[])" for c in columns)
    with raw_connection(session).cursor() as cur:
        cur.execute(f"INSERT INTO {table} ({', '.join(selects)}) SELECT {', '.join(selects.values())} "
                    f"FROM unnest({arrays}) AS s({', '.join(c.name for c in columns)}) ON CONFLICT DO NOTHING", params)
        return int(cur.rowcount)


def _array_literal(column: Column) -> str:
    """A column as a PostgreSQL array literal: one text parameter, where psycopg would adapt a list value
    by value (~1 µs each, most of a small batch's cost). Floats by ``repr``, which reads back exactly
    (and ``nan``/``inf``, which float8 accepts); timestamps as UTC with microseconds."""
    if column.pg_type == "timestamptz":
        texts = np.datetime_as_string(_PG_EPOCH + column.values.astype("timedelta64[us]"), unit="us").tolist()
        return "{" + ",".join(t + "+00" for t in texts) + "}"
    if column.pg_type == "float8":
        return "{" + ",".join(map(repr, column.values.astype(float).tolist())) + "}"
    return "{" + ",".join(map(str, column.values.astype(np.int64).tolist())) + "}"


def copy_upsert(session: Session, table: str, columns: list[Column], selects: dict[str, str],
                lookups: dict[str, list[str]] | None = None) -> int:
    """Binary COPY ``columns`` into a temporary stage, then ``INSERT INTO table (...) SELECT ...
    ON CONFLICT DO NOTHING`` (see :func:`upsert`). Returns the number of rows inserted."""
    n = len(columns[0].values)
    if n == 0:
        return 0
    stage = f"_stage_{table}"
    with raw_connection(session).cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {stage}")
        cur.execute(f"CREATE TEMP TABLE {stage} ({', '.join(f'{c.name} {c.pg_type}' for c in columns)})")
        with cur.copy(f"COPY {stage} FROM STDIN WITH (FORMAT binary)") as copy:
            copy.write(_HEADER)
            for start in range(0, n, COPY_CHUNK):  # bounded memory for million-row batches
                copy.write(pack_rows([Column(c.name, c.values[start:start + COPY_CHUNK], c.pg_type)
                                      for c in columns]))
            copy.write(_TRAILER)
        cur.execute(f"INSERT INTO {table} ({', '.join(selects)}) SELECT {', '.join(selects.values())} "
                    f"FROM {stage} s ON CONFLICT DO NOTHING", lookups or {})
        inserted = cur.rowcount
        cur.execute(f"DROP TABLE {stage}")
    return int(inserted)


def notify_body(payload: dict, *, limit: int = 7900) -> str:
    """A notification's JSON, kept under PostgreSQL's 8,000-byte limit (lists are cut, ``truncated`` set)."""
    body = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
    while len(body.encode()) > limit:
        lists = [k for k, v in payload.items() if isinstance(v, list) and v]
        if not lists:
            return json.dumps({"truncated": True}, separators=(",", ":"))
        key = lists[0]
        payload = {**payload, key: payload[key][: len(payload[key]) // 2], "truncated": True}
        body = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
    return body


def notify(session: Session, channel: str, payload: dict, *, limit: int = 7900) -> None:
    """``pg_notify`` with a JSON payload kept under PostgreSQL's 8,000-byte limit (lists are cut)."""
    with raw_connection(session).cursor() as cur:
        cur.execute("SELECT pg_notify(%s, %s)", [channel, notify_body(payload, limit=limit)])
