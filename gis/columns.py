"""Which column of a boundary file holds what (字段识别): grid code, name, households, town, village.

County analysts hand over files whose columns are named in Chinese (网格编码, 户数), in pinyin initials
(WGBM, BM, MC, HS) or in English (GRIDCODE). A column is recognised by its name (exact aliases first,
then keywords such as "户" in 网格户数) and by its content: a column whose every value is a valid
15-digit grid code is the code column whatever it is called, and one whose values end in 街道/镇/乡 is
the town. The choice is handed back with how each column was found, so the command line can show
it and ``--field target=COLUMN`` can override any of it. Nothing here reads files or databases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gis import codes as C
from gis.errors import CodeError, InvalidInput

# Exact names (compared case-insensitively, ignoring spaces, "_" and "-"), best first.
GRID_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "网格编码", "网格代码", "网格编号", "网格码", "网格id", "gridcode", "gridid", "gridno",
             "wgbm", "wgdm", "wgbh", "bm", "dm", "编码", "代码", "编号"),
    "village_code": ("village_code", "村社区编码", "村社区代码", "村居编码", "社区编码", "村编码",
                     "villagecode", "csqbm", "cjbm", "cjdm"),
    "name": ("name", "网格名称", "网格名", "gridname", "wgmc", "mc", "名称"),
    "households": ("households", "户数", "总户数", "住户数", "户籍户数", "household", "hs", "zhs", "hh"),
    "population": ("population", "人口", "人口数", "总人口", "常住人口", "人数", "pop", "rk", "rks", "zrk"),
    "kind": ("kind", "网格类型", "网格类别", "wglx"),
    "village_name": ("village_name", "村社区", "村居", "村社区名称", "所属村社区", "社区", "村", "村名",
                     "社区名称", "village", "csq", "cj", "csqmc", "cjmc"),
    "town_name": ("town_name", "镇街", "镇街道", "乡镇", "乡镇街道", "镇街名称", "所属镇街", "街道", "镇",
                  "town", "street", "zj", "xz", "zjmc", "xzjd"),
    "district_name": ("district_name", "区县", "县区", "县市区", "区县名称", "所属区县", "district", "qx"),
}
AREA_ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("code", "区划代码", "区划编码", "行政区划代码", "统计用区划代码", "adcode", "xzqdm", "qhdm",
             "bm", "dm", "编码", "代码"),
    "name": ("name", "区划名称", "行政区划名称", "名称", "xzqmc", "qhmc", "mc"),
    "level": ("level", "级别", "层级", "jb"),
}
# Keywords in a column name, tried when no exact alias matched: every keyword of one tuple must appear.
GRID_KEYWORDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "code": (("网格", "编码"), ("网格", "代码"), ("网格", "编号")),
    "name": (("网格", "名"),),
    "households": (("户数",),),
    "population": (("人口",),),
    "village_name": (("村社区",), ("村居",), ("社区",)),
    "town_name": (("镇街",), ("乡镇",), ("街道",)),
    "district_name": (("区县",), ("县区",)),
}
TOWN_SUFFIXES = ("街道", "镇", "乡", "街道办事处", "办事处")
VILLAGE_SUFFIXES = ("社区", "村", "居委会", "村委会", "居民委员会", "村民委员会", "社区居委会")
SHARE = 0.8  # share of values that must look right for a column to be recognised by content


@dataclass(frozen=True)
class ColumnChoice:
    """The mapping chosen (target → source column), how each was found, and what the file held."""

    mapping: dict[str, str]
    how: dict[str, str]  # target → "given" | "name" | "content"
    columns: tuple[str, ...]
    code_columns: tuple[str, ...] = ()  # columns whose every value is a valid code
    notes: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        """One line per mapped target, e.g. ``code ← 网格代码 (by name; every value a valid code)``."""
        out = []
        for target, source in self.mapping.items():
            extra = "; every value a valid code" if source in self.code_columns and target == "code" else ""
            out.append(f"{target} ← {source} ({_HOW[self.how[target]]}{extra})")
        return out


_HOW = {"given": "--field", "name": "by name", "content": "by content"}


def _fold(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).casefold()


def _text(value: Any) -> str | None:
    """A cell as stripped text: numbers as the text of the number, blanks as None."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _values(frame: pd.DataFrame, column: str) -> list[str]:
    return [t for t in (_text(v) for v in frame[column]) if t is not None]


