"""The grid registry in PostGIS: loading, importing and versioned edits.

Every write goes through :func:`_commit_edit`: it validates the resulting grid set of each affected
village/community first (topology rules in :mod:`gis.topology`), then closes old rows and opens new
ones under one ``grid_edits`` row recording who and why. Nothing is ever deleted. The registry
version is the id of the newest edit: resolvers compare it to know their index is stale.

What hangs off a grid (sensors, cameras, worker assignments, grid workers' accounts) lives in layers/,
which gis/ must not import. So the registry offers a hook instead: :func:`on_grid_edit` registers
followers that ``_commit_edit`` runs inside the edit's own transaction, after the rows are written;
each returns a summary of what it moved, collected in :attr:`EditResult.followed`. layers/follow.py
registers them (its ``install()`` is called by the API app and the CLI's grid commands).

Writes are serialised by a transaction-level advisory lock, taken before validation: each edit
validates what the previous one committed, and edit ids (the registry version) commit in order. A
follower resolving points through the session builds the resolver's index for its uncommitted version;
without the lock, a concurrent edit could commit a higher id whose index was built without this one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2.shape import from_shape
from sqlalchemy import ColumnElement, func, insert, select, text, update
from sqlalchemy.orm import Session

from gis import codes as C
from gis.errors import CodeError, Conflict, InvalidGeometry, NotFound, TopologyError
from gis.models import Area, Grid, GridEdit
from gis.topology import Report, validate_areas, validate_grids

GRID_COLUMNS = ["code", "name", "kind", "village_code", "town_code", "district_code",
                "households", "population", "valid_from", "valid_to", "edit_id", "who", "why"]
AREA_COLUMNS = ["code", "level", "kind", "name", "parent_code", "valid_from", "valid_to", "edit_id"]


@dataclass
class EditResult:
    """What an import or edit did (or, on a dry run, would do)."""

    edit_id: int | None
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    report: Report | None = None
    dry_run: bool = False
    followed: dict[str, Any] = field(default_factory=dict)  # what the followers moved (on_grid_edit)


@dataclass(frozen=True)
class GridChange:
    """One written edit as a follower sees it: the closed versions as they were, the opened grids.

    Both frames have the registry's grid columns (code, name, kind, village_code, town_code, ...) and
    lon/lat geometry. ``shared`` is scratch space for followers of the same edit (e.g. a successor
    mapping computed once)."""

    edit_id: int
    kind: str
    closed: gpd.GeoDataFrame
    opened: gpd.GeoDataFrame
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def closed_codes(self) -> list[str]:
        return list(self.closed["code"])

    @property
    def opened_codes(self) -> list[str]:
        return list(self.opened["code"])


Follower = Callable[[Session, GridChange], "dict[str, Any] | None"]
_FOLLOWERS: list[Follower] = []
_LOCK_KEY = 0x6F6E656D6170  # "onemap": pg_advisory_xact_lock key serialising registry writes
log = logging.getLogger("onemap.registry")


def on_grid_edit(callback: Follower) -> Follower:
    """Run ``callback(session, change)`` after every written grid edit, in its transaction.

    Registering the same callable again does nothing. The callback's dict is merged into
    :attr:`EditResult.followed` (keys must not repeat across followers); an exception aborts the whole
    edit. Dry runs write nothing and run no follower."""
    if callback not in _FOLLOWERS:
        _FOLLOWERS.append(callback)
    return callback


def grid_edit_followers() -> tuple[Follower, ...]:
    """The registered followers, in the order they run."""
    return tuple(_FOLLOWERS)


def _follow(session: Session, change: GridChange) -> dict[str, Any]:
    if not _FOLLOWERS and change.closed_codes:
        log.warning("grid edit %s closed %d grids but no follower is installed: sensors, cameras and "
                    "assignments keep the closed codes (call layers.follow.install())",
                    change.edit_id, len(change.closed_codes))
    followed: dict[str, Any] = {}
    for callback in _FOLLOWERS:
        summary = callback(session, change) or {}
        clash = sorted(set(summary) & set(followed))
        if clash:
            raise RuntimeError(f"grid edit followers both report {', '.join(clash)}")
        followed.update(summary)
    return followed


# --------------------------------------------------------------------------- reading

VERSION_SQL = "SELECT coalesce(max(id), 0) FROM grid_edits"  # the registry version, for raw connections


def registry_version(session: Session) -> int:
    """The id of the newest edit (0 for an empty registry): the registry version every cache keys on."""
    return int(session.scalar(text(VERSION_SQL)) or 0)


def version_as_of(session: Session, as_of: datetime) -> tuple[int, int]:
    """(newest grid row id, number of grids) valid at ``as_of``: names the grid set of that moment."""
    row = session.execute(select(func.coalesce(func.max(Grid.id), 0), func.count())
                          .where(valid_at(Grid, as_of))).one()
    return int(row[0]), int(row[1])


Versioned = type[Grid] | type[Area]


def current(model: Versioned) -> ColumnElement[bool]:
    """The rows of a versioned table (grids, areas) that are current: ``valid_to IS NULL``."""
    return model.valid_to.is_(None)


def valid_at(model: Versioned, as_of: datetime | None) -> ColumnElement[bool]:
    """The rows valid at ``as_of`` (None: the current ones)."""
    if as_of is None:
        return current(model)
    return (model.valid_from <= as_of) & (current(model) | (model.valid_to > as_of))



def area_names(session: Session, codes: Iterable[str] | None = None) -> dict[str, str]:
    """Current area code → name (every area, or those of ``codes``)."""
    stmt = select(Area.code, Area.name).where(current(Area))
    if codes is not None:
        stmt = stmt.where(Area.code.in_(list(codes)))
    return {code: name for code, name in session.execute(stmt).all()}


def extent(session: Session, of: Literal["grids", "areas"]) -> list[float] | None:
    """[minx, miny, maxx, maxy] of the current grids or areas (None when there are none)."""
    model: Versioned = Grid if of == "grids" else Area
    box = func.ST_Extent(model.geom)
    row = session.execute(select(func.ST_XMin(box), func.ST_YMin(box), func.ST_XMax(box), func.ST_YMax(box))
                          .where(current(model))).one()
    return None if row[0] is None else [float(v) for v in row]


def current_counts(session: Session) -> dict[str, int]:
    """How many current grids and areas of each level there are: ``{"grids": n, "towns": n, ...}``."""
    counts = {"grids": int(session.scalar(select(func.count()).select_from(Grid).where(current(Grid))) or 0)}
    for level, n in session.execute(select(Area.level, func.count()).where(current(Area)).group_by(Area.level)):
        counts[f"{level}s"] = int(n)
    return counts


def has_grids(session: Session) -> bool:
    """Whether any grid is current."""
    return bool(session.scalar(select(select(Grid.id).where(current(Grid)).exists())))


def ping(session: Session) -> None:
    """One round trip: raises when the database cannot answer."""
    session.execute(select(1))


def _frame(session: Session, stmt, columns: Sequence[str]) -> gpd.GeoDataFrame:
    rows = session.execute(stmt).all()
    data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
    wkb = [bytes(row[-1]) for row in rows] if rows else []
    geoms = shapely.from_wkb(wkb) if wkb else []
    return gpd.GeoDataFrame(pd.DataFrame(data, columns=list(columns)), geometry=gpd.GeoSeries(geoms, crs=4326))


def load_grids(session: Session, *, as_of: datetime | None = None, town: str | None = None,
               village: str | None = None, codes: Iterable[str] | None = None,
               district: str | None = None, villages: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """Grids valid now (or ``as_of``), optionally filtered by area or code, ordered by code."""
    cols = [getattr(Grid, c) for c in GRID_COLUMNS]
    stmt = select(*cols, func.ST_AsBinary(Grid.geom)).where(valid_at(Grid, as_of))
    if town:
        stmt = stmt.where(Grid.town_code == town)
    if village:
        stmt = stmt.where(Grid.village_code == village)
    if district:
        stmt = stmt.where(Grid.district_code == district)
    if villages is not None:
        stmt = stmt.where(Grid.village_code.in_(list(villages)))
    if codes is not None:
        stmt = stmt.where(Grid.code.in_(list(codes)))
    return _frame(session, stmt.order_by(Grid.code), GRID_COLUMNS)


def load_areas(session: Session, *, level: str | None = None, parent: str | None = None,
               as_of: datetime | None = None, codes: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    cols = [getattr(Area, c) for c in AREA_COLUMNS]
    stmt = select(*cols, func.ST_AsBinary(Area.geom)).where(valid_at(Area, as_of))
    if level:
        stmt = stmt.where(Area.level == level)
    if parent:
        stmt = stmt.where(Area.parent_code == parent)
    if codes is not None:
        stmt = stmt.where(Area.code.in_(list(codes)))
    return _frame(session, stmt.order_by(Area.code), AREA_COLUMNS)


def grid_history(session: Session, code: str) -> gpd.GeoDataFrame:
    """Every version of one grid code, oldest first (a code that never existed → NotFound)."""
    C.validate_grid_code(code)
    cols = [getattr(Grid, c) for c in GRID_COLUMNS]
    stmt = select(*cols, func.ST_AsBinary(Grid.geom)).where(Grid.code == code).order_by(Grid.valid_from, Grid.id)
    frame = _frame(session, stmt, GRID_COLUMNS)
    if frame.empty:
        raise NotFound(f"grid {code} has never been registered")
    return frame


def used_codes(session: Session, village_codes: Iterable[str]) -> set[str]:
    """Every grid code ever issued in these villages (retired codes are never reissued)."""
    rows = session.scalars(select(Grid.code).where(Grid.village_code.in_(list(village_codes))).distinct())
    return set(rows)


# --------------------------------------------------------------------------- preparing input

def _as_multipolygons(geoms: gpd.GeoSeries) -> np.ndarray:
    values = np.asarray(geoms.values, dtype=object)
    kinds = shapely.get_type_id(values)
    bad = np.flatnonzero((kinds != 3) & (kinds != 6))
    if len(bad):
        names = sorted({shapely.get_type_id(values[i]) for i in bad})
        raise InvalidGeometry(f"expected polygons; rows {_rows(bad)} have geometry type ids {names}")
    out = values.copy()
    polys = kinds == 3
    out[polys] = [shapely.MultiPolygon([g]) for g in values[polys]]
    return out


def _rows(idx: Iterable[int], limit: int = 10) -> str:
    idx = [int(i) + 1 for i in idx]
    shown = ", ".join(map(str, idx[:limit]))
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def prepare_grids(session: Session, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Normalise an incoming grid frame: codes validated or assigned, parents filled, kinds set."""
    if frame.empty:
        raise InvalidGeometry("no grids to import: the input has no features")
    frame = frame.to_crs(4326) if frame.crs and not frame.crs.equals("EPSG:4326") else frame.copy()
    frame = frame.set_crs(4326, allow_override=True)
    frame["geometry"] = _as_multipolygons(frame.geometry)
    for col in ("code", "village_code", "kind", "name", "households", "population"):
        if col not in frame:
            frame[col] = None
    frame["code"] = frame["code"].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "" else str(v).strip())
    has_code = frame["code"].notna()
    for i in np.flatnonzero(has_code):
        C.validate_grid_code(frame.at[frame.index[i], "code"])
    frame.loc[has_code & frame["village_code"].isna(), "village_code"] = frame.loc[has_code, "code"].str[:12]
    _fill_villages_spatially(session, frame)
    mismatch = has_code & (frame["code"].str[:12] != frame["village_code"])
    if mismatch.any():
        first = frame[mismatch].iloc[0]
        raise CodeError(f"grid code {first.code} does not start with its village/community code {first.village_code}"
                        f" (rows {_rows(np.flatnonzero(mismatch))})")
    frame["kind"] = [k if isinstance(k, str) and k else (C.grid_kind_of(c).value if c else "basic")
                     for k, c in zip(frame["kind"], frame["code"], strict=True)]
    for code, kind in zip(frame["code"], frame["kind"], strict=True):
        if code:
            C.validate_grid_code(code, kind=kind)
    dups = C.find_duplicates([c for c in frame["code"] if c])
    if dups:
        raise CodeError(f"duplicate grid codes in the input: {', '.join(dups[:10])}")
    _assign_missing_codes(session, frame)
    frame["town_code"] = frame["village_code"].str[:9] + "000"
    frame["district_code"] = frame["village_code"].str[:6] + "000000"
    frame["name"] = [n if isinstance(n, str) and n.strip() else f"{c[-3:]}号网格" for n, c in zip(frame["name"], frame["code"], strict=True)]
    return frame


