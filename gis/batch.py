"""An ingest batch as it arrives: read it, and refuse bad rows with their row numbers.

:func:`read_rows` turns CSV, JSON lines, a list of dicts or a DataFrame into :class:`Rows` (numpy
columns plus the 1-based input row of each); :func:`check_times` and :func:`check_ids` refuse the rows
that cannot be stored, each with a reason. The registries read their files with :func:`read_table` into
a :class:`Batch` (a DataFrame of strings). Storing the rows that pass is :mod:`gis.bulk`'s business.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from gis.batch_values import missing, parse_times, utc_instant, utc_micros
from gis.errors import InvalidInput
from gis.settings import CITY_TZ

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


