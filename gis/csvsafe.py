"""CSV cells safe to open in a spreadsheet (formula injection, CSV injection).

Excel, WPS and LibreOffice run a cell that begins with ``=``, ``+``, ``-`` or ``@`` (and, in some
versions, a tab or carriage return) as a formula: a ticket description ``=HYPERLINK(...)`` or
``=cmd|' /C calc'!A0`` typed by a citizen would run on the analyst's desktop. Every CSV OneMap
writes (API downloads, CLI outputs) passes its text cells through here: such a cell gets a leading
apostrophe, which spreadsheets show as text and hide. Numbers are left alone, so negative values in
numeric columns stay numbers, and a text cell that is a plain number (``-3.5``) cannot be a formula
and is left alone too.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """One cell as written: text that a spreadsheet would run is prefixed with ``'``."""
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def row(values: Any) -> list[Any]:
    """A row for ``csv.writer``: every cell through :func:`cell`."""
    return [cell(v) for v in values]


def frame(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with its text columns (object or string dtype) made safe; numeric columns untouched.
    Returns the same frame when nothing needs escaping (no copy)."""
    out = data
    for name in data.columns:
        column = data[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            continue
        escaped = column.map(cell, na_action="ignore")
        if not escaped.equals(column):
            if out is data:
                out = data.copy()
            out[name] = escaped
    return out