def _fill_villages_spatially(session: Session, frame: gpd.GeoDataFrame) -> None:
    missing = frame["village_code"].isna()
    if not missing.any():
        return
    villages = load_areas(session, level="village")
    if villages.empty:
        raise CodeError("grids without a code or village_code need registered villages/communities to be "
                        f"placed in, and none is registered; the grids' columns are: "
                        f"{', '.join(str(c) for c in frame.columns if c != 'geometry')}. Name the code column "
                        "with --field code=COLUMN, or import areas first (onemap areas import)")
    points = gpd.GeoDataFrame(geometry=frame.loc[missing].geometry.representative_point(), crs=4326)
    joined = gpd.sjoin(points, villages[["code", "geometry"]], predicate="within", how="left")
    joined = joined[~joined.index.duplicated()]
    if joined["code"].isna().any():
        raise CodeError(f"rows {_rows(np.flatnonzero(joined['code'].isna().values))} lie in no registered village/community")
    frame.loc[missing, "village_code"] = joined["code"].values


def _assign_missing_codes(session: Session, frame: gpd.GeoDataFrame) -> None:
    missing = frame["code"].isna()
    if not missing.any():
        return
    points = frame.geometry.representative_point()
    for village, idx in frame[missing].groupby("village_code").groups.items():
        used = used_codes(session, [village]) | set(frame.loc[frame["village_code"] == village, "code"].dropna())
        new = C.assign_grid_codes(village, points[idx].x.values, points[idx].y.values,
                                  frame.loc[idx, "kind"].tolist(), used)
        frame.loc[idx, "code"] = new


