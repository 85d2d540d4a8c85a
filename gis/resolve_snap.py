"""Snapping distances for :mod:`gis.resolve`: metres in the city's Gauss-Krüger zone, as GEOS measures.

A point covered by no grid snaps to the nearest one within ``snap_m`` metres. Distances are taken in
the city's CGCS2000 3-degree Gauss-Krüger zone (:func:`gk_zone`, :func:`to_gk`), to the grid's
boundary: :func:`point_segment` is GEOS's point-to-segment arithmetic over numpy arrays (the fast
path, over the edges listed for a cell), :func:`nearest_reference` asks GEOS itself (points outside
those lists, and the reference resolver). Ties go to the lowest grid index (:func:`first_min`).
"""

from __future__ import annotations

import numpy as np
import shapely

from gis.coords import from_wgs84, gauss_kruger_epsg


def gk_zone(geoms: np.ndarray) -> str:
    """The Gauss-Krüger zone ("EPSG:45xx") at the middle longitude of ``geoms`` (WGS84)."""
    return f"EPSG:{gauss_kruger_epsg(float(np.mean(shapely.total_bounds(geoms)[[0, 2]])))}"


def point_segment(px, py, ax, ay, bx, by) -> np.ndarray:
    """Point-to-segment distance, the same arithmetic as GEOS ``Distance::pointToSegment``."""
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = ((px - ax) * dx + (py - ay) * dy) / len2
        s = ((ay - py) * dx - (ax - px) * dy) / len2
    to_a = np.sqrt((px - ax) ** 2 + (py - ay) ** 2)
    to_b = np.sqrt((px - bx) ** 2 + (py - by) ** 2)
    mid = np.abs(s) * np.sqrt(len2)
    return np.where((len2 == 0) | (r <= 0), to_a, np.where(r >= 1, to_b, mid))


def first_min(group_start: np.ndarray, value: np.ndarray, grid: np.ndarray, none: int):
    """Per group: the minimum value and the lowest grid index attaining it (groups non-empty)."""
    best = np.minimum.reduceat(value, group_start)
    sizes = np.diff(np.append(group_start, len(value)))
    tie = value == np.repeat(best, sizes)
    return best, np.minimum.reduceat(np.where(tie, grid, none), group_start)


def to_gk(geoms: np.ndarray, gk: str) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], gk)))


def nearest_reference(
    tree: shapely.STRtree, gx, gy, snap_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per point: GEOS distance to the nearest grid boundary (the tree holds boundaries in metres)
    within snap_m, and the lowest index at that distance (else NaN and n)."""
    none = len(tree.geometries)
    dist, grid = np.full(len(gx), np.nan), np.full(len(gx), none, dtype=np.int64)
    pts = shapely.points(gx, gy)
    pt, g = tree.query(pts, predicate="dwithin", distance=snap_m * (1 + 1e-9) + 1e-6)
    if len(pt):
        order = np.lexsort((g, pt))
        pt, g = pt[order], g[order]
        d = shapely.distance(tree.geometries[g], pts[pt])
        starts = np.flatnonzero(np.r_[True, pt[1:] != pt[:-1]])
        best, low = first_min(starts, d, g, none)
        dist[pt[starts]], grid[pt[starts]] = best, low
    return dist, grid


