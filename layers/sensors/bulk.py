"""Bulk machinery shared by sensor readings and worker positions: parse a batch, reject bad rows with
their row numbers, create monthly partitions on demand, and land rows with PostgreSQL COPY.

Why COPY into a temporary table and then ``INSERT ... ON CONFLICT DO NOTHING``: COPY is the fastest
way into PostgreSQL but cannot skip duplicates; the second statement makes a resent batch (or an
overlapping one) a no-op for rows already stored, so ingestion is idempotent on (id, ts), and rows may
arrive in any order. (Workers reuse this module; it belongs in gis/ once a third layer needs it.)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.errors import InvalidInput

CITY_TZ = ZoneInfo("Asia/Shanghai")
COPY_CHUNK = 200_000
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

def read_table(data: bytes | str | pd.DataFrame | list[dict], *, fmt: str | None = None) -> pd.DataFrame:
    """A batch as a DataFrame of strings, one row per input row, numbered from 1 in ``row``.

    ``fmt`` is ``csv`` or ``jsonl``; when None it is sniffed (a first character ``{`` means JSON lines).
    Everything stays text here so validation can say exactly which row was bad and why.
    """
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, list):
        frame = pd.DataFrame.from_records(data)
    else:
        body = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        fmt = fmt or ("jsonl" if body.lstrip()[:1] in ("{", "[") else "csv")
        frame = _jsonl(body) if fmt == "jsonl" else _csv(body)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame.insert(0, "row", np.arange(1, len(frame) + 1))
    return frame.reset_index(drop=True)


def _csv(body: str) -> pd.DataFrame:
    try:
        return pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInput(f"cannot read the CSV batch: {exc}") from exc


def _jsonl(body: str) -> pd.DataFrame:
    stripped = body.strip()
    if stripped.startswith("["):
        records = json.loads(stripped)
    else:
        records = []
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip():
                records.append({})
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"_bad_json": f"line {number} is not JSON"})
    return pd.DataFrame.from_records(records)


def blank(values: pd.Series) -> np.ndarray:
    """True where a cell is missing or only whitespace."""
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return values.isna().to_numpy()
    as_text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
    return (as_text == "").to_numpy()


def parse_times(values: pd.Series) -> pd.Series:
    """Timestamps → UTC. Naive ones are city time (Asia/Shanghai); epoch seconds are accepted."""
    if pd.api.types.is_datetime64_any_dtype(values):  # already typed (a DataFrame from code): fast path
        stamps = pd.to_datetime(values)
        if stamps.dt.tz is None:
            stamps = stamps.dt.tz_localize(CITY_TZ)
        return stamps.dt.tz_convert(UTC)
    if values.map(lambda v: isinstance(v, datetime)).any():
        values = values.map(lambda v: v.isoformat() if isinstance(v, datetime) else v)
    text_values = values.astype(object).where(values.notna(), None)
    numeric = pd.to_numeric(text_values, errors="coerce")
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    is_epoch = numeric.notna() & (numeric > 1e8)
    if is_epoch.any():
        out[is_epoch] = pd.to_datetime(numeric[is_epoch], unit="s", utc=True)
    rest = ~is_epoch & text_values.notna()
    if rest.any():
        out[rest] = _parse_text_times(text_values[rest].astype(str))
    return out


def _parse_text_times(values: pd.Series) -> pd.Series:
    try:  # one pass when the batch is consistent: all with an offset, or all naive
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(CITY_TZ, ambiguous="NaT", nonexistent="NaT")
        return parsed.dt.tz_convert(UTC)
    except (ValueError, TypeError, AttributeError):
        pass
    out = []
    for raw in values:  # mixed offsets, or naive beside aware: one by one
        stamp = pd.to_datetime(raw, errors="coerce")
        if stamp is pd.NaT or pd.isna(stamp):
            out.append(pd.NaT)
        elif stamp.tzinfo is None:
            out.append(stamp.tz_localize(CITY_TZ).tz_convert(UTC))
        else:
            out.append(stamp.tz_convert(UTC))
    return pd.Series(pd.to_datetime(out, utc=True), index=values.index)


def check_times(batch: Batch, column: str = "ts", *, now: datetime | None = None) -> None:
    """Refuse rows without a timestamp, with an unreadable one, or in the future beyond tolerance."""
    if column not in batch.frame:
        batch.frame[column] = None
    batch.reject(blank(batch.frame[column]), "missing timestamp")
    stamps = parse_times(batch.frame[column]).dt.floor("us")  # PostgreSQL keeps microseconds
    batch.frame[column] = stamps
    batch.reject(stamps.isna().to_numpy(), "unreadable timestamp")
    limit = pd.Timestamp(now or datetime.now(UTC)) + FUTURE_TOLERANCE
    batch.reject((batch.frame[column] > limit).to_numpy(),
                 f"timestamp in the future (more than {int(FUTURE_TOLERANCE.total_seconds() // 60)} min ahead)")


def check_ids(batch: Batch, column: str, known: set[str], what: str) -> None:
    """Refuse rows that are not JSON, or whose id is missing or not registered."""
    if "_bad_json" in batch.frame:
        batch.reject(batch.frame["_bad_json"].notna().to_numpy(), "not a JSON object")
    if column not in batch.frame:
        batch.frame[column] = None
    batch.reject(blank(batch.frame[column]), f"missing {what} id")
    ids = batch.frame[column].astype(str).str.strip()
    batch.frame[column] = ids
    batch.reject(~ids.isin(known).to_numpy(), f"unknown {what} id")


# --------------------------------------------------------------------------- partitions and COPY

def seconds(stamps: pd.Series) -> np.ndarray:
    """Aware timestamps → float seconds since the epoch, whatever the column's resolution."""
    return ((stamps - pd.Timestamp(0, tz=UTC)) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)


def raw_connection(session: Session):
    """The psycopg 3 connection under the session, inside the session's own transaction."""
    return session.connection().connection.driver_connection


def read_frame(session: Session, sql: str, params: tuple, columns: list[str]) -> pd.DataFrame:
    """A query straight into a DataFrame through the raw cursor (no ORM row objects on big reads)."""
    with raw_connection(session).cursor() as cur:
        cur.execute(sql, params)
        return pd.DataFrame.from_records(cur.fetchall(), columns=columns)


def month_starts(stamps: pd.Series) -> list[pd.Timestamp]:
    """The distinct UTC month starts a batch touches."""
    if stamps.empty:
        return []
    months = stamps.dt.tz_convert(UTC).dt.tz_localize(None).dt.to_period("M").unique()
    return [p.to_timestamp().tz_localize(UTC) for p in sorted(months)]


def ensure_month_partitions(session: Session, parent: str, stamps: pd.Series) -> list[str]:
    """Create the monthly partitions of ``parent`` a batch needs (named ``parent_pYYYYMM``).

    Checked first with ``to_regclass`` so the common case takes no lock; created under an advisory lock
    so two ingesters racing for a new month do not collide.
    """
    created = []
    for start in month_starts(stamps):
        name = f"{parent}_p{start:%Y%m}"
        if session.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is not None:
            continue
        end = (start + pd.offsets.MonthBegin(1))
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
        session.execute(text(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF "{parent}" '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"))
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


def text_codes(values) -> tuple[np.ndarray, list[str]]:
    """Text → (int4 codes, lookup list): 0 for missing, i for lookup[i] in PostgreSQL's 1-based array
    subscript, which reads NULL for 0."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))  # None and NaN → -1
    return (codes + 1).astype(np.int32), [str(u) for u in uniques]


def micros(stamps: pd.Series) -> np.ndarray:
    """Aware timestamps → int8 microseconds since 2000-01-01 UTC (binary timestamptz)."""
    naive = stamps.dt.tz_convert(UTC).dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return (naive - _PG_EPOCH).astype(np.int64)


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


def copy_upsert(session: Session, table: str, columns: list[Column], selects: dict[str, str],
                lookups: dict[str, list[str]] | None = None) -> int:
    """Binary COPY ``columns`` into a temporary stage, then ``INSERT INTO table (...) SELECT ...
    ON CONFLICT DO NOTHING``: stored rows are skipped, so a resent batch inserts nothing.

    ``selects`` maps each target column to an expression over the stage alias ``s``; ``lookups`` are
    the text arrays those expressions index, e.g. ``(CAST(%(ids)s AS text[]))[s.worker]``.
    Returns the number of rows inserted.
    """
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


def notify(session: Session, channel: str, payload: dict, *, limit: int = 7900) -> None:
    """``pg_notify`` with a JSON payload kept under PostgreSQL's 8,000-byte limit (lists are cut)."""
    body = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
    while len(body.encode()) > limit:
        lists = [k for k, v in payload.items() if isinstance(v, list) and v]
        if not lists:
            body = json.dumps({"truncated": True}, separators=(",", ":"))
            break
        key = lists[0]
        payload = {**payload, key: payload[key][: len(payload[key]) // 2], "truncated": True}
        body = json.dumps(payload, ensure_ascii=False, default=str, separators=(",", ":"))
    session.execute(text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": body})
