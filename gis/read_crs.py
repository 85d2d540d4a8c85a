"""Which coordinate reference system a boundary file is in, and reprojection to WGS84 lon/lat.

The file's .prj and the caller's ``--crs`` must agree (WGS84 and CGCS2000 count as equal), except that
gcj02/bd09 may override a lon/lat label; :func:`resolve_crs` refuses a missing CRS or a conflict with a
message saying what to pass. :func:`reproject` converts every vertex in one vectorised pass.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from gis.coords import SPECIAL, WGS84, normalize_crs, to_wgs84
from gis.errors import InvalidInput
from gis.read_result import Notes, first_line

LONLAT_SAME = {"EPSG:4326", "EPSG:4490"}  # WGS84 and CGCS2000 are treated as equal, as PROJ does


def resolve_crs(
    file_crs: str | None, given: str | None, name: str, notes: Notes | None = None
) -> str | CRS:
    """The CRS to read coordinates in: the file's, or ``given``; refusing none and conflicts.

    Returns "EPSG:n", "gcj02"/"bd09", or a pyproj CRS when the file's CRS has no EPSG equivalent.
    """
    notes = notes or Notes()
    if given is None:
        if not file_crs:
            raise InvalidInput(
                f"{name} has no coordinate reference system (no .prj): pass it (--crs), "
                "e.g. EPSG:4528 for CGCS2000 Gauss-Krüger zone 40, EPSG:4326, gcj02 or bd09"
            )
        return _file_crs(file_crs, name)
    wanted = normalize_crs(given)
    if not file_crs:
        return wanted
    found = _file_crs(file_crs, name)
    if wanted in SPECIAL and _is_lonlat(found):
        notes.add(
            f"{name}: the file says {crs_label(found)}; its lon/lat are read as {wanted} as asked"
        )
        return wanted
    if wanted not in SPECIAL and _equivalent(found, wanted):
        return wanted
    raise InvalidInput(
        f"{name}: ambiguous CRS, the file says {crs_label(found)} but {given!r} was given; "
        "remove the .prj or drop --crs"
    )


def _file_crs(text: str, name: str) -> str | CRS:
    try:
        parsed = CRS.from_user_input(text)
    except CRSError as exc:
        raise InvalidInput(
            f"{name}: its .prj cannot be understood ({first_line(exc)}); pass --crs"
        ) from exc
    code = parsed.to_epsg(min_confidence=70)
    return f"EPSG:{code}" if code else parsed


def _as_crs(value: str | CRS) -> CRS:
    return value if isinstance(value, CRS) else CRS.from_user_input(value)


def _is_lonlat(value: str | CRS) -> bool:
    if isinstance(value, str) and value in LONLAT_SAME:
        return True
    return _as_crs(value).is_geographic


def _equivalent(a: str | CRS, b: str | CRS) -> bool:
    if isinstance(a, str) and isinstance(b, str) and (a == b or {a, b} <= LONLAT_SAME):
        return True
    return _as_crs(a).equals(_as_crs(b), ignore_axis_order=True)


def is_metric(value: str | CRS) -> bool:
    """A projected CRS in metres (Gauss-Krüger and the like): areas can be measured in it directly."""
    if isinstance(value, str) and (value in SPECIAL or value in LONLAT_SAME):
        return False
    crs = _as_crs(value)
    return crs.is_projected and all(
        (axis.unit_name or "").lower() in ("metre", "meter") for axis in crs.axis_info
    )


def crs_label(value: str | CRS) -> str:
    return value if isinstance(value, str) else value.to_wkt()


def reproject(geoms: np.ndarray, source: str | CRS) -> np.ndarray:
    """All vertices to WGS84 lon/lat in one vectorised pass (GCJ-02/BD-09 through gis.coords)."""
    if isinstance(source, str) and source in LONLAT_SAME:
        return geoms
    if isinstance(source, CRS):
        transformer = Transformer.from_crs(source, WGS84, always_xy=True)

        def convert(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    else:

        def convert(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], source))

    return shapely.transform(geoms, convert)
