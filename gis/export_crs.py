"""The coordinate systems exports are written in, and reprojection of frames into them.

Output CRS: EPSG:4326 (default), EPSG:4490 (CGCS2000, same numbers as PROJ treats them as equal), a
CGCS2000 Gauss-Krüger zone EPSG:4513-4554, or ``gcj02`` for overlays on Amap. GCJ-02 is an
obfuscation, not a CRS: such files are labelled WGS84 (that is how Amap data circulates) and the file
names carry ``_gcj02``. The .prj is pyproj's ESRI WKT, the dialect ArcGIS matches to its own CRS list.
"""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from pyproj.enums import WktVersion

from gis.coords import WGS84, from_wgs84, normalize_crs
from gis.errors import UnknownCRS

GK_EPSG = range(4513, 4555)
CGCS2000 = "EPSG:4490"


def output_crs(crs: str | int | None) -> str:
    """'EPSG:4326' (default), 'EPSG:4490', 'EPSG:4513'..'EPSG:4554' or 'gcj02'; anything else → UnknownCRS."""
    name = normalize_crs(crs)
    if name in (WGS84, CGCS2000, "gcj02"):
        return name
    if name.startswith("EPSG:") and name[5:].isdigit() and int(name[5:]) in GK_EPSG:
        return name
    raise UnknownCRS(f"exports are written in EPSG:4326, EPSG:4490, a CGCS2000 Gauss-Krüger zone "
                     f"EPSG:4513-4554 or gcj02; {crs!r} is not one of them")


def label_crs(crs: str) -> str:
    """The CRS written into files: GCJ-02 has none of its own and circulates labelled WGS84."""
    return WGS84 if crs == "gcj02" else crs


def esri_prj(crs: str) -> str:
    """The .prj text ArcGIS recognises: ESRI-flavoured WKT1."""
    return CRS.from_user_input(label_crs(crs)).to_wkt(WktVersion.WKT1_ESRI)


def is_projected(crs: str) -> bool:
    return crs not in (WGS84, CGCS2000, "gcj02")


def to_output_crs(frame: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Reproject a frame (EPSG:4326 unless it says otherwise) into an export CRS, vectorised."""
    if frame.crs is not None and not CRS.from_user_input(frame.crs).equals(WGS84):
        frame = frame.to_crs(WGS84)
    geoms = np.asarray(frame.geometry.values, dtype=object)
    if crs not in (WGS84, CGCS2000) and len(geoms):
        geoms = shapely.transform(geoms, _converter(crs))
    out = frame.copy()
    out[frame.geometry.name] = gpd.GeoSeries(geoms, index=frame.index)
    return out.set_geometry(frame.geometry.name).set_crs(label_crs(crs), allow_override=True)


def _converter(crs: str) -> Callable[[np.ndarray], np.ndarray]:
    def convert(coords: np.ndarray) -> np.ndarray:
        x, y = from_wgs84(coords[:, 0], coords[:, 1], crs)
        return np.column_stack([x, y])
    return convert


def file_stem(name: str, crs: str) -> str:
    """A download name that says when the coordinates are shifted (GCJ-02) or projected."""
    if crs == "gcj02":
        return f"{name}_gcj02"
    return name if crs == WGS84 else f"{name}_{crs.split(':')[1]}"
