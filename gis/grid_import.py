"""A county's grid file into the registry in one step (网格导入), keeping the codes it carries.

What the county analyst's file holds decides what happens, and every decision is said out loud:
- its columns are recognised by name and content (:mod:`gis.columns`) and the mapping is shown;
- a column of valid 15-digit codes is always used: codes are invented only when asked
  (``assign_codes``) or when the file names each grid's village but carries no grid codes (a planner's
  redraw), because an issued code is never reissued and old records name it;
- when none of its villages, towns or its district is registered, they are derived from the codes and
  the 镇街/村社区 columns (:mod:`gis.derive`) and imported in the same transaction;
- problems come back with the file's row numbers and positions in the file's own coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from sqlalchemy.orm import Session

from gis import codes as C
from gis.cleaning import Fix
from gis.coords import SPECIAL, from_wgs84
from gis.derive import Derived, derive_areas
from gis.errors import CodeError, InvalidInput, TopologyError
from gis.read_result import ReadResult
from gis.registry import EditResult, import_areas, import_grids, load_areas
from gis.topology import Report

GRID_KINDS = {"基础网格": "basic", "基础": "basic", "basic": "basic", "专属网格": "dedicated",
              "专属": "dedicated", "专用网格": "dedicated", "dedicated": "dedicated"}


@dataclass
class GridImport:
    """What one file import did: the grid edit, the areas derived (if any) and what was said."""

    edit: EditResult
    derived: Derived | None = None
    notes: list[str] = field(default_factory=list)


def import_grid_file(session: Session, read: ReadResult, *, who: str, why: str, replace: bool = False,
                     dry_run: bool = False, assign_codes: bool = False, derive: bool | None = None,
                     district_name: str | None = None) -> GridImport:
    """Import the grids ``read`` from a file (``read_features(..., detect="grids")``) in one transaction.

    ``derive`` True derives every area the codes name that is not registered, None (default) does so
    when none of them is, False never. A TopologyError's report carries rows and file positions.
    """
    notes: list[str] = []
    frame = file_grids(read, assign_codes=assign_codes, notes=notes)
    derived = None
    try:
        derived = _derive(session, frame, read, derive=derive, district_name=district_name, who=who,
                          why=why, notes=notes)
        edit = import_grids(session, frame, who=who, why=why, replace=replace, dry_run=dry_run)
    except TopologyError as exc:
        if isinstance(exc.detail, Report):
            locate_problems(exc.detail, frame, read.source_crs)
        raise
    if edit.report is not None:
        locate_problems(edit.report, frame, read.source_crs)
    return GridImport(edit, derived, notes)


# --------------------------------------------------------------------------- the file's columns

def _source(read: ReadResult, target: str) -> str:
    return read.columns.mapping.get(target, target) if read.columns else target


def _columns(read: ReadResult) -> str:
    names = read.columns.columns if read.columns else [c for c in read.frame.columns if c != "geometry"]
    return ", ".join(map(str, names)) or "(none)"


def _rows(index: np.ndarray, values: pd.Series | None = None, limit: int = 8) -> str:
    shown = [f"{int(i) + 1}" + (f" ({values.iloc[int(i)]!r})" if values is not None else "") for i in index[:limit]]
    return ", ".join(shown) + (f" … and {len(index) - limit} more" if len(index) > limit else "")


def file_grids(read: ReadResult, *, assign_codes: bool, notes: list[str]) -> gpd.GeoDataFrame:
    """The file's grids with codes checked (never invented unless asked), numbers and kinds clean."""
    frame = read.frame.reset_index(drop=True).copy()
    name = read.name or "the file"
    if assign_codes:
        if "code" in frame:
            notes.append(f"the codes in column {_source(read, 'code')!r} are not used: new codes will be "
                         "issued in reading order (--assign-codes)")
            frame = frame.drop(columns="code")
    elif "code" not in frame and "village_code" in frame:  # a redraw of named villages: new grids
        notes.append(f"no grid-code column; new codes will be issued in reading order within each "
                     f"village/community of column {_source(read, 'village_code')!r}")
    elif "code" not in frame:
        raise CodeError(
            f"{name}: no column of 15-digit grid codes found; the file's columns are: {_columns(read)}. "
            "Name the code column with --field code=COLUMN, or pass --assign-codes to issue new codes "
            "(the grids are then placed in registered villages/communities: onemap areas import)")
    else:
        _check_codes(frame, read, name)
    for target in ("households", "population"):
        if target in frame:
            frame[target] = _whole_numbers(frame[target], _source(read, target), target, name)
    if "kind" in frame:
        frame["kind"] = _kinds(frame["kind"], _source(read, "kind"), name)
    if "name" in frame:
        frame["name"] = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() or None
                         for v in frame["name"]]
    return frame


def _check_codes(frame: gpd.GeoDataFrame, read: ReadResult, name: str) -> None:
    column = _source(read, "code")
    blank = np.flatnonzero(frame["code"].isna().to_numpy())
    if len(blank):
        raise CodeError(f"{name}: rows {_rows(blank)} have no grid code in column {column!r}: fill them in, "
                        "or pass --assign-codes to issue new codes for every grid (or choose another column "
                        f"with --field code=COLUMN; the file's columns are: {_columns(read)})")
    bad = []
    for i, code in enumerate(frame["code"]):
        try:
            C.validate_grid_code(code)
        except CodeError:
            bad.append(i)
    if bad:
        raise CodeError(f"{name}: column {column!r} is not a column of 15-digit grid codes: rows "
                        f"{_rows(np.array(bad), frame['code'])}; choose the code column with --field "
                        f"code=COLUMN (the file's columns are: {_columns(read)}) or pass --assign-codes")


