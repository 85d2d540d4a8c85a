"""The raster under :class:`gis.resolve.GridIndex`: from a grid frame to cell tables, in numpy.

Everything here works on arrays of ring edges in raster units (one cell = 1): which cells an edge
comes within :data:`EPS` of (:func:`touched_cells`), how many grids cover each cell centre (:func:`scanline`,
an even-odd scan-line fill), the single straight line crossing a cell (:func:`line_ids`,
:func:`orient` with Shewchuk's error bound), growing a mask by whole cells (:func:`grow`) and the
compressed per-cell lists (:func:`csr`, :func:`expand`) the index keeps. No GEOS predicates except in
:func:`overlapping_grids`; the index decides what the cells mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from gis.errors import CodeError, InvalidGeometry

EPS = 1e-6  # margin (in cells) a boundary must keep from a cell for the cell to count as clean
_M_PER_DEG_LAT = 110_000.0  # under the true 110,574-111,694 m: degree margins come out generous
_M_PER_DEG_LON_EQ = 111_000.0
_MAX_CELLS = 8_000_000


@dataclass(frozen=True)
class Raster:
    """A regular lon/lat raster: cell (i, j) spans [x0 + i/sx, x0 + (i+1)/sx) x [y0 + j/sy, ...)."""

    x0: float
    y0: float
    sx: float  # cells per degree of longitude
    sy: float
    nx: int
    ny: int

    def uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x - self.x0) * self.sx, (y - self.y0) * self.sy


def prepare_frame(grids: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Codes and WGS84 geometries sorted by code, so the lowest code is the lowest index."""
    if "code" not in grids.columns:
        raise CodeError("grids need a 'code' column")
    if grids.crs is not None and grids.crs.to_epsg() not in (4326, 4490):
        grids = grids.to_crs(4326)
    codes = np.array([str(c) for c in grids["code"]], dtype=object)
    if len(set(codes)) != len(codes):
        raise CodeError("grid codes must be unique in one grid version")
    geoms = np.asarray(grids.geometry.values, dtype=object)
    kinds = shapely.get_type_id(geoms)
    if len(geoms) == 0 or np.any((kinds != 3) & (kinds != 6)) or np.any(shapely.is_empty(geoms)):
        raise InvalidGeometry("every grid needs a non-empty Polygon or MultiPolygon geometry")
    order = np.argsort(codes.astype(str), kind="stable")
    return codes[order], geoms[order]


def segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ring edge as start point, end point and owning grid index."""
    parts, part_owner = shapely.get_parts(geoms, return_index=True)  # get_rings skips MultiPolygons
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    owner = part_owner[ring_part]
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    return xy[:-1][same], xy[1:][same], owner[ring[:-1][same]]


def metre_degrees(bounds: np.ndarray, metres: float) -> tuple[float, float]:
    """Degrees of lon and lat that surely span at least ``metres`` anywhere in ``bounds``."""
    lat = max(abs(bounds[1]), abs(bounds[3]))
    return metres / (
        _M_PER_DEG_LON_EQ * math.cos(math.radians(min(lat, 85.0)))
    ), metres / _M_PER_DEG_LAT


def raster_for(geoms: np.ndarray, snap_m: float, cell_m: float | None) -> Raster:
    """A raster over the grids plus the snapping margin; cells about 1/50 of a grid's width."""
    bounds = shapely.total_bounds(geoms)
    if cell_m is None:
        areas_m2 = shapely.area(geoms) * np.prod([1 / d for d in metre_degrees(bounds, 1.0)])
        cell_m = max(math.sqrt(float(np.median(areas_m2))) / 50.0, 1.0)
    cdx, cdy = metre_degrees(bounds, cell_m)
    mdx, mdy = metre_degrees(bounds, snap_m * 1.05)
    width, height = bounds[2] - bounds[0] + 2 * mdx, bounds[3] - bounds[1] + 2 * mdy
    grow = max(1.0, math.sqrt(width / cdx * height / cdy / _MAX_CELLS))
    cdx, cdy = cdx * grow, cdy * grow
    nx, ny = int(width / cdx) + 3, int(height / cdy) + 3
    return Raster(bounds[0] - mdx - cdx, bounds[1] - mdy - cdy, 1 / cdx, 1 / cdy, nx, ny)


def _crossings(ua, va, ub, vb, owner) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points where edges cross the raster's vertical lines (u integer), in raster units."""
    lo, hi = np.minimum(ua, ub), np.maximum(ua, ub)
    first = np.floor(lo) + 1
    count = np.maximum(np.ceil(hi) - first, 0).astype(np.int64)
    edge = np.repeat(np.arange(len(ua)), count)
    step = np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
    k = first[edge] + step
    t = (k - ua[edge]) / (ub[edge] - ua[edge])
    return k, va[edge] + t * (vb[edge] - va[edge]), owner[edge]


