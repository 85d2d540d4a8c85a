"""Standard test geometries: drawn in metres in EPSG:4528 (CGCS2000 GK zone 40) near Shouguang, handed
to the code under test in EPSG:4326, so every expected area is known exactly.

``local`` coordinates are metres east/north of ORIGIN (lon 118.8, lat 36.9 rounded to whole metres).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gis.coords import from_wgs84, to_wgs84

EPSG = 4528
_X, _Y = from_wgs84(118.8, 36.9, f"EPSG:{EPSG}")
ORIGIN = (float(np.round(_X)), float(np.round(_Y)))  # GK metres of the local (0, 0)

DISTRICT = "370783000000"  # 寿光市
TOWN = "370783105000"  # a town (镇)
VILLAGE = "370783105201"  # a village (村委会)
VILLAGE_2 = "370783105202"


def code(village: str, seq: int) -> str:
    return f"{village}{seq:03d}"


def lonlat(geom: BaseGeometry | None) -> BaseGeometry | None:
    """Local metres → EPSG:4326."""
    if geom is None:
        return None

    def back(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_wgs84(xy[:, 0] + ORIGIN[0], xy[:, 1] + ORIGIN[1], f"EPSG:{EPSG}")
        return np.column_stack([lon, lat])

    return shapely.transform(geom, back)


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A rectangle in local metres."""
    return shapely.box(x0, y0, x1, y1)


def frame(rows: Iterable[dict], local: bool = True) -> gpd.GeoDataFrame:
    """A GeoDataFrame in EPSG:4326 from dicts whose ``geometry`` is in local metres."""
    rows = [dict(r) for r in rows]
    for r in rows:
        r["geometry"] = lonlat(r["geometry"]) if local else r["geometry"]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


def grid(seq: int, geometry: BaseGeometry | None, village: str = VILLAGE, kind: str | None = None,
         name: str | None = None) -> dict:
    kind = kind or ("dedicated" if seq >= 900 else "basic")
    return {"code": code(village, seq), "village_code": village, "kind": kind,
            "name": name or f"{seq:03d}号网格", "geometry": geometry}


# ----------------------------------------------------------------------------- the tiny village

VILLAGE_BOX = box(0, 0, 300, 200)  # 东关村: 6 ha, three grids of 100 m × 200 m side by side
THREE = [box(0, 0, 100, 200), box(100, 0, 200, 200), box(200, 0, 300, 200)]


def villages(shapes: Sequence[tuple[str, BaseGeometry]] = ((VILLAGE, VILLAGE_BOX),)) -> gpd.GeoDataFrame:
    names = {VILLAGE: "东关村", VILLAGE_2: "西关村"}
    return frame({"code": c, "name": names.get(c, "某村"), "geometry": g} for c, g in shapes)


def three_grids(shapes: Sequence[BaseGeometry | None] = tuple(THREE)) -> gpd.GeoDataFrame:
    """The clean village's grids 001-003 (west→east), or the same codes with other shapes."""
    return frame(grid(i + 1, g) for i, g in enumerate(shapes))


def bowtie(x0: float = 100, y0: float = 0, size: float = 100) -> shapely.Polygon:
    """A self-intersecting quadrilateral crossing at its centre."""
    return shapely.Polygon([(x0, y0), (x0 + size, y0 + 2 * size), (x0 + size, y0), (x0, y0 + 2 * size)])


# ----------------------------------------------------------------------------- the area hierarchy

def areas() -> gpd.GeoDataFrame:
    """District ⊃ town ⊃ two villages, seamless: the town is the district, the villages halve it."""
    rows = [
        {"code": DISTRICT, "level": "district", "parent_code": None, "name": "寿光市", "geometry": box(0, 0, 600, 200)},
        {"code": TOWN, "level": "town", "parent_code": DISTRICT, "name": "某镇", "geometry": box(0, 0, 600, 200)},
        {"code": VILLAGE, "level": "village", "parent_code": TOWN, "name": "东关村", "geometry": box(0, 0, 300, 200)},
        {"code": VILLAGE_2, "level": "village", "parent_code": TOWN, "name": "西关村", "geometry": box(300, 0, 600, 200)},
    ]
    return frame(rows)


# ----------------------------------------------------------------------------- a synthetic city

def _lattice_square(col: int, row: int, per_side: int, size: float) -> shapely.Polygon:
    """Square (col, row) with ``per_side`` segments per side, every vertex on one global lattice, so
    neighbours share identical vertices (as a real seamless grid set does)."""
    k = np.arange(per_side)
    step = size / per_side
    x0, y0 = col * per_side, row * per_side
    south = np.column_stack([x0 + k, np.full(per_side, y0)])
    east = np.column_stack([np.full(per_side, x0 + per_side), y0 + k])
    north = np.column_stack([x0 + per_side - k, np.full(per_side, y0 + per_side)])
    west = np.column_stack([np.full(per_side, x0), y0 + per_side - k])
    ring = np.vstack([south, east, north, west]) * step
    return shapely.Polygon(ring)


def synthetic_city(n: int = 37, vertices: int = 100, n_villages: int = 3,
                   size: float = 250.0) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """An n×n block of ``size``-metre square grids with ``vertices`` vertices each, split west→east
    into ``n_villages`` villages of whole columns. Seamless: it must validate without a problem."""
    per_side = vertices // 4
    columns = np.array_split(np.arange(n), n_villages)
    grid_rows, village_rows = [], []
    for v, cols in enumerate(columns):
        village = f"370783105{201 + v:03d}"
        squares = [_lattice_square(c, r, per_side, size) for r in range(n - 1, -1, -1) for c in cols]
        grid_rows += [grid(i + 1, sq, village) for i, sq in enumerate(squares)]
        village_rows.append({"code": village, "name": f"{v + 1}村", "geometry": shapely.union_all(squares)})
    return frame(grid_rows), frame(village_rows)
