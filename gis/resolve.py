"""Point → grid resolution (网格定位) in process: one resolver for single points, arrays and files.

Why a raster and not an R-tree: a city is a few thousand polygons and millions of points, and almost
every point lies well inside one grid. A regular raster laid over the grids settles those points with
integer arithmetic alone; only the thin band of cells that a boundary passes through needs an exact
(GEOS) test. The raster is built by scan-line filling cell centres (no polygon test per cell) and by
marking every cell a boundary edge comes within ``EPS`` cells of, so an unmarked cell is provably
inside exactly one grid, or outside all of them. Most marked cells are crossed by a single straight
edge; there a floating-point orientation test with Shewchuk's error bound picks the side (doubtful
signs go to GEOS), so GEOS sees only cells holding a vertex. Snapping distances use numpy with the
arithmetic of GEOS's point-to-segment distance over the edges listed for the cell.

Semantics (the same as :func:`gis.resolve_reference.resolve_reference`, the slow shapely version,
and as PostGIS):
- ``inside``: covered by exactly one grid and in its interior.
- ``boundary``: covered by a grid but on its edge, or by several grids (shared edge or vertex, or an
  overlap in bad data): the lowest code among all covering grids wins, always.
- ``snapped``: covered by none, but within ``snap_m`` metres of one: the nearest grid, ties to the
  lowest code; ``distance_m`` says how far. Metres are measured in the city's CGCS2000 3-degree
  Gauss-Krüger zone, to the grid's boundary (edges projected vertex by vertex, straight in the zone),
  so a snapped point never reports 0 m even where a projected edge bulges past it. In PostGIS:
  ``ST_Distance(ST_Boundary(ST_Transform(geom, zone)), ST_Transform(point, zone))``.
- ``outside``: none of the above; ``grid_code`` None, ``distance_m`` NaN.
- ``invalid``: a NaN or infinite coordinate. Callers should reject such input before resolving; the
  resolver marks it rather than guessing.

Here: :class:`GridIndex` (building its cell table and resolving points). The array work of building
the raster is :mod:`gis.resolve_raster`; snapping distances are :mod:`gis.resolve_snap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely

from gis.coords import from_wgs84, to_wgs84
from gis.resolve_raster import (
    EPS,
    Raster,
    csr,
    expand,
    grow,
    line_ids,
    metre_degrees,
    orient,
    overlapping_grids,
    prepare_frame,
    raster_for,
    scanline,
    segments,
    touched_cells,
)
from gis.resolve_snap import first_min, gk_zone, nearest_reference, point_segment, to_gk

MATCHES = np.array(["inside", "boundary", "snapped", "outside", "invalid"])
INSIDE, BOUNDARY, SNAPPED, OUTSIDE, INVALID = range(5)

_FAR, _NEAR, _MIXED0 = (
    -1,
    -2,
    -3,
)  # cell table: >= 0 interior grid; -1 far out; -2 near; <= -3 mixed


@dataclass(frozen=True)
class Resolution:
    """What each point resolved to; arrays of equal length, in input order."""

    grid_code: np.ndarray  # object: code str, None where unresolved
    match: np.ndarray  # str: inside | boundary | snapped | outside | invalid
    distance_m: np.ndarray  # 0 inside/boundary, metres when snapped, NaN otherwise

    def __len__(self) -> int:
        return len(self.match)


class GridIndex:
    """One grid version, indexed for point → grid resolution. Rebuild when the version changes.

    Cell table values: ``>= 0`` the cell lies inside exactly that grid; ``-1`` the cell is farther
    than ``snap_m`` from every grid; ``-2`` outside but near (snap); ``<= -3`` mixed cell ``-3 - v``,
    whose candidate grids are ``_cand[_cand_ptr[m]:_cand_ptr[m + 1]]``, tested exactly by GEOS."""

    version: int
    codes: np.ndarray  # grid codes in code order; every index below points into it
    snap_m: float
    _geoms: np.ndarray  # prepared WGS84 polygons, code order
    _cell_m: float | None
    _bounds: np.ndarray
    _codes_none: np.ndarray  # codes + a trailing None (index n or -1: unresolved)
    _codes_list: list[str]
    _gk: str  # "EPSG:45xx", the city's Gauss-Krüger zone
    _r: Raster
    _table: np.ndarray  # int32 per cell, see above
    _cand_ptr: np.ndarray
    _cand: np.ndarray
    _cell_clean: np.ndarray  # per mixed cell: no candidate overlaps another
    _line: np.ndarray  # per mixed cell: the one edge crossing it (x1, y1, x2, y2) or NaN
    _side: np.ndarray  # per mixed cell: grid left / right of that edge (n none, -1 ask GEOS)
    _snap_cells: np.ndarray
    _snap_ptr: np.ndarray
    _snap_seg: tuple[np.ndarray, ...]  # Gauss-Krüger edges (ax, ay, bx, by, grid) per snap cell
    _tree: shapely.STRtree | None = None

    @classmethod
    def from_frame(
        cls,
        grids: gpd.GeoDataFrame,
        *,
        version: int = 0,
        snap_m: float = 50.0,
        cell_m: float | None = None,
    ) -> GridIndex:
        """Index a grid set (columns ``code`` and geometry; any CRS, WGS84/CGCS2000 expected).

        ``cell_m`` is the raster cell size in metres; by default 1/50 of the median grid width."""
        if not snap_m >= 0:
            raise ValueError(f"snap_m must be >= 0 metres, got {snap_m!r}")
        codes, geoms = prepare_frame(grids)
        self = cls()
        self.version, self.codes, self.snap_m = int(version), codes, float(snap_m)
        self._geoms, self._cell_m = geoms, cell_m
        self._bounds = shapely.total_bounds(geoms)
        shapely.prepare(geoms)
        self._codes_none = with_none(codes)
        self._codes_list = list(codes)
        self._gk = gk_zone(geoms)
        self._build(geoms)
        return self

    # -- building -------------------------------------------------------------------------------
    def _build(self, geoms: np.ndarray) -> None:
        r = self._r = raster_for(geoms, self.snap_m, self._cell_m)
        a, b, owner = segments(geoms)
        ua, va = r.uv(a[:, 0], a[:, 1])
        ub, vb = r.uv(b[:, 0], b[:, 1])
        n = len(geoms)
        t_cell, t_edge = touched_cells(r, ua, va, ub, vb)
        touched = np.unique(t_cell * n + owner[t_edge])
        cov, ids = scanline(r, ua, va, ub, vb, owner)
        marked = np.zeros(r.nx * r.ny, dtype=bool)
        marked[touched // n] = True
        deep_overlap = ~marked & (cov >= 2)
        outside = ~marked & (cov == 0)
        mixed = marked | deep_overlap
        mdx, mdy = metre_degrees(self._bounds, self.snap_m * 1.05)
        kx, ky = math.ceil(mdx * r.sx) + 1, math.ceil(mdy * r.sy) + 1
        near = outside & grow(marked.reshape(r.ny, r.nx), kx, ky).ravel()
        table = np.full(r.nx * r.ny, _FAR, dtype=np.int32)
        inner = ~mixed & (cov == 1)
        table[inner] = ids[inner] - 1
        table[near] = _NEAR
        mixed_cells = np.flatnonzero(mixed)
        table[mixed_cells] = _MIXED0 - np.arange(len(mixed_cells), dtype=np.int32)
        self._table = table
        self._candidates(touched, mixed_cells, cov, ids)
        self._single_lines(a, b, t_cell, t_edge, mixed_cells)
        snap = near | (marked & grow(outside.reshape(r.ny, r.nx), 1, 1).ravel())
        self._snap_lists(snap, ua, va, ub, vb, a, b, owner, kx, ky)

    def _candidates(self, touched, mixed_cells, cov, ids) -> None:
        """Grids a point in each mixed cell may fall in: those whose edges touch the cell, plus the
        grid holding the cell centre (it may hold the whole cell), or an R-tree answer in overlaps.

        The centre's grid is listed first: it is the likeliest answer, tried first when settling."""
        n = len(self.codes)
        centre_grid = np.where(cov[mixed_cells] == 1, ids[mixed_cells] - 1, -1)
        centre = mixed_cells[centre_grid >= 0]
        parts = [touched, centre * n + ids[centre] - 1]
        many = mixed_cells[cov[mixed_cells] >= 2]
        if len(many):
            parts.append(self._box_query(many))
        keys = np.unique(np.concatenate(parts))
        row = np.searchsorted(mixed_cells, keys // n)
        grid = keys % n
        order = np.lexsort((grid, grid != centre_grid[row], row))
        ptr, _ = csr(keys, n, mixed_cells)
        self._cand_ptr, self._cand = ptr, grid[order]
        overlapping = overlapping_grids(self._geoms)
        self._cell_clean = ~np.logical_or.reduceat(overlapping[self._cand], ptr[:-1])

    def _single_lines(self, a, b, t_cell, t_edge, mixed_cells) -> None:
        """Mixed cells crossed by one straight edge only (most of them) are split by that line into
        two parts, each wholly in one grid or in none: settle a corner of each part with GEOS now,
        and points later by which side of the line they fall (``_side``: grid, n = none, -1 = ask
        GEOS). Only where no candidate overlaps another."""
        r, n = self._r, len(self.codes)
        line_of_edge, ends = line_ids(a, b)
        pairs = np.unique(t_cell * len(ends) + line_of_edge[t_edge])
        cell, line = np.divmod(pairs, len(ends))
        cells, first, count = np.unique(cell, return_index=True, return_counts=True)
        one = (count == 1) & np.isin(cells, mixed_cells)
        cells, line = cells[one], line[first[one]]
        m = np.searchsorted(mixed_cells, cells)
        keep = self._cell_clean[m]
        cells, line, m = cells[keep], ends[line[keep]], m[keep]
        j, i = np.divmod(cells, r.nx)
        cx = r.x0 + (i[:, None] + np.array([0, 1, 0, 1])) / r.sx
        cy = r.y0 + (j[:, None] + np.array([0, 0, 1, 1])) / r.sy
        det = np.column_stack([orient(line, cx[:, k], cy[:, k])[0] for k in range(4)])
        self._line = np.full((len(mixed_cells), 4), np.nan)
        self._line[m] = line
        self._side = np.full((len(mixed_cells), 2), -1, dtype=np.int64)
        rows = np.arange(len(m))
        for col, pick in ((0, np.argmax(det, axis=1)), (1, np.argmin(det, axis=1))):
            px, py = cx[rows, pick], cy[rows, pick]
            d, sure = orient(line, px, py)
            usable = np.flatnonzero(sure & ((d > 0) if col == 0 else (d < 0)))
            grid, match = self._covering(px[usable], py[usable], m[usable])
            side = np.where(match == INSIDE, grid, np.where(match == OUTSIDE, n, -1))
            self._side[m[usable], col] = side

    def _box_query(self, cells: np.ndarray) -> np.ndarray:
        """(cell, grid) keys for grids intersecting each cell box grown by EPS (rare: overlaps)."""
        r = self._r
        j, i = np.divmod(cells, r.nx)
        boxes = shapely.box(
            r.x0 + (i - EPS) / r.sx,
            r.y0 + (j - EPS) / r.sy,
            r.x0 + (i + 1 + EPS) / r.sx,
            r.y0 + (j + 1 + EPS) / r.sy,
        )
        box_i, grid_i = shapely.STRtree(self._geoms).query(boxes, predicate="intersects")
        return cells[box_i] * len(self.codes) + grid_i

    def _snap_lists(self, snap, ua, va, ub, vb, a, b, owner, kx, ky) -> None:
        """For cells where an uncovered point may lie: the edges within snap distance (Gauss-Krüger)."""
        r = self._r
        i0 = np.clip(np.floor(np.minimum(ua, ub)) - kx, 0, r.nx - 1).astype(np.int64)
        i1 = np.clip(np.floor(np.maximum(ua, ub)) + kx, 0, r.nx - 1).astype(np.int64)
        j0 = np.clip(np.floor(np.minimum(va, vb)) - ky, 0, r.ny - 1).astype(np.int64)
        j1 = np.clip(np.floor(np.maximum(va, vb)) + ky, 0, r.ny - 1).astype(np.int64)
        sat = np.zeros((r.ny + 1, r.nx + 1), dtype=np.int64)
        sat[1:, 1:] = np.cumsum(np.cumsum(snap.reshape(r.ny, r.nx), axis=0), axis=1)
        hits = sat[j1 + 1, i1 + 1] - sat[j0, i1 + 1] - sat[j1 + 1, i0] + sat[j0, i0]
        seg = np.flatnonzero(hits > 0)
        w, h = i1[seg] - i0[seg] + 1, j1[seg] - j0[seg] + 1
        owner_seg = np.repeat(seg, w * h)
        local = np.arange(len(owner_seg)) - np.repeat(np.cumsum(w * h) - w * h, w * h)
        dj, di = np.divmod(local, np.repeat(w, w * h))
        cell = (j0[owner_seg] + dj) * r.nx + i0[owner_seg] + di
        keep = snap[cell]
        keys = np.unique(cell[keep] * len(ua) + owner_seg[keep])
        self._snap_cells = np.flatnonzero(snap)
        self._snap_ptr, seg_of = csr(keys, len(ua), self._snap_cells)
        ax, ay = from_wgs84(a[seg_of, 0], a[seg_of, 1], self._gk)
        bx, by = from_wgs84(b[seg_of, 0], b[seg_of, 1], self._gk)
        self._snap_seg = (ax, ay, bx, by, owner[seg_of])

    # -- resolving ------------------------------------------------------------------------------
    def resolve(self, lon, lat, *, crs: str = "EPSG:4326") -> Resolution:
        """Resolve arrays of points given in ``crs`` (any EPSG code, ``gcj02`` or ``bd09``)."""
        x, y = to_wgs84(np.ravel(lon), np.ravel(lat), crs)
        if x.shape != y.shape:
            raise ValueError(f"lon and lat differ in length: {x.shape[0]} vs {y.shape[0]}")
        grid, match, dist = self._resolve_wgs84(np.ascontiguousarray(x), np.ascontiguousarray(y))
        return Resolution(self._codes_none.take(grid), MATCHES.take(match), dist)

    def resolve_positions(
        self, lon, lat, *, crs: str = "EPSG:4326"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`resolve`, but grid *positions* (into :attr:`codes`; ``len(codes)`` = none), match
        numbers (into ``MATCHES``) and distances: for callers that map positions to their own
        columns with integer takes (categoricals) instead of handling code strings."""
        x, y = to_wgs84(np.ravel(lon), np.ravel(lat), crs)
        if x.shape != y.shape:
            raise ValueError(f"lon and lat differ in length: {x.shape[0]} vs {y.shape[0]}")
        grid, match, dist = self._resolve_wgs84(np.ascontiguousarray(x, dtype=float),
                                                np.ascontiguousarray(y, dtype=float))
        return np.where(grid < 0, len(self.codes), grid), match, dist

    def resolve_one(
        self, lon: float, lat: float, *, crs: str = "EPSG:4326"
    ) -> tuple[str | None, str, float]:
        """One point, without numpy overhead for the common case (a clean cell)."""
        if crs != "EPSG:4326":
            x, y = to_wgs84(lon, lat, crs)
            lon, lat = float(x), float(y)
        r = self._r
        u, v = (lon - r.x0) * r.sx, (lat - r.y0) * r.sy
        if not (0.0 <= u < r.nx and 0.0 <= v < r.ny):
            return (
                (None, "outside", math.nan) if math.isfinite(u + v) else (None, "invalid", math.nan)
            )
        state = self._table.item(int(v) * r.nx + int(u))
        if state >= 0:
            return self._codes_list[state], "inside", 0.0
        if state == _FAR or (state == _NEAR and self.snap_m == 0):
            return None, "outside", math.nan
        if state <= _MIXED0:
            hit = self._settle_one(_MIXED0 - state, lon, lat)
            if hit is not None:
                return hit
            if self.snap_m == 0:
                return None, "outside", math.nan
        g, m, d = self._snap(np.array([lon]), np.array([lat]), np.array([int(v) * r.nx + int(u)]))
        return self._codes_none[g[0]], str(MATCHES[m[0]]), float(d[0])

    def _settle_one(self, m: int, lon: float, lat: float) -> tuple[str, str, float] | None:
        covering = [
            g
            for g in self._cand[self._cand_ptr[m] : self._cand_ptr[m + 1]].tolist()
            if shapely.intersects_xy(self._geoms[g], lon, lat)
        ]
        if not covering:
            return None
        g = min(covering)  # candidates are listed likeliest first, not in code order
        inside = len(covering) == 1 and shapely.contains_xy(self._geoms[g], lon, lat)
        return self._codes_list[g], "inside" if inside else "boundary", 0.0

    def _resolve_wgs84(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self._r
        u, v = r.uv(x, y)
        all_ok = len(x) == 0 or bool(
            u.min() >= 0 and u.max() < r.nx and v.min() >= 0 and v.max() < r.ny
        )
        if not all_ok:  # some points off the raster or not finite: mask them (slower path)
            ok = (u >= 0) & (u < r.nx) & (v >= 0) & (v < r.ny)
            u, v = np.where(ok, u, 0.0), np.where(ok, v, 0.0)
        cell = v.astype(np.int32) * np.int32(r.nx) + u.astype(np.int32)
        state = self._table.take(cell)
        if not all_ok:
            state[~ok] = _FAR
        clean = state >= 0
        match = (~clean).view(np.int8) * np.int8(OUTSIDE)
        dist = np.where(clean, 0.0, np.nan)
        rest = np.flatnonzero(state < _FAR)
        if len(rest):
            self._settle(x, y, cell, state, rest, state, match, dist)
        grid = state  # settled in place; -1 (far) reads as the trailing None of _codes_none
        if not all_ok:
            match[~(np.isfinite(x) & np.isfinite(y))] = INVALID
        return grid, match, dist

    def _settle(self, x, y, cell, state, rest, grid, match, dist) -> None:
        """Exact answers for points in mixed and near cells, written into grid/match/dist."""
        kind = state[rest]  # read before grid (which may be state itself) is written
        mixed, uncovered = rest[kind <= _MIXED0], rest[kind == _NEAR]
        if len(mixed):
            g, m = self._settle_mixed(x[mixed], y[mixed], _MIXED0 - kind[kind <= _MIXED0])
            grid[mixed], match[mixed], dist[mixed] = g, m, 0.0
            uncovered = np.concatenate([uncovered, mixed[m == OUTSIDE]])
        if len(uncovered) and self.snap_m > 0:
            g, m, d = self._snap(x[uncovered], y[uncovered], cell[uncovered])
            grid[uncovered], match[uncovered], dist[uncovered] = g, m, d
        elif len(uncovered):  # snapping switched off
            grid[uncovered], dist[uncovered] = len(self.codes), np.nan

    def _settle_mixed(self, x, y, m) -> tuple[np.ndarray, np.ndarray]:
        """Exact answers in mixed cells. Where no candidate overlaps another, a point strictly
        inside one candidate is settled by that alone (tried in rounds, centre grid first); the
        rest get covers against every candidate, the lowest covering index winning."""
        none = len(self.codes)
        grid = np.full(len(m), none, dtype=np.int64)
        match = np.full(len(m), np.int8(OUTSIDE))
        det, sure = orient(self._line[m], x, y)
        side = np.where(sure, self._side[m, (det <= 0).view(np.int8)], -1)
        grid[side >= 0] = side[side >= 0]
        match[(side >= 0) & (side < none)] = INSIDE
        todo = np.flatnonzero(side < 0)
        todo = todo[np.argsort(m[todo], kind="stable")]  # raster order: same polygons in a row
        todo = todo[self._cell_clean[m[todo]]]
        start, count = self._cand_ptr[m], self._cand_ptr[m + 1] - self._cand_ptr[m]
        for k in range(int(count.max(initial=0))):
            todo = todo[count[todo] > k]
            cand = self._cand[start[todo] + k]
            hit = shapely.contains_xy(self._geoms[cand], x[todo], y[todo])
            grid[todo[hit]], match[todo[hit]] = cand[hit], INSIDE
            todo = todo[~hit]
        rest = np.flatnonzero((match != INSIDE) & (side < 0))
        if len(rest):
            grid[rest], match[rest] = self._covering(x[rest], y[rest], m[rest])
        return grid, match

    def _covering(self, x, y, m) -> tuple[np.ndarray, np.ndarray]:
        """GEOS covers against every candidate; lowest covering index wins; inside if alone."""
        none = len(self.codes)
        pt, pos, first = expand(self._cand_ptr, m)
        cand = self._cand[pos]
        cov = shapely.intersects_xy(self._geoms[cand], x[pt], y[pt])
        count = np.add.reduceat(cov.astype(np.int32), first)
        grid = np.minimum.reduceat(np.where(cov, cand, none), first)
        match = np.where(count > 0, np.int8(BOUNDARY), np.int8(OUTSIDE))
        single = np.flatnonzero(count == 1)
        inside = shapely.contains_xy(self._geoms[grid[single]], x[single], y[single])
        match[single[inside]] = INSIDE
        return grid, match

    def _snap(self, x, y, cell) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest grid within snap_m (Gauss-Krüger metres) for points covered by no grid."""
        none, n = len(self.codes), len(x)
        grid = np.full(n, none, dtype=np.int64)
        dist = np.full(n, np.nan)
        gx, gy = from_wgs84(x, y, self._gk)
        row = np.searchsorted(self._snap_cells, cell)
        listed = (row < len(self._snap_cells)) & (
            self._snap_cells[np.minimum(row, len(self._snap_cells) - 1)] == cell
        )
        idx = np.flatnonzero(listed)
        idx = idx[self._snap_ptr[row[idx] + 1] > self._snap_ptr[row[idx]]]
        if len(idx):
            pt, pos, first = expand(self._snap_ptr, row[idx])
            ax, ay, bx, by, owner = (a[pos] for a in self._snap_seg)
            d = point_segment(gx[idx][pt], gy[idx][pt], ax, ay, bx, by)
            dist[idx], grid[idx] = first_min(first, d, owner, none)
        other = np.flatnonzero(~listed)
        if len(other):
            dist[other], grid[other] = nearest_reference(
                self._gk_tree(), gx[other], gy[other], self.snap_m
            )
        far = ~(dist <= self.snap_m)
        grid[far], dist[far] = none, np.nan
        return grid, np.where(far, np.int8(OUTSIDE), np.int8(SNAPPED)), dist

    def _gk_tree(self) -> shapely.STRtree:
        if self._tree is None:
            self._tree = shapely.STRtree(shapely.boundary(to_gk(self._geoms, self._gk)))
        return self._tree


def with_none(codes: np.ndarray) -> np.ndarray:
    """Codes plus a trailing None: position ``len(codes)`` (or -1) reads as unresolved."""
    return np.array([*codes, None], dtype=object)
