"""Area and grid codes, validated wherever they enter.

Areas carry the 12-digit statistical division code (统计用区划代码): 6 county digits, 3 town digits
(001-099 street 街道, 100-199 town 镇, 200-399 township 乡) and 3 village digits (001-199 community
居委会, 200-399 village 村委会). A grid carries the 15-digit unified code of GB/T 30428.1: its
village/community's 12 digits plus a 3-digit sequence (001-899 basic grids, 900-999 dedicated grids).
Codes are strings, never ints: leading zeros matter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike

from gis.errors import CodeError


class Level(StrEnum):
    DISTRICT = "district"  # 区/县
    TOWN = "town"  # 镇/街道
    VILLAGE = "village"  # 村/社区


class GridKind(StrEnum):
    BASIC = "basic"  # 基础网格
    DEDICATED = "dedicated"  # 专属网格


def _digits(code: object, length: int, what: str) -> str:
    if not isinstance(code, str):
        raise CodeError(f"{what} code must be a string of {length} digits, got {code!r}")
    if len(code) != length or not code.isdigit():
        raise CodeError(f"{what} code {code!r} must be exactly {length} digits")
    return code


def level_of(code: str) -> Level:
    """The level a 12-digit area code denotes."""
    code = _digits(code, 12, "area")
    if code[6:] == "000000":
        return Level.DISTRICT
    if code[9:] == "000":
        return Level.TOWN
    return Level.VILLAGE


def town_kind(code: str) -> str:
    part = int(code[6:9])
    if 1 <= part <= 99:
        return "street"
    if 100 <= part <= 199:
        return "town"
    if 200 <= part <= 399:
        return "township"
    raise CodeError(f"town part {code[6:9]} of {code} is outside 001-399")


def village_kind(code: str) -> str:
    part = int(code[9:12])
    if 1 <= part <= 199:
        return "community"
    if 200 <= part <= 399:
        return "village"
    raise CodeError(f"village part {code[9:12]} of {code} is outside 001-399")


def parent_code(code: str) -> str | None:
    """The code one level up: grid → village, village → town, town → district, district → None."""
    if len(code) == 15:
        return code[:12]
    level = level_of(code)
    if level is Level.VILLAGE:
        return code[:9] + "000"
    if level is Level.TOWN:
        return code[:6] + "000000"
    return None


def validate_area_code(code: object, level: Level | str, parent: str | None = None) -> str:
    """Check an area code against its level and (if given) its parent's code; return it."""
    text = _digits(code, 12, "area")
    level = Level(level)
    if level_of(text) is not level:
        raise CodeError(f"area code {text} is not a {level.value} code")
    if level is Level.DISTRICT and text[:6] == "000000":
        raise CodeError(f"district code {text} has no county digits")
    if level is Level.TOWN:
        town_kind(text)
    if level is Level.VILLAGE:
        town_kind(text)
        village_kind(text)
    if parent is not None and parent_code(text) != parent:
        raise CodeError(f"{level.value} code {text} does not start with its parent's code {parent}")
    return text


def grid_kind_of(code: str) -> GridKind:
    return GridKind.DEDICATED if int(code[12:]) >= 900 else GridKind.BASIC


def validate_grid_code(code: object, *, village_code: str | None = None, kind: GridKind | str | None = None) -> str:
    """Check a 15-digit grid code: digits, a valid village prefix, the sequence range for its kind."""
    text = _digits(code, 15, "grid")
    validate_area_code(text[:12], Level.VILLAGE)
    if text[12:] == "000":
        raise CodeError(f"grid code {text} has sequence 000; basic grids use 001-899, dedicated 900-999")
    if village_code is not None and text[:12] != village_code:
        raise CodeError(f"grid code {text} does not start with its village/community code {village_code}")
    if kind is not None and grid_kind_of(text) is not GridKind(kind):
        expected = "900-999" if GridKind(kind) is GridKind.DEDICATED else "001-899"
        raise CodeError(f"grid code {text} is a {grid_kind_of(text).value} code but the grid is {GridKind(kind).value} (use {expected})")
    return text


def find_duplicates(codes: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dups: list[str] = []
    for code in codes:
        if code in seen and code not in dups:
            dups.append(code)
        seen.add(code)
    return dups


def reading_order(x: ArrayLike, y: ArrayLike, row_height: float | None = None) -> np.ndarray:
    """Indices that order points west→east within rows taken north→south, as GB/T 30428.1 numbers.

    Rows are bands of ``row_height`` (default: the median spacing between successive latitudes,
    at least a tenth of the spread), so grids at nearly the same latitude share a row.
    """
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if len(xs) == 0:
        return np.array([], dtype=int)
    if row_height is None:
        spread = float(ys.max() - ys.min())
        row_height = max(spread / max(np.sqrt(len(ys)), 1.0), 1e-9)
    by_north = np.argsort(-ys, kind="stable")
    rows = np.zeros(len(ys), dtype=int)
    row, top = 0, ys[by_north[0]]
    for i in by_north:
        if top - ys[i] > row_height:
            row, top = row + 1, ys[i]
        rows[i] = row
    return np.lexsort((xs, rows))


def assign_grid_codes(
    village_code: str,
    x: Sequence[float],
    y: Sequence[float],
    kinds: Sequence[GridKind | str],
    used: Iterable[str] = (),
) -> list[str]:
    """Codes for new grids of one village, in reading order, skipping every code ever ``used``.

    A retired code is never handed out again: old tickets still name it.
    """
    validate_area_code(village_code, Level.VILLAGE)
    taken = {int(c[12:]) for c in used if c.startswith(village_code)}
    order = reading_order(x, y)
    out: list[str] = [""] * len(order)
    next_seq = {GridKind.BASIC: 1, GridKind.DEDICATED: 900}
    limit = {GridKind.BASIC: 899, GridKind.DEDICATED: 999}
    for i in order:
        kind = GridKind(kinds[i])
        seq = next_seq[kind]
        while seq in taken:
            seq += 1
        if seq > limit[kind]:
            raise CodeError(f"village {village_code} has no free {kind.value} grid code left")
        taken.add(seq)
        next_seq[kind] = seq + 1
        out[i] = f"{village_code}{seq:03d}"
    return out
