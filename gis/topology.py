"""Topology rules for grids (网格) and the area hierarchy, checked before anything is saved.

"Full coverage, seamless joints" (全域覆盖、无缝衔接) means: every polygon valid; inside a
village/community (村/社区) no two grids overlap and no ground is left uncovered; every grid lies inside
its parent; codes are well formed and unique. Overlaps, gaps and overhangs count only above a tolerance
in square metres (default 1 m², measured in the city's Gauss-Krüger zone), so the hairline slivers
every digitised boundary has do not block planners. Each problem carries its ground as lon/lat
geometry, so the grid editor can draw exactly what to fix.

Slivers are warnings, not errors (they do not make ``Report.ok`` false): a polygon part is a sliver when
its area is under ``sliver_m2`` (default 100 m², far below any real grid of 300-500 households) or its
mean width ``2·area/perimeter`` is under ``sliver_width_m`` (default 2 m; for a long strip this is its
width). Mean width is used instead of Polsby-Popper compactness because it is in metres a planner can
judge, and does not flag long but honest grids along a river or road.

Everything runs on shapely arrays: one transform to metres, one STRtree query for candidate overlaps,
one vectorised overlay per check; Python loops touch only codes and the few problems found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gis import codes as C
from gis.coords import gauss_kruger_epsg
from gis.errors import CodeError, InvalidInput
from gis.metric import from_metric, lonlat_array, to_metric

KINDS = ("empty", "wrong_type", "invalid", "bad_code", "duplicate_code", "missing_parent",
         "overlap", "gap", "outside_parent", "sliver")
WARNINGS = frozenset({"sliver"})
_POLYGON, _MULTIPOLYGON = 3, 6
_REASON_POINT = re.compile(r"\[\s*(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)\s*\]")


# --------------------------------------------------------------------------------------- results

@dataclass
class Problem:
    """One thing wrong, with the codes involved and the ground it covers (EPSG:4326, or None)."""

    kind: str
    codes: list[str]
    area_m2: float | None
    message: str
    geometry: BaseGeometry | None = None
    rows: list[int] = field(default_factory=list)  # 1-based rows of the imported file, when known
    at: tuple[float, float] | None = None  # a point of the problem in the file's own coordinates
    at_crs: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    @property
    def severity(self) -> str:
        return "warning" if self.kind in WARNINGS else "error"

    def where(self) -> str:
        """`` (row 17; at x=… y=… in EPSG:4528)`` when the file's rows and coordinates are known."""
        bits = []
        if self.rows:
            shown = ", ".join(map(str, self.rows[:8])) + (f" … +{len(self.rows) - 8}" if len(self.rows) > 8 else "")
            bits.append(f"row{'s' if len(self.rows) > 1 else ''} {shown}")
        if self.at is not None:
            bits.append(f"at x={self.at[0]:.2f} y={self.at[1]:.2f} in {self.at_crs}")
        return f" ({'; '.join(bits)})" if bits else ""

    def to_feature(self) -> dict[str, Any]:
        geom = None if self.geometry is None or self.geometry.is_empty else shapely.geometry.mapping(self.geometry)
        area = None if self.area_m2 is None else round(float(self.area_m2), 3)
        props: dict[str, Any] = {"kind": self.kind, "severity": self.severity, "codes": list(self.codes),
                 "area_m2": area, "message": self.message}
        if self.rows:
            props["rows"] = list(self.rows)
        if self.at is not None:
            props |= {"x": round(self.at[0], 3), "y": round(self.at[1], 3), "crs": self.at_crs}
        return {"type": "Feature", "geometry": geom, "properties": props}


@dataclass
class Report:
    """The outcome of one validation: problems plus how much was checked (e.g. grids, villages)."""

    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for problem in self.problems:
            counts[problem.kind] += 1
        return counts

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.kind not in WARNINGS]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.kind in WARNINGS]

    @property
    def ok(self) -> bool:
        """True when nothing but warnings (slivers) was found."""
        return not self.errors

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": dict(self.checked), "counts": self.counts,
                "errors": len(self.errors), "warnings": len(self.warnings)}

    def to_text(self) -> str:
        """Readable lines for the CLI: one verdict line, then one line per problem."""
        checked = ", ".join(f"{n} {what}" for what, n in self.checked.items()) or "nothing"
        found = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n)
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"{verdict}: checked {checked}; " + (f"found {found}" if found else "no problems")]
        lines += [f"  {p.severity:7} {p.kind:14} {p.message}{p.where()}" for p in self.problems]
        return "\n".join(lines)

    def to_geojson(self) -> dict[str, Any]:
        """A FeatureCollection, one Feature per problem (geometry null when there is no ground)."""
        return {"type": "FeatureCollection", "features": [p.to_feature() for p in self.problems]}


