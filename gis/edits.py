"""Versioned edits a planner makes to the grid registry: reshape, split, merge.

Each builds the grids it would open and hands them to the registry's single write path, which
validates the touched villages/communities before anything is written. Codes: a reshaped grid keeps
its code (a new version of it); split pieces and a merged grid get new codes in their village, in
reading order, never reusing a retired code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import geopandas as gpd
import shapely
from shapely.geometry.base import BaseGeometry
from shapely.ops import split as split_geometry
from sqlalchemy.orm import Session

from gis import codes as C
from gis.errors import CodeError, InvalidGeometry, NotFound
from gis.registry import EditResult, _commit_edit, load_grids, used_codes


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


def reshape(session: Session, changes: Mapping[str, BaseGeometry], *, who: str, why: str,
            dry_run: bool = False) -> EditResult:
    """New outlines for one or more grids (moving a shared boundary changes both neighbours)."""
    frame = _current(session, list(changes))
    frame["geometry"] = [_multi(changes[c]) for c in frame["code"]]
    return _commit_edit(session, kind="reshape", who=who, why=why, close=list(frame["code"]),
                        opened=frame, dry_run=dry_run)


def split(session: Session, code: str, line: BaseGeometry, *, who: str, why: str,
          dry_run: bool = False) -> EditResult:
    """Cut one grid by a line into two or more grids with new codes."""
    frame = _current(session, [code])
    old = frame.iloc[0]
    if not isinstance(line, shapely.LineString | shapely.MultiLineString):
        raise InvalidGeometry(f"a split needs a line, got {line.geom_type}")
    pieces = [p for p in split_geometry(old.geometry, line).geoms if p.area > 0]
    if len(pieces) < 2:
        raise InvalidGeometry(f"the line does not cut grid {code} in two: draw it across the grid")
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
