"""The slow, obviously right point → grid resolver that :class:`gis.resolve.GridIndex` is tested against.

Shapely covers/contains for every candidate grid and GEOS distances for snapping, with the semantics
written down in :mod:`gis.resolve`. Tests (and benchmarks) hold the fast index to it point for point.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from gis.coords import from_wgs84, to_wgs84
from gis.resolve import BOUNDARY, INSIDE, INVALID, MATCHES, OUTSIDE, SNAPPED, Resolution, with_none
from gis.resolve_raster import prepare_frame
from gis.resolve_snap import gk_zone, nearest_reference, to_gk


def resolve_reference(
    grids: gpd.GeoDataFrame, lon, lat, *, crs: str = "EPSG:4326", snap_m: float = 50.0
) -> Resolution:
    """The slow, obviously right resolver: shapely covers/contains for every candidate grid, GEOS
    distance in Gauss-Krüger metres for snapping. The fast index must agree with it point for point."""
    codes, geoms = prepare_frame(grids)
    x, y = (np.ravel(a) for a in to_wgs84(lon, lat, crs))
    n, none = len(x), len(codes)
    grid, match, dist = np.full(n, none), np.full(n, OUTSIDE, dtype=np.int8), np.full(n, np.nan)
    valid = np.isfinite(x) & np.isfinite(y)
    match[~valid] = INVALID
    pts = shapely.points(np.where(valid, x, 0.0), np.where(valid, y, 0.0))
    pt, g = shapely.STRtree(geoms).query(pts, predicate="intersects")
    keep = valid[pt]
    order = np.lexsort((g[keep], pt[keep]))
    pt, g = pt[keep][order], g[keep][order]
    starts = np.flatnonzero(np.r_[True, pt[1:] != pt[:-1]]) if len(pt) else np.zeros(0, dtype=int)
    covered, lowest = pt[starts], g[starts]
    single = np.diff(np.append(starts, len(pt))) == 1
    whole = single & shapely.contains(geoms[lowest], pts[covered])
    grid[covered], match[covered], dist[covered] = lowest, np.where(whole, INSIDE, BOUNDARY), 0.0
    rest = np.flatnonzero(valid & (match == OUTSIDE))
    if len(rest) and snap_m > 0:
        gk = gk_zone(geoms)
        gx, gy = from_wgs84(x[rest], y[rest], gk)
        edges = shapely.boundary(to_gk(geoms, gk))
        d, low = nearest_reference(shapely.STRtree(edges), gx, gy, snap_m)
        hit = d <= snap_m
        grid[rest[hit]], match[rest[hit]], dist[rest[hit]] = low[hit], SNAPPED, d[hit]
    return Resolution(with_none(codes).take(grid), MATCHES.take(match), dist)