def _whole_numbers(values: pd.Series, column: str, target: str, name: str) -> pd.Series:
    numbers = pd.to_numeric(values.map(lambda v: v.strip() if isinstance(v, str) else v), errors="coerce")
    given = values.map(lambda v: not (v is None or (isinstance(v, float) and np.isnan(v))
                                      or (isinstance(v, str) and not v.strip())))
    wrong = given & (numbers.isna() | (numbers < 0) | (numbers.fillna(0) % 1 != 0))
    if wrong.any():
        raise InvalidInput(f"{name}: column {column!r} ({target}) must hold whole numbers ≥ 0; rows "
                           f"{_rows(np.flatnonzero(wrong.to_numpy()), values)} do not (--field {target}=COLUMN "
                           "picks another column)")
    return numbers.astype("float64")


def _kinds(values: pd.Series, column: str, name: str) -> pd.Series:
    out = [None if not isinstance(v, str) or not v.strip() else GRID_KINDS.get(v.strip().lower()) for v in values]
    wrong = np.flatnonzero([isinstance(v, str) and v.strip() and o is None for v, o in zip(values, out, strict=True)])
    if len(wrong):
        raise InvalidInput(f"{name}: column {column!r} (kind) must say 基础网格 or 专属网格; rows "
                           f"{_rows(wrong, values)} do not")
    return pd.Series(out, index=values.index, dtype=object)


# --------------------------------------------------------------------------- areas from codes

def _derive(session: Session, frame: gpd.GeoDataFrame, read: ReadResult, *, derive: bool | None,
            district_name: str | None, who: str, why: str, notes: list[str]) -> Derived | None:
    if "code" not in frame:
        if derive:
            raise InvalidInput("--derive-areas builds areas from the grids' 15-digit codes, and this import has "
                               "none (--assign-codes, or no code column)")
        return None
    codes = frame["code"].astype(str)
    wanted = set(codes.str[:12]) | set(codes.str[:9] + "000") | set(codes.str[:6] + "000000")
    registered = set(load_areas(session, codes=sorted(wanted))["code"])
    missing = wanted - registered
    run = bool(missing) if derive else (derive is None and missing == wanted)
    if not run:
        if derive and not missing:
            notes.append("every area the codes name is registered already: nothing derived")
        return None
    derived = derive_areas(frame, district_name=district_name)
    new = derived.areas[derived.areas["code"].isin(missing)]
    notes.extend(derived.notes)
    why_areas = f"{why} (areas derived from the grid codes of {read.name or 'the file'})"
    import_areas(session, new, who=who, why=why_areas)
    return derived


# --------------------------------------------------------------------------- problems, located

def _to_file_crs(lon: np.ndarray, lat: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    if crs.startswith("EPSG:") or crs in SPECIAL:
        return from_wgs84(lon, lat, crs)
    x, y = Transformer.from_crs("EPSG:4326", CRS.from_user_input(crs), always_xy=True).transform(lon, lat)
    return np.asarray(x), np.asarray(y)


def _short(crs: str) -> str:
    return crs if len(crs) < 40 else "the file's CRS"


def locate_problems(report: Report, frame: gpd.GeoDataFrame, source_crs: str) -> None:
    """Give each problem the file's row numbers (grids it names, or the grids of an area it names) and
    a position in the file's own coordinates."""
    codes = frame["code"].astype(str).to_numpy() if "code" in frame else np.array([], dtype=str)
    for problem in report.problems:
        rows: list[int] = []
        for code in problem.codes:
            prefix = _prefix(code)
            if prefix:
                rows += [int(i) + 1 for i in np.flatnonzero(np.char.startswith(codes.astype(str), prefix))]
        problem.rows = sorted(set(rows))
        if problem.geometry is not None and not problem.geometry.is_empty:
            spot = shapely.point_on_surface(problem.geometry)
            x, y = _to_file_crs(np.array([spot.x]), np.array([spot.y]), source_crs)
            problem.at = (float(x[0]), float(y[0]))
            problem.at_crs = _short(source_crs)


def _prefix(code: str) -> str:
    """The code prefix its grids share: a grid's whole code, an area's meaningful digits."""
    if len(code) == 15:
        return code
    if len(code) != 12:
        return ""
    return code[:6] if code[6:] == "000000" else code[:9] if code[9:] == "000" else code


def problems_geojson(report: Report | None, fixes: list[Fix] | tuple[Fix, ...], source_crs: str,
                     name: str) -> dict[str, Any]:
    """Every problem and every cleaned artefact as one FeatureCollection (lon/lat geometry; the rows
    and the position in the file's coordinates in the properties)."""
    features = report.to_geojson()["features"] if report is not None else []
    for fix in fixes:
        geometry = shapely.geometry.mapping(fix.geometry) if fix.geometry is not None else None
        features.append({"type": "Feature", "geometry": geometry, "properties": {
            "kind": "cleaned" if fix.what != "reprojection" else "repaired", "severity": "warning",
            "codes": [], "rows": [fix.row], "area_m2": round(fix.area_m2, 3), "x": fix.x, "y": fix.y,
            "crs": _short(source_crs), "message": fix.text(name, source_crs)}})
    return {"type": "FeatureCollection", "name": f"problems of {name}", "features": features}
