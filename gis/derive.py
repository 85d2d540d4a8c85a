"""Areas derived from a grid file (由网格生成村社区、镇街、区县): for a county that has only its grids.

A grid's 15-digit code holds its village/community (first 12 digits), town/street (first 9) and
county (first 6); the file's 镇街 and 村社区 columns name them. Each village is the union of its grids,
each town the union of its villages, the district the union of its towns, dissolved in the local
Gauss-Krüger zone (metres) so that the micro-holes a dissolve leaves where grids do not quite meet are
measured and removed there (reported) before the outlines go back to lon/lat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.cleaning import Fix, clean_artefacts, repair_reprojected
from gis.errors import InvalidInput
from gis.metric import from_metric, local_epsg, to_metric

LEVELS = (("district", 6, "000000"), ("town", 9, "000"), ("village", 12, ""))


@dataclass
class Derived:
    """The derived areas (code, name, level, geometry in EPSG:4326) and what was made up or cleaned."""

    areas: gpd.GeoDataFrame
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)


def derive_areas(grids: gpd.GeoDataFrame, *, district_name: str | None = None) -> Derived:
    """Districts, towns and villages from grids with valid ``code`` and optional ``town_name``,
    ``village_name`` and ``district_name`` columns; refuses a code named two different ways."""
    notes: list[str] = []
    codes = grids["code"].astype(str)
    epsg = local_epsg(grids.geometry)
    metric = to_metric(grids.geometry, epsg)
    rows, fixes = [], []
    pieces = metric
    keys = {lv: (codes.str[:n] + pad).to_numpy() for lv, n, pad in LEVELS}
    for level, _, _ in reversed(LEVELS):  # villages from grids, towns from villages, ...
        key = keys[level]
        areas_here = sorted(set(key))
        unions = np.array([shapely.union_all(pieces[key == k]) for k in areas_here], dtype=object)
        unions, cleaned = clean_artefacts(unions, metric=True, to_lonlat=lambda g: from_metric(g, epsg))
        for fix in cleaned:
            notes.append(f"{level} {areas_here[fix.row - 1]}: a dissolve {fix.what} of {fix.area_m2:.3f} m² removed "
                         f"at x={fix.x:.2f} y={fix.y:.2f} (EPSG:{epsg})")
        fixes += cleaned
        lonlat, repaired = repair_reprojected(unions, from_metric(unions, epsg))
        fixes += repaired
        names = _names(grids, key, areas_here, level, district_name, notes)
        rows += [(c, names[c], level, g) for c, g in zip(areas_here, lonlat, strict=True)]
        # the next level up dissolves these (cleaned) outlines, mapped to their parent's code
        pieces = unions[np.searchsorted(areas_here, key)]
    areas = gpd.GeoDataFrame(pd.DataFrame(rows, columns=["code", "name", "level", "geometry"]),
                             geometry="geometry", crs=4326)
    counts = {lv: int((areas["level"] == lv).sum()) for lv, _, _ in LEVELS}
    return Derived(areas, counts, notes, fixes)


def _names(grids: gpd.GeoDataFrame, key: np.ndarray, codes: list[str], level: str,
           district_name: str | None, notes: list[str]) -> dict[str, str]:
    """Each area's name from its column; one area with two names is refused, a missing one made up."""
    column = f"{level}_name"
    given = district_name if level == "district" else None
    values = grids[column] if column in grids else pd.Series([None] * len(grids), index=grids.index)
    out: dict[str, str] = {}
    unnamed = []
    for code in codes:
        rows = np.flatnonzero(key == code)
        seen = [str(v).strip() for v in values.iloc[rows] if isinstance(v, str) and v.strip()]
        distinct = sorted(set(seen))
        if len(distinct) > 1:
            raise InvalidInput(f"{level} {code} is named {' and '.join(distinct)} by different grids (rows "
                               f"{', '.join(str(r + 1) for r in rows[:10])}): one code, one name")
        if given:
            out[code] = given
        elif distinct:
            out[code] = distinct[0]
        else:
            out[code] = _placeholder(level, code)
            unnamed.append(code)
    if unnamed:
        hint = " (pass --district-name)" if level == "district" else f" (no {column} column: --field {column}=COLUMN)"
        notes.append(f"{len(unnamed)} {level}(s) without a name in the file, named e.g. "
                     f"{out[unnamed[0]]!r}{hint}")
    return out


def _placeholder(level: str, code: str) -> str:
    return {"district": f"区县{code[:6]}", "town": f"镇街{code[:9]}", "village": f"村社区{code}"}[level]
