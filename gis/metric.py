"""Metric work in the city's own CGCS2000 Gauss-Krüger zone (高斯-克吕格 3° 带).

Geometry is stored as lon/lat, where areas and tolerances mean nothing; planners think in metres and
square metres. A 3-degree GK zone (EPSG:4513-4533) keeps scale error under about 1/7000 across a
county, so areas measured there match what the land bureau measures. The zone is chosen from the
data itself, so the same code serves any city. All functions take shapely arrays or GeoPandas
objects and work on every coordinate at once (``shapely.transform`` over one pyproj call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import geopandas as gpd
import numpy as np
import shapely

from gis.coords import WGS84, from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.errors import InvalidGeometry

_LONLAT = (4326, 4490)  # WGS84 and CGCS2000 are treated as equal, as PROJ does

GeomsLike: TypeAlias = gpd.GeoDataFrame | gpd.GeoSeries | np.ndarray | Sequence[Any]


def lonlat_array(geoms: GeomsLike) -> np.ndarray:
    """An object array of shapely geometries in lon/lat (a GeoPandas CRS other than 4326 is converted).

    Plain arrays and lists carry no CRS and are taken to be lon/lat already.
    """
    if isinstance(geoms, gpd.GeoDataFrame):
        geoms = geoms.geometry
    if isinstance(geoms, gpd.GeoSeries):
        if geoms.crs is not None and geoms.crs.to_epsg() not in _LONLAT:
            geoms = geoms.to_crs(WGS84)
        return np.asarray(geoms.values, dtype=object)
    return np.asarray(geoms, dtype=object)


def local_epsg(geoms: GeomsLike) -> int:
    """The EPSG number of the GK zone holding the data's centre (see :func:`local_crs`)."""
    values = lonlat_array(geoms)
    bounds = shapely.total_bounds(values)
    if not np.all(np.isfinite(bounds)):
        raise InvalidGeometry("cannot choose a metric zone: the geometries are all empty")
    return gauss_kruger_epsg(float(bounds[0] + bounds[2]) / 2.0)


def local_crs(geoms: GeomsLike) -> str:
    """``"EPSG:45xx"``: the CGCS2000 3° GK zone for the centre of the data's extent.

    The extent's centre rather than an area-weighted centroid: it is cheap, needs no valid
    polygons, and a city never spans two zones' worth of longitude anyway.
    """
    return f"EPSG:{local_epsg(geoms)}"


def _epsg_text(epsg: int | str) -> str:
    text = str(epsg)
    return text if ":" in text else f"EPSG:{text}"


def to_metric(geoms: GeomsLike, epsg: int | str) -> np.ndarray:
    """Lon/lat geometries → the GK zone ``epsg`` (an int or ``"EPSG:nnnn"``), as a shapely array."""
    values = lonlat_array(geoms)
    crs = _epsg_text(epsg)

    def forward(xy: np.ndarray) -> np.ndarray:
        x, y = from_wgs84(xy[:, 0], xy[:, 1], crs)
        return np.column_stack([x, y])

    return shapely.transform(values, forward)


def from_metric(geoms: GeomsLike, epsg: int | str) -> np.ndarray:
    """The inverse of :func:`to_metric`: GK metres → lon/lat, for results an editor will draw."""
    values = np.asarray(geoms.values if isinstance(geoms, gpd.GeoSeries) else geoms, dtype=object)
    crs = _epsg_text(epsg)

    def backward(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], crs)
        return np.column_stack([lon, lat])

    return shapely.transform(values, backward)


def area_m2(geoms: GeomsLike, epsg: int | str | None = None) -> np.ndarray:
    """Areas in square metres, measured in ``epsg`` (default: the data's own GK zone)."""
    values = lonlat_array(geoms)
    if len(values) == 0:
        return np.zeros(0)
    zone = local_epsg(values) if epsg is None else epsg
    return shapely.area(to_metric(values, zone))
