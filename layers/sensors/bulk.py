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
    parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=False)
    if getattr(parsed.dt, "tz", None) is not None:  # one offset for all: already aware
        return parsed.dt.tz_convert(UTC)
    out = []
    for raw in values:  # mixed offsets or naive: element-wise, rare outside tests
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


def copy_upsert(session: Session, table: str, frame: pd.DataFrame, columns: list[str]) -> int:
    """COPY ``frame[columns]`` into a temporary twin of ``table``, then insert what is new.

    Returns the number of rows inserted (rows whose key was already stored are skipped).
    """
    if frame.empty:
        return 0
    stage = f"_stage_{table}"
    cols = ", ".join(columns)
    conn = raw_connection(session)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                    f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        cur.execute(f"TRUNCATE {stage}")
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
            for start in range(0, len(frame), COPY_CHUNK):  # bounded memory for million-row batches
                copy.write(_csv_text(frame[columns].iloc[start:start + COPY_CHUNK]))
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT DO NOTHING")
        inserted = cur.rowcount
        cur.execute(f"TRUNCATE {stage}")
    return int(inserted)


def _csv_text(frame: pd.DataFrame) -> str:
    """CSV for COPY; timestamps written by numpy in C (pandas formats aware ones one by one)."""
    out = frame.copy()
    for name in out.columns:
        if isinstance(out[name].dtype, pd.DatetimeTZDtype):
            values = out[name].dt.tz_convert(UTC).dt.tz_localize(None).to_numpy().astype("datetime64[us]")
            stamps = np.char.add(np.datetime_as_string(values, unit="us"), "+00")
            out[name] = np.where(np.isnat(values), "", stamps)
    return out.to_csv(index=False, header=False, na_rep="")


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