def _valid(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except (CodeError, ValueError):
        return False
    return True


def is_grid_code_column(frame: pd.DataFrame, column: str) -> bool:
    """Every non-blank value a valid 15-digit grid code (and at least one value)."""
    values = _values(frame, column)
    return bool(values) and all(_valid(C.validate_grid_code, v) for v in values)


def _is_village_code_column(frame: pd.DataFrame, column: str) -> bool:
    values = _values(frame, column)
    return bool(values) and all(_valid(lambda v: C.validate_area_code(v, C.Level.VILLAGE), v) for v in values)


def _is_area_code_column(frame: pd.DataFrame, column: str) -> bool:
    values = _values(frame, column)
    return bool(values) and all(_valid(lambda v: C.validate_area_code(v, C.level_of(v)), v) for v in values)


def _ends_with(suffixes: Sequence[str]) -> Callable[[pd.DataFrame, str], bool]:
    def check(frame: pd.DataFrame, column: str) -> bool:
        values = _values(frame, column)
        if not values or any(v.isdigit() for v in values):
            return False
        return bool(np.mean([v.endswith(tuple(suffixes)) for v in values]) >= SHARE)

    return check


def _grid_names(frame: pd.DataFrame, column: str) -> bool:
    values = _values(frame, column)
    if not values or any(v.isdigit() for v in values):
        return False
    return bool(np.mean(["网格" in v for v in values]) >= SHARE) and len(set(values)) >= SHARE * len(values)


GRID_CONTENT: dict[str, Callable[[pd.DataFrame, str], bool]] = {
    "code": is_grid_code_column,
    "village_code": _is_village_code_column,
    "name": _grid_names,
    "town_name": _ends_with(TOWN_SUFFIXES),
    "village_name": _ends_with(VILLAGE_SUFFIXES),
}
AREA_CONTENT: dict[str, Callable[[pd.DataFrame, str], bool]] = {"code": _is_area_code_column}


def detect_grid_columns(frame: pd.DataFrame, given: dict[str, str] | None = None) -> ColumnChoice:
    """Choose the grid columns of ``frame`` (attributes only); ``given`` (target → column) wins."""
    return _detect(frame, given or {}, GRID_ALIASES, GRID_KEYWORDS, GRID_CONTENT, is_grid_code_column)


def detect_area_columns(frame: pd.DataFrame, given: dict[str, str] | None = None) -> ColumnChoice:
    """Choose the area columns (12-digit code, name, optional level) of ``frame``."""
    return _detect(frame, given or {}, AREA_ALIASES, {}, AREA_CONTENT, _is_area_code_column)


def _detect(frame: pd.DataFrame, given: dict[str, str], aliases: dict[str, tuple[str, ...]],
            keywords: dict[str, tuple[tuple[str, ...], ...]],
            content: dict[str, Callable[[pd.DataFrame, str], bool]],
            code_check: Callable[[pd.DataFrame, str], bool]) -> ColumnChoice:
    columns = tuple(str(c) for c in frame.columns)
    mapping: dict[str, str] = {}
    how: dict[str, str] = {}
    for target, source in given.items():
        found = _given_column(columns, source)
        if found is None:
            raise InvalidInput(f"--field {target}={source}: no column {source!r}; the file's columns are: "
                               f"{', '.join(columns) or '(none)'}")
        mapping[target], how[target] = found, "given"
    code_columns = tuple(c for c in columns if code_check(frame, c))
    for target in aliases:
        if target in mapping:
            continue
        free = [c for c in columns if c not in mapping.values()]
        found, way = _choose(frame, free, target, aliases[target], keywords.get(target, ()),
                             content.get(target))
        if found is not None:
            mapping[target], how[target] = found, way
    return ColumnChoice(mapping, how, columns, code_columns)


def _given_column(columns: Sequence[str], wanted: str) -> str | None:
    if wanted in columns:
        return wanted
    folded = [c for c in columns if c.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def _choose(frame: pd.DataFrame, free: list[str], target: str, aliases: Sequence[str],
            keywords: Sequence[tuple[str, ...]],
            content: Callable[[pd.DataFrame, str], bool] | None) -> tuple[str | None, str]:
    """By name and content, then by content alone, then by name alone (content checked later)."""
    by_name = _by_name(free, aliases, keywords)
    if content is not None:
        for column in by_name:
            if content(frame, column):
                return column, "name"
        fitting = [c for c in free if content(frame, c)]
        if fitting:
            return fitting[0], "content"
    return (by_name[0], "name") if by_name else (None, "")


def _by_name(free: Sequence[str], aliases: Sequence[str], keywords: Sequence[tuple[str, ...]]) -> list[str]:
    folded = {c: _fold(c) for c in free}
    exact = [c for alias in aliases for c in free if folded[c] == _fold(alias)]
    fuzzy = [c for words in keywords for c in free if all(w in folded[c] for w in words)]
    return list(dict.fromkeys(exact + fuzzy))
