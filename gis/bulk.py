"""Landing checked batch rows in PostgreSQL: monthly partitions on demand, idempotent upserts, notify.

Shared by sensor readings, worker positions and the archive, so it lives in gis/ (it knows no layer).
Rows go in with ``INSERT ... ON CONFLICT DO NOTHING``, so a resent batch (or an overlapping one) is a
no-op for rows already stored, ingestion is idempotent on (id, ts), and rows may arrive in any order.
A small batch is one statement over ``unnest`` of arrays; a big one is first copied into a temporary
table with binary COPY, the fastest way into PostgreSQL, which cannot skip duplicates by itself.
Reading and checking a batch before this is :mod:`gis.batch` (values: :mod:`gis.batch_values`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from gis.batch_values import utc_micros

COPY_CHUNK = 200_000
UNNEST_MAX_ROWS = 200  # up to this many rows one INSERT over unnest(arrays), beyond it COPY (measured)


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