# --------------------------------------------------------------------------------------- layers

@dataclass
class _Layer:
    """One set of features being checked: codes, labels for messages, shapes in lon/lat and metres."""

    what: str  # "grid", "village", "area"
    codes: list[str]
    labels: list[str]
    usable: np.ndarray  # polygonal and non-empty (invalid ones repaired for the spatial checks)
    repaired: np.ndarray  # lon/lat, None where unusable
    metric: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))

    def __len__(self) -> int:
        return len(self.codes)


def _missing(value: Any) -> bool:
    """None, NaN, NaT and pd.NA: what a nullable column holds where nothing was given."""
    return value is None or (not isinstance(value, str) and bool(np.all(pd.isna(value))))


def _code_text(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _column(frame: gpd.GeoDataFrame, name: str) -> list[Any]:
    if name not in frame:
        return [None] * len(frame)
    return [None if _missing(v) else v for v in frame[name]]


def _layer(frame: gpd.GeoDataFrame, what: str, problems: list[Problem],
           row_whats: list[str] | None = None) -> _Layer:
    """Read one table; ``row_whats`` names each row in messages (e.g. its level) instead of ``what``."""
    if "code" not in frame:
        raise InvalidInput(f"the {what} table needs a 'code' column (has {', '.join(map(str, frame.columns))})")
    codes = [_code_text(c) for c in frame["code"]]
    names = _column(frame, "name")
    whats = row_whats or [what] * len(codes)
    labels = [f"{w} {c or '(no code)'}" + (f" {n}" if n else "")
              for w, c, n in zip(whats, codes, names, strict=True)]
    lonlat = lonlat_array(frame)
    usable, repaired = _check_shapes(what, codes, labels, lonlat, problems)
    return _Layer(what, codes, labels, usable, repaired)


def _check_shapes(what: str, codes: list[str], labels: list[str], geoms: np.ndarray,
                  problems: list[Problem]) -> tuple[np.ndarray, np.ndarray]:
    """Report empty, non-polygon and invalid shapes; hand back repaired polygons for the rest.

    Invalid polygons are repaired (not dropped) for the later checks, so a bowtie is reported once as
    invalid rather than again as a gap where it should have been.
    """
    type_id = shapely.get_type_id(geoms)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    polygonal = ((type_id == _POLYGON) | (type_id == _MULTIPOLYGON)) & ~empty
    valid = np.zeros(len(geoms), dtype=bool)
    valid[polygonal] = shapely.is_valid(geoms[polygonal])
    for i in np.flatnonzero(empty):
        problems.append(Problem("empty", [codes[i]], None, f"{labels[i]} has no geometry"))
    for i in np.flatnonzero(~empty & ~polygonal):
        problems.append(Problem("wrong_type", [codes[i]], None,
                                f"{labels[i]} is a {geoms[i].geom_type}, not a Polygon or MultiPolygon",
                                geoms[i]))
    bad = np.flatnonzero(polygonal & ~valid)
    for i, reason in zip(bad, shapely.is_valid_reason(geoms[bad]), strict=True):
        problems.append(Problem("invalid", [codes[i]], None, f"{labels[i]} is not a valid polygon: {reason}",
                                _reason_point(reason) or geoms[i]))
    repaired = np.full(len(geoms), None, dtype=object)
    repaired[polygonal] = geoms[polygonal]
    repaired[bad] = _polygonal(shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False))
    usable = polygonal & ~shapely.is_empty(repaired) & ~shapely.is_missing(repaired)
    repaired[~usable] = None
    return usable, repaired


def _reason_point(reason: str) -> BaseGeometry | None:
    """The location GEOS names in an invalidity reason, e.g. ``Self-intersection[118.8 36.9]``."""
    match = _REASON_POINT.search(reason or "")
    return shapely.Point(float(match.group(1)), float(match.group(2))) if match else None


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygon parts of each geometry (overlays may add lines and points)."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), None, dtype=object)
    parts, index = shapely.get_parts(geoms, return_index=True)
    while True:  # collections may nest multi-geometries one level down
        multi = np.isin(shapely.get_type_id(parts), (4, 5, 6, 7))
        if not multi.any():
            break
        sub, sub_index = shapely.get_parts(parts[multi], return_index=True)
        parts = np.concatenate([parts[~multi], sub])
        index = np.concatenate([index[~multi], index[multi][sub_index]])
    keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
    for i in np.unique(index[keep]):
        mine = parts[keep][index[keep] == i]
        out[i] = mine[0] if len(mine) == 1 else shapely.MultiPolygon(list(mine))
    return out


