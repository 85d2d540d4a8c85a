"""What every boundary format goes through after the driver read it: checks, cleaning, renaming.

:func:`conform` checks the geometries (polygons only, none missing, all in China once reprojected),
cleans sub-m² artefacts in the file's own coordinates (:mod:`gis.cleaning`), renames the caller's
columns (``fields``, or those :mod:`gis.columns` detects) and turns code columns into text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gis.cleaning import clean_artefacts, repair_reprojected
from gis.columns import detect_area_columns, detect_grid_columns
from gis.coords import WGS84
from gis.errors import InvalidGeometry, InvalidInput
from gis.read_crs import crs_label, is_metric, reproject
from gis.read_result import Notes

CHINA_LON = (73.0, 136.0)
CHINA_LAT = (3.0, 54.0)
_POLYGON, _MULTIPOLYGON = 3, 6
_KIND = {0: "point", 4: "point", 1: "line", 2: "line", 5: "line", 7: "geometry-collection"}


def conform(
    frame: gpd.GeoDataFrame,
    source_crs: str | CRS,
    fields: dict[str, str] | None,
    name: str,
    notes: Notes,
    detect: str | None = None,
) -> gpd.GeoDataFrame:
    """The checks and conversions every format shares, in the order that gives the clearest message.

    Validity is judged and artefacts are cleaned in the file's own coordinates, before conversion
    (see :mod:`gis.cleaning`); lon/lat only has to keep what was valid valid.
    """
    if len(frame) == 0:
        raise InvalidInput(f"{name} holds no features")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    check_geometries(geoms, name)
    if shapely.has_z(geoms).any():
        notes.add(f"{name}: 3-D coordinates found; heights dropped")
    source = shapely.force_2d(geoms)
    lonlat = reproject(source, source_crs)
    check_in_china(lonlat, name, source_crs)
    source, fixes = clean_artefacts(source, metric=is_metric(source_crs),
                                    to_lonlat=lambda g: reproject(g, source_crs))
    lonlat = reproject(source, source_crs) if fixes else lonlat
    lonlat, repaired = repair_reprojected(source, lonlat)
    for fix in (*fixes, *repaired):
        notes.fixes.append(fix)
        notes.add(fix.text(name, crs_label(source_crs)))
    geoms = lonlat
    attributes = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    if detect is not None:
        choose = detect_grid_columns if detect == "grids" else detect_area_columns
        notes.columns = choose(attributes, fields)
        fields = notes.columns.mapping
    attributes = apply_fields(attributes, fields, name, notes)
    attributes = codes_as_text(attributes, notes)
    return gpd.GeoDataFrame(attributes, geometry=to_multipolygons(geoms), crs=WGS84)


def check_geometries(geoms: np.ndarray, name: str) -> None:
    """Refuse null/empty geometries (with row numbers) and anything that is not a polygon."""
    missing = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if missing.size:
        raise InvalidGeometry(f"{name}: features without geometry at rows {_rows(missing)}")
    ids = shapely.get_type_id(geoms)
    wrong = np.flatnonzero((ids != _POLYGON) & (ids != _MULTIPOLYGON))
    if wrong.size == 0:
        return
    kinds = sorted({_KIND.get(int(i), "non-polygon") for i in ids[wrong]})
    counts = Counter(g.geom_type for g in geoms[wrong])
    types = ", ".join(f"{kind} ×{n}" for kind, n in sorted(counts.items()))
    if wrong.size == len(geoms):
        raise InvalidGeometry(
            f"{name}: {'/'.join(kinds)} layer given as grids: expected polygons (found {types})"
        )
    raise InvalidGeometry(f"{name}: expected polygons, but rows {_rows(wrong)} are {types}")


def check_in_china(geoms: np.ndarray, name: str, source: str | CRS) -> None:
    """After reprojection every vertex must be in China; if not, the CRS was almost surely wrong."""
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    lon, lat = coords[:, 0], coords[:, 1]
    inside = (
        (lon >= CHINA_LON[0])
        & (lon <= CHINA_LON[1])
        & (lat >= CHINA_LAT[0])
        & (lat <= CHINA_LAT[1])
    )
    if inside.all():
        return
    rows = np.unique(index[~inside])
    with np.errstate(invalid="ignore"):
        extent = f"lon {np.nanmin(lon):.4f}…{np.nanmax(lon):.4f}, lat {np.nanmin(lat):.4f}…{np.nanmax(lat):.4f}"
    raise InvalidGeometry(
        f"{name}: read as {crs_label(source)}, rows {_rows(rows)} fall outside China ({extent}); "
        "the CRS is probably wrong: a Gauss-Krüger file without its .prj, or a wrong EPSG code, looks like this"
    )


def to_multipolygons(geoms: np.ndarray) -> np.ndarray:
    """Storage holds MultiPolygons only: wrap each Polygon as a one-part MultiPolygon."""
    out = np.array(geoms, dtype=object)
    polygons = shapely.get_type_id(out) == _POLYGON
    if polygons.any():
        out[polygons] = shapely.multipolygons(out[polygons][:, np.newaxis])
    return out


def _rows(index: np.ndarray, limit: int = 10) -> str:
    """1-based row numbers, the way a person counts features in a desktop GIS table."""
    shown = ", ".join(str(int(i) + 1) for i in index[:limit])
    return shown + (f" … and {len(index) - limit} more" if len(index) > limit else "")


# --------------------------------------------------------------------------------------- attributes


def apply_fields(
    frame: pd.DataFrame, fields: dict[str, str] | None, name: str, notes: Notes
) -> pd.DataFrame:
    """Rename source columns to target names (target → source), targets first; refuse missing ones."""
    if not fields:
        return frame
    available = [str(c) for c in frame.columns]
    sources = {target: _find_column(available, source, notes) for target, source in fields.items()}
    missing = [fields[t] for t, s in sources.items() if s is None]
    if missing:
        raise InvalidInput(
            f"{name}: column(s) {', '.join(map(repr, missing))} not found; available: {', '.join(available) or '(none)'}"
        )
    used = set(sources.values())
    clashes = [c for c in available if c in sources and c not in used]
    for column in clashes:
        notes.add(
            f"{name}: column {column!r} dropped, its name is taken by the mapped field {sources[column]!r}"
        )
    rest = [c for c in available if c not in used and c not in clashes and c not in sources]
    out = pd.DataFrame(
        {target: frame[source] for target, source in sources.items()}, index=frame.index
    )
    return pd.concat([out, frame[rest]], axis=1)


def _find_column(available: list[str], wanted: str, notes: Notes) -> str | None:
    """Exact name, else a unique case-insensitive match (some tools upper-case DBF field names)."""
    if wanted in available:
        return wanted
    folded = [c for c in available if c.casefold() == wanted.casefold()]
    if len(folded) == 1:
        notes.add(f"column {wanted!r} matched {folded[0]!r} ignoring case")
        return folded[0]
    return None


def codes_as_text(frame: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    """Code columns ("code", "*_code") as stripped strings; numbers are kept as the text of the number.

    Leading zeros lost when a tool stored codes as numbers cannot be recovered: the code validation
    that follows rejects such codes rather than this reader guessing a padding.
    """
    out = frame.copy()
    for column in [c for c in out.columns if str(c) == "code" or str(c).endswith("_code")]:
        values = out[column]
        if any(not isinstance(v, str) for v in values if not _is_null(v)):
            notes.add(
                f"column {column!r} holds numbers; converted to text, but leading zeros lost in the file "
                "cannot be recovered (store codes as text)"
            )
        out[column] = pd.Series([_code_text(v) for v in values], index=out.index, dtype=object)
    return out


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _code_text(value: Any) -> str | None:
    if _is_null(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else str(value)
    text = str(value).strip()
    return text or None
