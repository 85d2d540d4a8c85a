"""Versioned edits a planner makes to the grid registry: reshape, split, merge, revert.

Each builds the grids it would open and hands them to the registry's single write path, which
validates the touched villages/communities before anything is written. Codes: a reshaped grid keeps
its code (a new version of it); split pieces and a merged grid get new codes in their village, in
reading order, never reusing a retired code. A revert reopens what an edit closed, with its old
code: that code is the same grid again, not a reissue.

A reshape arrives from a browser, rounded and perhaps shifted to GCJ-02 and back, so every vertex
within ``SNAP_DEG`` (about half a metre) of one of the grid's own stored vertices is put back on
that vertex first (neighbours share those vertices exactly): an untouched edge stays identical and
leaves no sliver. Snapping to the neighbours' other vertices too would pull newly drawn points
that pass close by onto them, one side only, and open slivers of its own. Then a vertex the
planner moved, inserted on or removed from an edge is carried into every neighbour that shares it
(``follow_shared``), and those neighbours are saved in the same edit: the grids stay seamless.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import timedelta

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import split as split_geometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import codes as C
from gis.errors import CodeError, Conflict, InvalidGeometry, NotFound
from gis.models import GridEdit
from gis.registry import EditResult, _commit_edit, load_grids, used_codes

SNAP_DEG = 5e-6  # ~0.55 m north-south, ~0.45 m east-west at 37°N: far below any drawn change
XY = tuple[float, float]


def _current(session: Session, codes: Sequence[str]) -> gpd.GeoDataFrame:
    for code in codes:
        C.validate_grid_code(code)
    frame = load_grids(session, codes=codes)
    missing = sorted(set(codes) - set(frame["code"]))
    if missing:
        raise NotFound(f"no current grid with code {', '.join(missing)}")
    return frame


def _multi(geom: BaseGeometry) -> shapely.MultiPolygon:
    if isinstance(geom, shapely.Polygon):
        return shapely.MultiPolygon([geom])
    if isinstance(geom, shapely.MultiPolygon):
        return geom
    raise InvalidGeometry(f"a grid must be a polygon, got {geom.geom_type}")


SAME_SHAPE_DEG2 = 1e-12


def reshape(session: Session, changes: Mapping[str, BaseGeometry], *, who: str, why: str,
            dry_run: bool = False, follow_shared: bool = True) -> EditResult:
    """New outlines for one or more grids; neighbours sharing a moved vertex move with it."""
    frame = _current(session, list(changes))
    old = dict(zip(frame["code"], frame.geometry, strict=True))
    near = _near(session, [*old.values(), *changes.values()])
    new = {code: _multi(snap(changes[code], shapely.get_coordinates(old[code]))) for code in changes}
    if follow_shared:
        around = dict(zip(near["code"], near.geometry, strict=True))
        carried = carry_shared(old, new, around)
        # a neighbour whose vertices only slid along its own straight edges keeps its shape (to float noise
        # of the projection, under ~0.01 m²; 1e-12 deg² at these latitudes): no new version for it
        new.update({c: g for c, g in carried.items()
                    if c in changes or g.symmetric_difference(around[c]).area > SAME_SHAPE_DEG2})
    opened = near[near["code"].isin(list(new))].reset_index(drop=True)
    opened["geometry"] = [new[c] for c in opened["code"]]
    opened = gpd.GeoDataFrame(opened, geometry="geometry", crs=4326)
    return _commit_edit(session, kind="reshape", who=who, why=why, close=list(opened["code"]),
                        opened=opened, dry_run=dry_run)


def _near(session: Session, geoms: Sequence[BaseGeometry]) -> gpd.GeoDataFrame:
    """Current grids whose outline comes within ``SNAP_DEG`` of the old or new outlines."""
    x0, y0, x1, y1 = shapely.total_bounds(np.asarray(geoms, dtype=object))
    codes = session.scalars(text(
        "SELECT code FROM grids WHERE valid_to IS NULL AND geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"),
        {"x0": x0 - SNAP_DEG, "y0": y0 - SNAP_DEG, "x1": x1 + SNAP_DEG, "y1": y1 + SNAP_DEG}).all()
    return load_grids(session, codes=list(codes))


def snap(geom: BaseGeometry, reference: np.ndarray, tolerance: float = SNAP_DEG) -> BaseGeometry:
    """``geom`` with every vertex within ``tolerance`` of a reference vertex moved onto it exactly."""
    if len(reference) == 0:
        return geom
    coords = shapely.get_coordinates(geom)
    tree = shapely.STRtree(shapely.points(reference))
    inputs, found = tree.query_nearest(shapely.points(coords), max_distance=tolerance, all_matches=False)
    coords[inputs] = reference[found]
    out = shapely.remove_repeated_points(shapely.set_coordinates(geom, coords))
    return out if out.is_valid else shapely.make_valid(out)


def _rings(geom: BaseGeometry) -> list[list[XY]]:
    polygons = geom.geoms if hasattr(geom, "geoms") else [geom]
    return [[(float(x), float(y)) for x, y in ring.coords[:-1]]
            for p in polygons for ring in (p.exterior, *p.interiors)]


def ring_changes(old: BaseGeometry, new: BaseGeometry) -> tuple[dict[XY, XY], list[tuple[XY, XY, list[XY]]], set[XY]]:
    """How a planner changed an outline: (moved vertex → new place, points inserted between two
    old neighbouring vertices, vertices removed), ring by ring in the same order."""
    moved: dict[XY, XY] = {}
    inserted: list[tuple[XY, XY, list[XY]]] = []
    removed: set[XY] = set()
    for a, b in zip(_rings(old), _rings(new), strict=False):
        if a and a[0] in b:  # the same ring drawn from another start
            k = b.index(a[0])
            b = b[k:] + b[:k]
        ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in ops:
            if tag == "replace" and i2 - i1 == j2 - j1:
                moved.update(zip(a[i1:i2], b[j1:j2], strict=True))
                continue
            if tag in ("delete", "replace"):
                removed.update(a[i1:i2])
            if tag in ("insert", "replace"):
                inserted.append((a[i1 - 1], a[i2 % len(a)], b[j1:j2]))
    return moved, inserted, removed


def _apply(ring: list[XY], moved: dict[XY, XY], inserted, removed: set[XY]) -> list[XY]:
    out: list[XY] = []
    n = len(ring)
    for i, p in enumerate(ring):
        if p not in removed:
            out.append(moved.get(p, p))
        q = ring[(i + 1) % n]
        for a, b, points in inserted:
            if any(x in ring for x in points):
                continue
            if (p, q) == (a, b):
                out.extend(points)
            elif (p, q) == (b, a):
                out.extend(reversed(points))
    return out


def _rebuild(geom: BaseGeometry, rings: list[list[XY]]) -> BaseGeometry:
    polygons, k = [], 0
    for p in (geom.geoms if hasattr(geom, "geoms") else [geom]):
        count = 1 + len(p.interiors)
        shell, *holes = rings[k:k + count]
        polygons.append(shapely.Polygon(shell, holes))
        k += count
    return shapely.MultiPolygon(polygons)


def carry_shared(old: Mapping[str, BaseGeometry], new: Mapping[str, BaseGeometry],
                 near: Mapping[str, BaseGeometry]) -> dict[str, BaseGeometry]:
    """The grids (neighbours, or other reshaped grids) that share a vertex the planner moved,
    inserted on a shared edge or removed, redrawn to follow; untouched grids are left out.

    Only a vertex that left every proposed outline is carried, and only new drawn points are
    inserted: when the proposal itself redraws a shared edge on both sides (a whole new pair of
    outlines), nothing is second-guessed. A removed vertex is not removed from the neighbours
    (that would reshape them beyond the drawn change); if it leaves a gap, validation says so. A
    neighbour takes the carried outline only when it fits the redrawn grids better than before
    (less overlap plus gap)."""
    kept = {p for g in new.values() for ring in _rings(g) for p in ring}
    stored = {p for g in near.values() for ring in _rings(g) for p in ring}
    changes: dict[str, tuple[dict[XY, XY], list[tuple[XY, XY, list[XY]]], set[XY]]] = {}
    for code in new:
        moved, inserted, removed = ring_changes(old[code], new[code])
        drawn = [(a, b, pts) for a, b, pts in inserted if not stored.intersection(pts)]
        changes[code] = ({p: q for p, q in moved.items() if p not in kept}, drawn, set())
    out: dict[str, BaseGeometry] = {}
    for code, geom in near.items():
        base = new.get(code, geom)
        if code in new and not shapely.equals_exact(base, _multi(geom), tolerance=0):
            continue  # redrawn by the planner: taken as drawn
        rings = _rings(base)
        for source, (moved, inserted, removed) in changes.items():
            if source != code:
                rings = [_apply(r, moved, inserted, removed) for r in rings]
        if rings == _rings(base):
            continue
        moved = _multi(_rebuild(base, rings))
        sources = [(old[c], new[c]) for c in changes if c != code]
        if moved.is_valid and _misfit(moved, geom, sources) < _misfit(base, geom, sources):
            out[code] = moved
    return out


def _misfit(candidate: BaseGeometry, was: BaseGeometry, sources) -> float:
    """How badly a neighbour's candidate outline fits the redrawn grids: overlap plus gap (in
    square degrees, for comparing candidates only)."""
    total = 0.0
    for before, after in sources:
        total += candidate.intersection(after).area
        total += shapely.difference(shapely.union_all([before, was]), shapely.union_all([after, candidate])).area
    return total


def split(session: Session, code: str, line: BaseGeometry, *, who: str, why: str,
          dry_run: bool = False) -> EditResult:
    """Cut one grid by a line into two or more grids with new codes."""
    frame = _current(session, [code])
    old = frame.iloc[0]
    if not isinstance(line, shapely.LineString | shapely.MultiLineString):
        raise InvalidGeometry(f"a split needs a line, got {line.geom_type}")
    pieces = split_pieces(old.geometry, line, code)
    points = [p.representative_point() for p in pieces]
    new_codes = C.assign_grid_codes(old.village_code, [p.x for p in points], [p.y for p in points],
                                    [old.kind] * len(pieces), used_codes(session, [old.village_code]))
    total = sum(p.area for p in pieces)
    rows = []
    for i, (piece, new_code) in enumerate(zip(pieces, new_codes, strict=True)):
        share = piece.area / total
        rows.append({**old.to_dict(), "code": new_code, "name": f"{old['name']}-{i + 1}",
                     "households": _share(old.households, share), "population": _share(old.population, share),
                     "geometry": _multi(piece)})
    opened = gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
    return _commit_edit(session, kind="split", who=who, why=why, close=[code], opened=opened, dry_run=dry_run)


def split_pieces(geom: BaseGeometry, line: BaseGeometry, code: str) -> list[BaseGeometry]:
    """The pieces a line cuts a grid into (two or more, else InvalidGeometry)."""
    pieces = [p for p in split_geometry(geom, line).geoms if p.area > 0]
    if len(pieces) < 2:
        raise InvalidGeometry(f"the line does not cut grid {code} in two: draw it across the grid")
    return pieces


def _share(value, share: float) -> int | None:
    if value is None or value != value:
        return None
    return int(round(float(value) * share))


def merge(session: Session, codes: Sequence[str], *, who: str, why: str, name: str | None = None,
          dry_run: bool = False) -> EditResult:
    """Join neighbouring grids of one village into one grid with a new code."""
    if len(set(codes)) < 2:
        raise CodeError("a merge needs at least two different grid codes")
    frame = _current(session, list(codes))
    villages = set(frame["village_code"])
    if len(villages) != 1:
        raise CodeError(f"grids of different villages/communities cannot be merged: {', '.join(sorted(villages))}")
    union = shapely.union_all(frame.geometry.values)
    union = shapely.MultiPolygon([union]) if isinstance(union, shapely.Polygon) else union
    if len(union.geoms) != 1:
        raise InvalidGeometry(f"grids {', '.join(codes)} do not touch: a merged grid must be one piece")
    village = villages.pop()
    kind = "dedicated" if set(frame["kind"]) == {"dedicated"} else "basic"
    point = union.representative_point()
    (new_code,) = C.assign_grid_codes(village, [point.x], [point.y], [kind], used_codes(session, [village]))
    first = frame.iloc[0].to_dict()
    row = {**first, "code": new_code, "kind": kind, "name": name or f"{first['name']}(合并)",
           "households": int(frame["households"].fillna(0).sum()) or None,
           "population": int(frame["population"].fillna(0).sum()) or None, "geometry": union}
    opened = gpd.GeoDataFrame([row], geometry="geometry", crs=4326)
    return _commit_edit(session, kind="merge", who=who, why=why, close=list(frame["code"]),
                        opened=opened, dry_run=dry_run)


# ----------------------------------------------------------------------------- undo

def revert(session: Session, edit_id: int, *, who: str, why: str, dry_run: bool = False) -> EditResult:
    """Undo an edit as a new version: close what it opened, reopen what it closed with the old codes
    and outlines. Refused (409) when a later edit has changed one of its grids since; refused (422)
    like any edit when the restored grids would no longer fit their neighbours."""
    edit = session.get(GridEdit, edit_id)
    if edit is None:
        raise NotFound(f"no grid edit #{edit_id}")
    current = load_grids(session, codes=list(edit.opened_codes))
    changed = sorted(set(edit.opened_codes) - set(current.loc[current["edit_id"] == edit_id, "code"]))
    if changed:
        raise Conflict(f"edit #{edit_id} cannot be undone: later edits changed {', '.join(changed[:10])}")
    if not edit.closed_codes:
        raise CodeError(f"edit #{edit_id} only added grids ({', '.join(edit.opened_codes)}); nothing to "
                        "restore: merge them into a neighbour instead")
    restored = _closed_by(session, edit)
    again = sorted(set(restored["code"]) & set(load_grids(session, codes=list(restored["code"]))["code"])
                   - set(edit.opened_codes))
    if again:
        raise Conflict(f"edit #{edit_id} cannot be undone: {', '.join(again)} are current again")
    restored = gpd.GeoDataFrame(restored.drop(columns=["valid_from", "valid_to", "edit_id", "who", "why"]),
                                geometry="geometry", crs=4326)
    return _commit_edit(session, kind="revert", who=who, why=f"撤销编辑 #{edit_id}：{why}",
                        close=list(edit.opened_codes), opened=restored, dry_run=dry_run)


def _closed_by(session: Session, edit: GridEdit) -> gpd.GeoDataFrame:
    """The versions ``edit`` closed, as they were the moment before it."""
    at = session.scalar(text("SELECT min(valid_from) FROM grids WHERE edit_id = :e"), {"e": edit.id})
    if at is None:
        at = session.scalar(text("SELECT max(valid_to) FROM grids WHERE code = ANY(:c)"),
                            {"c": list(edit.closed_codes)})
    frame = load_grids(session, codes=list(edit.closed_codes), as_of=at - timedelta(microseconds=1))
    return frame.reset_index(drop=True)


def recent_edits(session: Session, *, limit: int = 10, codes: Sequence[str] | None = None,
                 ids: Sequence[int] | None = None) -> list[dict]:
    """The newest edits (optionally those touching ``codes``, or those with ``ids``), newest first."""
    sql = "SELECT id, at, who, why, kind, closed_codes, opened_codes FROM grid_edits WHERE true"
    params: dict = {"n": limit}
    if codes:
        sql += " AND (closed_codes && CAST(:c AS varchar[]) OR opened_codes && CAST(:c AS varchar[]))"
        params["c"] = list(codes)
    if ids is not None:
        sql += " AND id = ANY(:ids)"
        params["ids"] = list(ids)
    return [dict(r._mapping) for r in session.execute(text(sql + " ORDER BY id DESC LIMIT :n"), params)]


def find_grids(session: Session, q: str, *, limit: int = 20) -> pd.DataFrame:
    """Current grids by part of their code, name, village or town name; exact code prefixes first."""
    rows = session.execute(text("""
        SELECT g.code, g.name, g.kind, g.village_code, v.name AS village_name, g.town_code, t.name AS town_name
        FROM grids g LEFT JOIN areas v ON v.code = g.village_code AND v.valid_to IS NULL
                     LEFT JOIN areas t ON t.code = g.town_code AND t.valid_to IS NULL
        WHERE g.valid_to IS NULL AND (g.code LIKE :prefix OR g.name ILIKE :part OR v.name ILIKE :part
                                      OR t.name ILIKE :part)
        ORDER BY (g.code LIKE :prefix) DESC, (g.name ILIKE :part) DESC, g.code LIMIT :n"""),
        {"prefix": q.strip().replace("%", "").replace("_", "") + "%", "part": "%" + q.strip().replace("%", r"\%").replace("_", r"\_") + "%",
         "n": limit}).all()
    return pd.DataFrame(rows, columns=["code", "name", "kind", "village_code", "village_name", "town_code",
                                       "town_name"])