def touched_cells(r: Raster, ua, va, ub, vb) -> tuple[np.ndarray, np.ndarray]:
    """Unique (cell, edge) pairs: the cells each edge comes within EPS cells of.

    An edge piece between two consecutive raster-line crossings lies in one cell, so probing around
    its vertices and crossing points (+-EPS on both axes) reaches every cell it touches."""
    edge = np.arange(len(ua))
    cu, cv, ce = _crossings(ua, va, ub, vb, edge)
    hv, hu, he = _crossings(va, ua, vb, ub, edge)
    u = np.concatenate([ua, cu, hu])
    v = np.concatenate([va, cv, hv])
    e = np.concatenate([edge, ce, he]).astype(np.int64)
    keys = []
    for du in (-EPS, EPS):
        for dv in (-EPS, EPS):
            i = np.clip(np.floor(u + du), 0, r.nx - 1).astype(np.int64)
            j = np.clip(np.floor(v + dv), 0, r.ny - 1).astype(np.int64)
            keys.append((j * r.nx + i) * len(ua) + e)
    return np.divmod(np.unique(np.concatenate(keys)), len(ua))


def line_ids(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges as undirected lines: an id per edge (a shared edge's two copies get one id) and, per
    id, its endpoints (x1, y1, x2, y2) in a fixed order."""
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    ends = np.ascontiguousarray(
        np.hstack([np.where(swap[:, None], b, a), np.where(swap[:, None], a, b)])
    )
    _, first, line = np.unique(
        ends.view(np.dtype((np.void, 32))).ravel(), return_index=True, return_inverse=True
    )
    return line.ravel(), ends[first]


def orient(line: np.ndarray, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Signed area of (a, b, p) (> 0: p left of a→b) and whether its sign is certain in floating
    point (Shewchuk's orient2d error bound, with margin); uncertain signs go to GEOS."""
    left = (line[:, 2] - line[:, 0]) * (y - line[:, 1])
    right = (line[:, 3] - line[:, 1]) * (x - line[:, 0])
    det = left - right
    return det, np.abs(det) > 1e-15 * (np.abs(left) + np.abs(right))


def scanline(r: Raster, ua, va, ub, vb, owner) -> tuple[np.ndarray, np.ndarray]:
    """How many grids cover each cell centre, and the sum of (index + 1) over them (even-odd rule)."""
    lo, hi = np.minimum(va, vb), np.maximum(va, vb)
    j0 = np.ceil(lo - 0.5).astype(np.int64)
    count = np.maximum(np.ceil(hi - 0.5).astype(np.int64) - j0, 0)
    edge = np.repeat(np.arange(len(va)), count)
    j = j0[edge] + np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
    vc = j + 0.5
    u = ua[edge] + (vc - va[edge]) * (ub[edge] - ua[edge]) / (vb[edge] - va[edge])
    g = owner[edge]
    order = np.lexsort((u, j, g))
    u, j, g = u[order], j[order], g[order]
    start = np.clip(np.ceil(u[0::2] - 0.5), 0, r.nx).astype(np.int64)
    stop = np.clip(np.ceil(u[1::2] - 0.5), 0, r.nx).astype(np.int64)
    row = j[0::2] * (r.nx + 1)
    size = (r.nx + 1) * r.ny
    cov = np.bincount(row + start, minlength=size) - np.bincount(row + stop, minlength=size)
    ids = np.bincount(row + start, g[0::2] + 1, size) - np.bincount(row + stop, g[0::2] + 1, size)
    cov = np.cumsum(cov.reshape(r.ny, r.nx + 1), axis=1)[:, :-1]
    ids = np.cumsum(ids.reshape(r.ny, r.nx + 1), axis=1)[:, :-1]
    return cov.ravel(), np.rint(ids).astype(np.int64).ravel()


def _dilate(mask: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Cells within ``k`` cells of a True cell along ``axis`` (a running window sum)."""
    if k <= 0:
        return mask
    n = mask.shape[axis]
    c = np.cumsum(mask, axis=axis, dtype=np.int32)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    i = np.arange(n)
    hi = np.take(c, np.minimum(i + k + 1, n), axis=axis)
    lo = np.take(c, np.maximum(i - k, 0), axis=axis)
    return hi > lo


def grow(mask: np.ndarray, kx: int, ky: int) -> np.ndarray:
    return _dilate(_dilate(mask, kx, 1), ky, 0)


def csr(keys: np.ndarray, width: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pointers (for sorted ``rows``) and column values of sorted keys = row * width + column."""
    row, col = np.divmod(keys, width)
    ptr = np.searchsorted(row, np.append(rows, np.iinfo(np.int64).max))
    return ptr.astype(np.int64), col


def expand(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row, the positions ptr[row]..ptr[row+1]: (owner, position, group starts)."""
    start, count = ptr[rows], ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), count)
    first = np.cumsum(count) - count
    return owner, np.repeat(start - first, count) + np.arange(len(owner)), first


def overlapping_grids(geoms: np.ndarray) -> np.ndarray:
    """Per grid: does its interior meet another grid's? (Bad data; it disables a shortcut.)"""
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    a, b = a[a < b], b[a < b]
    flag = np.zeros(len(geoms), dtype=bool)
    try:
        both = shapely.relate_pattern(geoms[a], geoms[b], "T********")
    except shapely.errors.GEOSException:
        return ~flag
    flag[a[both]] = flag[b[both]] = True
    return flag
