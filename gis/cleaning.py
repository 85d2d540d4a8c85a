"""Sub-square-metre artefacts in boundary files (微小碎洞、碎片), cleaned in the file's own coordinates.

A dissolve in a desktop GIS leaves micro-holes and crumbs where neighbouring polygons did not quite
meet; they are valid in the file's Gauss-Krüger metres, but converting them to lon/lat can make a ring
touch or cross its shell, and the polygon is then refused as self-intersecting for a flaw no one can
see. So before converting, holes and polygon parts under ``limit_m2`` (the topology tolerance, 1 m²)
are removed, each removal reported as a :class:`Fix` (row, area, where in the file's coordinates).
After converting, a polygon that was valid in the file but is not in lon/lat is repaired and reported
the same way. Polygons invalid in the file itself are left alone: that is the planner's to fix, and
topology validation reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gis.metric import area_m2

LIMIT_M2 = 1.0
_POLYGON = 3


@dataclass(frozen=True)
class Fix:
    """One artefact removed or repaired: 1-based row, what, area in m², where (file coordinates)."""

    row: int
    what: str  # "micro-hole" | "crumb" | "reprojection"
    area_m2: float
    x: float
    y: float
    geometry: BaseGeometry | None = None  # lon/lat, for the problems file

    def text(self, name: str, crs: str) -> str:
        label = {"micro-hole": f"a micro-hole of {self.area_m2:.3f} m² removed",
                 "crumb": f"a crumb polygon of {self.area_m2:.3f} m² removed",
                 "reprojection": f"repaired after conversion to lon/lat (area changed {self.area_m2:.3f} m²)"
                 }[self.what]
        return f"{name}: row {self.row}: {label} at x={self.x:.3f} y={self.y:.3f} ({_short(crs)})"


def _short(crs: str) -> str:
    return crs if len(crs) < 40 else "the file's CRS"


def clean_artefacts(geoms: np.ndarray, *, metric: bool, to_lonlat: Callable[[np.ndarray], np.ndarray],
                    limit_m2: float = LIMIT_M2) -> tuple[np.ndarray, list[Fix]]:
    """Drop holes and parts under ``limit_m2`` from polygons in the file's CRS.

    ``metric`` says the file's units are metres (areas are measured there); otherwise areas are
    measured after ``to_lonlat`` in the local Gauss-Krüger zone. A polygon made only of tiny parts is
    kept whole (it is a real, if tiny, feature: topology reports it as a sliver).
    """
    parts, owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    if len(rings) == 0:
        return geoms, []
    shells = shapely.polygons(rings)
    areas = shapely.area(shells) if metric else area_m2(to_lonlat(shells))
    exterior = np.r_[True, ring_part[1:] != ring_part[:-1]]
    tiny = areas < limit_m2
    part_tiny = np.zeros(len(parts), dtype=bool)
    part_tiny[ring_part[exterior & tiny]] = True
    all_tiny = np.ones(len(geoms), dtype=bool)
    np.logical_and.at(all_tiny, owner, part_tiny)
    drop_part = part_tiny & ~all_tiny[owner]
    drop_hole = tiny & ~exterior & ~drop_part[ring_part]
    dropped = (exterior & drop_part[ring_part]) | drop_hole
    if not dropped.any():
        return geoms, []
    out = np.array(geoms, dtype=object)
    touched = np.unique(owner[ring_part[dropped]])
    for g in touched:
        kept = []
        for p in np.flatnonzero((owner == g) & ~drop_part):
            mine = np.flatnonzero(ring_part == p)
            holes = [rings[r] for r in mine[1:] if not drop_hole[r]]
            kept.append(shapely.Polygon(rings[mine[0]], holes))
        out[g] = kept[0] if len(kept) == 1 and geoms[g].geom_type == "Polygon" else shapely.MultiPolygon(kept)
    fixes = []
    spots = shapely.point_on_surface(shells[dropped])
    lonlat = to_lonlat(shells[dropped])
    for k, r in enumerate(np.flatnonzero(dropped)):
        what = "crumb" if exterior[r] else "micro-hole"
        fixes.append(Fix(int(owner[ring_part[r]]) + 1, what, float(areas[r]), spots[k].x, spots[k].y, lonlat[k]))
    return out, fixes


def repair_reprojected(source: np.ndarray, lonlat: np.ndarray) -> tuple[np.ndarray, list[Fix]]:
    """Polygons valid in the file but not after conversion: made valid again, each reported."""
    broke = np.flatnonzero(shapely.is_valid(source) & ~shapely.is_valid(lonlat))
    if not len(broke):
        return lonlat, []
    out = np.array(lonlat, dtype=object)
    fixes = []
    for i in broke:
        repaired = _polygonal(shapely.make_valid(lonlat[i], method="structure", keep_collapsed=False))
        change = _lonlat_m2(abs(repaired.area - lonlat[i].area), repaired)
        spot = shapely.point_on_surface(source[i])
        out[i] = repaired
        fixes.append(Fix(int(i) + 1, "reprojection", change, spot.x, spot.y, repaired))
    return out, fixes


def _lonlat_m2(square_degrees: float, where: BaseGeometry) -> float:
    """Square degrees as m² at ``where``'s latitude: the change measured in lon/lat itself (measuring
    in metres would count the new vertices' bow off the projected straight edges as area)."""
    lat = np.radians(shapely.point_on_surface(where).y)
    return square_degrees * 111_320.0 * np.cos(lat) * 110_574.0


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    parts = shapely.get_parts(shapely.get_parts(geom))  # a collection may hold a MultiPolygon
    polys = [p for p in parts if shapely.get_type_id(p) == _POLYGON and not p.is_empty]
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