# --------------------------------------------------------------------------- validating and writing

def validate_villages(session: Session, grids: gpd.GeoDataFrame, village_codes: Iterable[str]) -> Report:
    villages = load_areas(session, level="village", codes=sorted(set(village_codes)))
    return validate_grids(grids, villages)


def _commit_edit(session: Session, *, kind: str, who: str, why: str, close: Sequence[str],
                 opened: gpd.GeoDataFrame, dry_run: bool) -> EditResult:
    """Validate the villages the edit touches, then close ``close`` and insert ``opened``."""
    if not who or not why:
        raise CodeError("every registry edit needs who made it and why")
    if not dry_run:  # one writer at a time, and it validates what the previous one committed
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    villages = sorted(set(opened["village_code"]) | {c[:12] for c in close})
    missing = set(villages) - set(load_areas(session, level="village", codes=villages)["code"])
    if missing:
        raise CodeError(f"village/community {', '.join(sorted(missing)[:10])} is not registered: import areas "
                        "first (onemap areas import), or derive them from the grid codes (onemap grids import "
                        "--derive-areas)")
    standing = load_grids(session, villages=villages)
    closed = standing[standing["code"].isin(list(close))].reset_index(drop=True)
    standing = standing[~standing["code"].isin(list(close))]
    clash = sorted(set(standing["code"]) & set(opened["code"]))
    if clash:
        raise Conflict(f"grid codes already registered: {', '.join(clash[:10])} (redraw with --replace)")
    result = pd.concat([standing[["code", "village_code", "kind", "geometry"]],
                        opened[["code", "village_code", "kind", "geometry"]]], ignore_index=True)
    report = validate_villages(session, gpd.GeoDataFrame(result, geometry="geometry", crs=4326), villages)
    if not report.ok:
        raise TopologyError(f"the edit fails topology validation: {_summary(report)}", detail=report)
    if dry_run:
        return EditResult(None, list(opened["code"]), list(close), report, dry_run=True)
    with session.begin_nested():  # the rows and what follows them: all or nothing, whatever the caller does
        edit = GridEdit(who=who, why=why, kind=kind, closed_codes=list(close), opened_codes=list(opened["code"]))
        session.add(edit)
        session.flush()
        now = session.scalar(text("SELECT clock_timestamp()"))
        if close:
            session.execute(update(Grid).where(Grid.code.in_(list(close)), current(Grid))
                            .values(valid_to=now))
        session.execute(insert(Grid), [_grid_row(row, edit.id, who, why, now) for row in opened.itertuples()])
        opened_frame = gpd.GeoDataFrame(opened.reset_index(drop=True), geometry="geometry", crs=4326)
        followed = _follow(session, GridChange(edit.id, kind, closed, opened_frame))
        session.execute(text("SELECT pg_notify('onemap_registry', :v)"), {"v": str(edit.id)})
    return EditResult(edit.id, list(opened["code"]), list(close), report, followed=followed)