def _to_metric(layers: list[_Layer]) -> int | None:
    """Project every layer's usable shapes into one GK zone (chosen from all of them); its EPSG."""
    every = np.concatenate([layer.repaired[layer.usable] for layer in layers])
    if len(every) == 0:
        for layer in layers:
            layer.metric = np.full(len(layer), None, dtype=object)
        return None
    bounds = shapely.total_bounds(every)
    epsg = gauss_kruger_epsg(float(bounds[0] + bounds[2]) / 2.0)
    for layer in layers:
        layer.metric = to_metric(layer.repaired, epsg)
    return epsg


def _back(geoms: list[BaseGeometry], epsg: int) -> list[BaseGeometry]:
    return list(from_metric(np.asarray(geoms, dtype=object), epsg)) if geoms else []


# --------------------------------------------------------------------------------------- codes

def _check_codes(layer: _Layer, check: Callable[[int], object], problems: list[Problem]) -> None:
    for i in range(len(layer)):
        try:
            check(i)
        except (CodeError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            problems.append(Problem("bad_code", [layer.codes[i]], None, f"{layer.labels[i]}: {message}",
                                    layer.repaired[i]))


def _check_duplicates(layer: _Layer, problems: list[Problem]) -> None:
    for code in C.find_duplicates(c for c in layer.codes if c):
        rows = [i for i, c in enumerate(layer.codes) if c == code]
        shapes = [g for g in layer.repaired[rows] if g is not None]
        problems.append(Problem("duplicate_code", [code], None,
                                f"{layer.what} code {code} is used by {len(rows)} {layer.what}s (rows "
                                f"{', '.join(str(i + 1) for i in rows)})",
                                shapely.union_all(shapes) if shapes else None))


def _parent_index(parents: _Layer, parent_codes: Sequence[str]) -> np.ndarray:
    """Row of each child's parent in ``parents`` (first row if duplicated), -1 when absent."""
    first: dict[str, int] = {}
    for i, code in enumerate(parents.codes):
        first.setdefault(code, i)
    return np.array([first.get(p, -1) if p else -1 for p in parent_codes], dtype=np.int64)


def _check_missing_parents(child: _Layer, parent_codes: Sequence[str], index: np.ndarray,
                           parent_what: str, problems: list[Problem]) -> None:
    for i in map(int, np.flatnonzero(index < 0)):
        parent = parent_codes[i]
        why = f"names {parent_what} {parent}, which is not in the set" if parent else f"names no {parent_what}"
        problems.append(Problem("missing_parent", [child.codes[i]] + ([parent] if parent else []), None,
                                f"{child.labels[i]} {why}", child.repaired[i]))


# --------------------------------------------------------------------------------------- geometry

def _check_overlaps(layer: _Layer, rows: np.ndarray, tolerance: float, epsg: int,
                    problems: list[Problem]) -> None:
    """Pairs among ``rows`` whose shared area exceeds ``tolerance``.

    The STRtree keeps far-apart pairs out; a DE-9IM test (interiors meet in 2-D) then drops the many
    neighbours that merely touch, at a third of the cost of overlaying them.
    """
    metric = layer.metric[rows]
    left, right = shapely.STRtree(metric).query(metric, predicate="intersects")
    keep = left < right
    a, b = rows[left[keep]], rows[right[keep]]
    inner = shapely.relate_pattern(layer.metric[a], layer.metric[b], "2********")
    a, b = a[inner], b[inner]
    shared = shapely.intersection(layer.metric[a], layer.metric[b])
    areas = shapely.area(shared)
    big = np.flatnonzero(areas > tolerance)
    shapes = _back(list(_polygonal(shared[big])), epsg)
    for k, shape in zip(big, shapes, strict=True):
        i, j = a[k], b[k]
        problems.append(Problem("overlap", [layer.codes[i], layer.codes[j]], float(areas[k]),
                                f"{layer.labels[i]} and {layer.labels[j]} overlap by {areas[k]:.1f} m²",
                                shape))


def _check_gaps(parent: _Layer, child: _Layer, index: np.ndarray, tolerance: float, epsg: int,
                problems: list[Problem], *, require_children: bool) -> None:
    """Each part of a parent left uncovered by its children, above ``tolerance``."""
    members = np.flatnonzero((index >= 0) & child.usable)
    order = members[np.argsort(index[members], kind="stable")]
    groups = np.split(order, np.flatnonzero(np.diff(index[order])) + 1) if len(order) else []
    covered = {int(index[g[0]]): shapely.union_all(child.metric[g]) for g in groups}
    rows = [int(k) for k in np.flatnonzero(parent.usable) if require_children or int(k) in covered]
    unions = np.array([covered.get(k, shapely.Polygon()) for k in rows], dtype=object)
    left = shapely.difference(parent.metric[rows], unions) if rows else np.empty(0, dtype=object)
    messages = [f"{parent.labels[k]} " + (f"is not covered by its {child.what}s" if k in covered
                                          else f"has no {child.what}s") for k in rows]
    _report_parts("gap", left, [parent.codes[k] for k in rows], messages, tolerance, epsg, problems)


def _check_holes(child: _Layer, group_codes: list[str], tolerance: float, epsg: int,
                 problems: list[Problem]) -> None:
    """Without parent outlines, the gaps one can still see: holes inside the union of a group."""
    codes = np.array(group_codes, dtype=object)
    rows = np.flatnonzero(child.usable)
    holes, owners = [], []
    for code in sorted(set(codes[rows])):
        union = shapely.union_all(child.metric[rows[codes[rows] == code]])
        for part in shapely.get_parts(union):
            rings = shapely.get_rings(part)[1:]
            holes.extend(shapely.polygons(rings))
            owners.extend([code] * len(rings))
    _report_parts("gap", np.array(holes, dtype=object), owners,
                  [f"the {child.what}s of {o} leave a hole" for o in owners], tolerance, epsg, problems)


def _report_parts(kind: str, geoms: np.ndarray, codes: list[str], messages: list[str], tolerance: float,
                  epsg: int, problems: list[Problem]) -> None:
    if len(geoms) == 0:
        return
    parts, owner = shapely.get_parts(_polygonal(geoms), return_index=True)
    areas = shapely.area(parts)
    big = np.flatnonzero(areas > tolerance)
    for k, shape in zip(big, _back(list(parts[big]), epsg), strict=True):
        i = owner[k]
        problems.append(Problem(kind, [codes[i]], float(areas[k]), f"{messages[i]}: {areas[k]:.1f} m²", shape))


def _check_outside(parent: _Layer, child: _Layer, index: np.ndarray, tolerance: float, epsg: int,
                   problems: list[Problem]) -> None:
    """Children reaching outside their parent by more than ``tolerance`` (a prepared ``covers``
    test lets the many children well inside skip the overlay)."""
    rows = np.flatnonzero((index >= 0) & child.usable)
    rows = rows[parent.usable[index[rows]]]
    shapely.prepare(parent.metric[parent.usable])
    rows = rows[~shapely.covers(parent.metric[index[rows]], child.metric[rows])]
    if not len(rows):
        return
    outside = shapely.difference(child.metric[rows], parent.metric[index[rows]])
    areas = shapely.area(outside)
    big = np.flatnonzero(areas > tolerance)
    for k, shape in zip(big, _back(list(_polygonal(outside[big])), epsg), strict=True):
        i, p = rows[k], index[rows[k]]
        problems.append(Problem("outside_parent", [child.codes[i], parent.codes[p]], float(areas[k]),
                                f"{child.labels[i]} reaches {areas[k]:.1f} m² outside {parent.labels[p]}",
                                shape))


def _check_slivers(layer: _Layer, sliver_m2: float, width_m: float, epsg: int,
                   problems: list[Problem]) -> None:
    parts, owner = shapely.get_parts(layer.metric, return_index=True)
    areas, perimeters = shapely.area(parts), shapely.length(parts)
    width = 2.0 * areas / np.maximum(perimeters, 1e-12)
    thin = np.flatnonzero((areas < sliver_m2) | (width < width_m))
    for k, shape in zip(thin, _back(list(parts[thin]), epsg), strict=True):
        i = owner[k]
        problems.append(Problem("sliver", [layer.codes[i]], float(areas[k]),
                                f"{layer.labels[i]} has a sliver part of {areas[k]:.1f} m² "
                                f"(mean width {width[k]:.2f} m)", shape))


def _sorted(problems: list[Problem]) -> list[Problem]:
    rank = {kind: n for n, kind in enumerate(KINDS)}
    return sorted(problems, key=lambda p: (rank[p.kind], p.codes))


# --------------------------------------------------------------------------------------- entry points

def validate_grids(grids: gpd.GeoDataFrame, villages: gpd.GeoDataFrame | None = None, *,
                   tolerance_m2: float = 1.0, sliver_m2: float = 100.0,
                   sliver_width_m: float = 2.0) -> Report:
    """Check a grid set (columns code, village_code, kind, geometry; optional name) against its
    villages/communities (columns code, geometry; optional name).

    Overlaps are checked across all grids, not only within a village: a grid drawn over the
    neighbouring village's ground is as wrong as one over its sibling. Without ``villages``, gaps
    are the holes inside each village's union of grids, and parents are not checked.
    """
    problems: list[Problem] = []
    grid = _layer(grids, "grid", problems)
    village_codes = [_code_text(v) or (c[:12] if len(c) == 15 else "")
                     for v, c in zip(_column(grids, "village_code"), grid.codes, strict=True)]
    kinds = _column(grids, "kind")
    _check_codes(grid, lambda i: _grid_code(grid.codes[i], village_codes[i], kinds[i]), problems)
    _check_duplicates(grid, problems)
    layers = [grid]
    if villages is not None:
        village = _layer(villages, "village", problems)
        _check_duplicates(village, problems)
        index = _parent_index(village, village_codes)
        _check_missing_parents(grid, village_codes, index, "village/community", problems)
        layers.append(village)
    epsg = _to_metric(layers)
    if epsg is not None:
        _check_overlaps(grid, np.flatnonzero(grid.usable), tolerance_m2, epsg, problems)
        if villages is None:
            _check_holes(grid, village_codes, tolerance_m2, epsg, problems)
        else:
            _check_gaps(village, grid, index, tolerance_m2, epsg, problems, require_children=True)
            _check_outside(village, grid, index, tolerance_m2, epsg, problems)
        _check_slivers(grid, sliver_m2, sliver_width_m, epsg, problems)
    checked = {"grids": len(grid)} | ({"villages": len(layers[1])} if villages is not None else {})
    return Report(_sorted(problems), checked)


def validate_areas(areas: gpd.GeoDataFrame, *, tolerance_m2: float = 1.0, sliver_m2: float = 100.0,
                   sliver_width_m: float = 2.0) -> Report:
    """Check the area hierarchy (columns code, level in district/town/village, parent_code, geometry;
    optional name): codes against level and parent, siblings neither overlapping nor leaving gaps in
    their parent, each inside its parent.

    Gaps are only looked for in parents that have children in the set, so districts and towns can be
    registered before their villages; areas of one level must not overlap anywhere, whatever their
    parent.
    """
    problems: list[Problem] = []
    levels = [_code_text(v) for v in _column(areas, "level")]
    layer = _layer(areas, "area", problems, [lv or "area" for lv in levels])
    parents = [_code_text(p) or _derived_parent(c) for p, c in zip(_column(areas, "parent_code"),
                                                                 layer.codes, strict=True)]
    _check_codes(layer, lambda i: _area_code(layer.codes[i], levels[i], parents[i]), problems)
    _check_duplicates(layer, problems)
    index = _parent_index(layer, parents)
    has_parent = np.array([bool(p) for p in parents])
    _check_missing_parents(_subset(layer, has_parent), [p for p in parents if p], index[has_parent],
                           "parent area", problems)
    epsg = _to_metric([layer])
    if epsg is not None:
        for level in sorted(set(levels)):
            rows = np.flatnonzero(np.array([lv == level for lv in levels]) & layer.usable)
            _check_overlaps(layer, rows, tolerance_m2, epsg, problems)
        _check_gaps(layer, layer, index, tolerance_m2, epsg, problems, require_children=False)
        _check_outside(layer, layer, index, tolerance_m2, epsg, problems)
        _check_slivers(layer, sliver_m2, sliver_width_m, epsg, problems)
    checked = {f"{lv}s": levels.count(lv) for lv in ("district", "town", "village") if lv in levels}
    return Report(_sorted(problems), checked or {"areas": len(layer)})


def _grid_code(code: str, village_code: str, kind: Any) -> None:
    if not code:
        raise CodeError("has no grid code")
    if kind is not None and kind not in {k.value for k in C.GridKind}:
        raise CodeError(f"unknown grid kind {kind!r}: use basic or dedicated")
    C.validate_grid_code(code, village_code=village_code or None, kind=kind)


def _area_code(code: str, level: str, parent: str) -> None:
    if level and level not in {lv.value for lv in C.Level}:
        raise CodeError(f"unknown level {level!r}: use district, town or village")
    C.validate_area_code(code, level or C.level_of(code), parent or None)


def _derived_parent(code: str) -> str:
    try:
        return C.parent_code(code) or ""
    except CodeError:
        return ""


def _subset(layer: _Layer, mask: np.ndarray) -> _Layer:
    rows = np.flatnonzero(mask)
    return _Layer(layer.what, [layer.codes[i] for i in rows], [layer.labels[i] for i in rows],
                  layer.usable[rows], layer.repaired[rows])
