"""Cell values of an ingest batch as numpy arrays: missing, numbers, and timestamps in UTC.

Sensor readings and worker positions arrive as text (CSV, JSON lines) or as Python objects. These
functions turn a column into what the checks need: a mask of missing cells, float64 with NaN, and
``datetime64[us]`` in UTC, where a naive timestamp is city time (Asia/Shanghai) and a number above 1e8
is epoch seconds. Small batches parse ISO 8601 one value at a time (microseconds each); big ones go
through pandas as one array; both give the same instants (tests compare them).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from gis.settings import CITY_TZ


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


def seconds(stamps: pd.Series | np.ndarray) -> np.ndarray:
    """Timestamps → float seconds since the epoch (aware pandas ones, or ``datetime64`` in UTC)."""
    if isinstance(stamps, np.ndarray):
        return stamps.astype("datetime64[us]").astype(np.int64) / 1e6
    return ((stamps - pd.Timestamp(0, tz=UTC)) / pd.Timedelta(seconds=1)).to_numpy(dtype=float)