def _summary(report: Report) -> str:
    counts = report.summary().get("counts", {})
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "problems found"


def _int_or_none(value) -> int | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else int(value)


def _grid_row(row, edit_id: int, who: str, why: str, now: datetime) -> dict:
    return {
        "code": row.code, "name": row.name, "kind": row.kind, "village_code": row.village_code,
        "town_code": row.town_code, "district_code": row.district_code,
        "households": _int_or_none(row.households), "population": _int_or_none(row.population),
        "geom": from_shape(row.geometry, srid=4326), "valid_from": now, "edit_id": edit_id,
        "who": who, "why": why,
    }


def import_grids(session: Session, frame: gpd.GeoDataFrame, *, who: str, why: str,
                 replace: bool = False, dry_run: bool = False) -> EditResult:
    """Import grids in one edit. With ``replace`` the file redraws its villages: their current
    grids are closed and the file's opened; otherwise existing codes are a conflict."""
    prepared = prepare_grids(session, frame)
    villages = sorted(set(prepared["village_code"]))
    standing = load_grids(session)
    if replace:
        close = sorted(standing.loc[standing["village_code"].isin(villages), "code"])
    else:
        clash = sorted(set(standing["code"]) & set(prepared["code"]))
        if clash:
            raise Conflict(f"{len(clash)} grid codes are already registered (e.g. {', '.join(clash[:5])}); "
                           "use --replace to redraw their villages")
        close = []
    return _commit_edit(session, kind="import", who=who, why=why, close=close, opened=prepared, dry_run=dry_run)


