"""Attribute values as files want them: local times, plain scalars, text.

Times are shown in Asia/Shanghai (naive input is taken as already local), as ISO 8601 with the offset;
numpy scalars are unwrapped, NaN/NaT become None, lists and dicts JSON text. Shared by every format.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from gis.settings import CITY_TZ


def local_times(values: pd.Series) -> pd.Series:
    """Datetime values as Asia/Shanghai wall-clock times (naive input is taken as already local)."""
    series = pd.to_datetime(values, utc=False)
    if getattr(series.dt, "tz", None) is None:
        return series.dt.tz_localize(CITY_TZ)
    return series.dt.tz_convert(CITY_TZ)


def is_datetime(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if values.dtype != object:
        return False
    sample = values.dropna()
    return bool(len(sample)) and all(isinstance(v, datetime) for v in sample.iloc[:50])


def is_date(values: pd.Series) -> bool:
    sample = values.dropna()
    return (values.dtype == object and bool(len(sample))
            and all(isinstance(v, date) and not isinstance(v, datetime) for v in sample.iloc[:50]))


def iso_local(local: pd.Series) -> np.ndarray:
    """Local times as ISO 8601 text with the offset (2026-11-01T08:00:00+08:00), vectorised.

    numpy formats the wall-clock time in C; the offset is appended as text when it is the same for
    every row (always +08:00 in Shanghai since 1991), else pandas' slower strftime is used.
    """
    wall = local.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    utc = local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    offsets = np.unique((wall - utc)[~np.isnat(wall)].astype("timedelta64[m]").astype(int))
    if len(offsets) > 1:
        text = local.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
        return (text.str[:-2] + ":" + text.str[-2:]).to_numpy(dtype=object, na_value=None)
    minutes = int(offsets[0]) if len(offsets) else 0
    sign = "+" if minutes >= 0 else "-"
    suffix = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = np.char.add(np.datetime_as_string(wall, unit="s").astype(object).astype(str), suffix)
    out = text.astype(object)
    out[np.isnat(wall)] = None
    return out


def texts(values: pd.Series) -> np.ndarray:
    """A column as an object array of str or None; only non-string objects go through :func:`plain`."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values.to_numpy(dtype=object, na_value=None)
    return np.array([cell_text(v) for v in values], dtype=object)


def plain(value: Any) -> Any:
    """A JSON/CSV-ready scalar: numpy scalars unwrapped, NaN/NaT → None, times as local ISO."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize(CITY_TZ) if stamp.tzinfo is None else stamp.tz_convert(CITY_TZ)
        return stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (list, tuple, dict)):
        return json.loads(json.dumps(value, ensure_ascii=False, default=str))
    return value


def cell_text(value: Any) -> str | None:
    value = plain(value)
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