# --------------------------------------------------------------------------- areas

def prepare_areas(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if frame.empty:
        raise InvalidGeometry("no areas to import: the input has no features")
    frame = frame.copy()
    frame["geometry"] = _as_multipolygons(frame.geometry)
    if "code" not in frame or frame["code"].isna().any():
        raise CodeError("every area needs its 12-digit code")
    frame["code"] = frame["code"].astype(str).str.strip()
    if "level" not in frame:
        frame["level"] = None
    frame["level"] = [lv if isinstance(lv, str) and lv else C.level_of(c).value
                      for lv, c in zip(frame["level"], frame["code"], strict=True)]
    parents = [C.parent_code(c) for c in frame["code"]]
    frame["parent_code"] = pd.Series(parents, index=frame.index, dtype=object)
    for code, level, parent in zip(frame["code"], frame["level"], parents, strict=True):
        C.validate_area_code(code, level, parent)
    frame["kind"] = [C.town_kind(c) if lv == "town" else C.village_kind(c) if lv == "village" else "district"
                     for c, lv in zip(frame["code"], frame["level"], strict=True)]
    if "name" not in frame or frame["name"].isna().any():
        raise CodeError("every area needs a name")
    dups = C.find_duplicates(frame["code"])
    if dups:
        raise CodeError(f"duplicate area codes in the input: {', '.join(dups[:10])}")
    return frame


def import_areas(session: Session, frame: gpd.GeoDataFrame, *, who: str, why: str,
                 replace: bool = False, dry_run: bool = False) -> EditResult:
    """Import districts, towns and villages (all or nothing), validated as one hierarchy."""
    prepared = prepare_areas(frame)
    standing = load_areas(session)
    clash = sorted(set(standing["code"]) & set(prepared["code"]))
    if clash and not replace:
        raise Conflict(f"{len(clash)} area codes are already registered (e.g. {', '.join(clash[:5])}); use --replace")
    kept = standing[~standing["code"].isin(prepared["code"])]
    combined = pd.concat([kept[["code", "level", "parent_code", "name", "geometry"]],
                          prepared[["code", "level", "parent_code", "name", "geometry"]]], ignore_index=True)
    report = validate_areas(gpd.GeoDataFrame(combined, geometry="geometry", crs=4326))
    if not report.ok:
        raise TopologyError(f"the areas fail topology validation: {_summary(report)}", detail=report)
    if dry_run:
        return EditResult(None, list(prepared["code"]), clash, report, dry_run=True)
    edit = GridEdit(who=who, why=why, kind="areas", closed_codes=clash, opened_codes=list(prepared["code"]))
    session.add(edit)
    session.flush()
    now = session.scalar(text("SELECT clock_timestamp()"))
    if clash:
        session.execute(update(Area).where(Area.code.in_(clash), current(Area)).values(valid_to=now))
    session.execute(insert(Area), [
        {"code": r.code, "level": r.level, "kind": r.kind, "name": r.name,
         "parent_code": r.parent_code if isinstance(r.parent_code, str) else None,
         "geom": from_shape(r.geometry, srid=4326), "valid_from": now, "edit_id": edit.id}
        for r in prepared.itertuples()])
    return EditResult(edit.id, list(prepared["code"]), clash, report)


def validate_registry(session: Session, *, town: str | None = None, as_of: datetime | None = None) -> Report:
    """Validate the whole current grid set (or one town's) against its villages."""
    grids = load_grids(session, town=town, as_of=as_of)
    villages = load_areas(session, level="village", as_of=as_of)
    if town:
        villages = villages[villages["parent_code"] == town]
    return validate_grids(grids, villages)
