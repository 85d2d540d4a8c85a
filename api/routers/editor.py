"""The planners' grid editor over HTTP: validate a proposal, then save it as a new registry version.

``POST /grids/validate`` answers the topology report for a proposed set of grids (the proposal
replaces the current grids with the same codes, plus any listed in ``closes``) with every problem as
GeoJSON the editor draws. The edit routes (``add``, ``reshape``, ``split``, ``merge``) call the
registry's own edit functions, so the browser can never save what the CLI would refuse: a refused
edit is a TopologyError, answered 422 with the problems as GeoJSON (api/errors.py).

Geometry may be sent in GCJ-02 (``crs: "gcj02"``) when the editor runs over an Amap-style base map;
it is converted to WGS84 with gis.coords before anything else sees it.
"""

from __future__ import annotations

from typing import Annotated, Any

import geopandas as gpd
import pandas as pd
import shapely
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from shapely.geometry.base import BaseGeometry

from api.auth import EditGridsScope, ScopeDep
from api.deps import SessionDep
from gis import edits, registry
from gis.coords import normalize_crs, to_wgs84
from gis.errors import Forbidden, InvalidGeometry, InvalidInput
from gis.registry import EditResult
from layers.accounts.scope import Scope

router = APIRouter(prefix="/grids", tags=["editor"])

Who = Annotated[str | None, Field(None, min_length=1, max_length=100,
                                  description="who makes the edit (ignored when signed in: the user is)")]
Why = Annotated[str, Field(min_length=1, description="why (recorded with the edit)")]
Crs = Annotated[str, Field(description="CRS of the coordinates: EPSG code, gcj02 or bd09")]


class Proposal(BaseModel):
    """Proposed grids: features with optional properties code, village_code, kind, name."""

    type: str = "FeatureCollection"
    features: list[dict[str, Any]] = Field(min_length=1)
    closes: list[str] = Field(default_factory=list, description="current grid codes the proposal retires")
    crs: Crs = "EPSG:4326"


class AddEdit(BaseModel):
    who: Who = None
    why: Why
    grids: Proposal
    dry_run: bool = False


class ReshapeEdit(BaseModel):
    who: Who = None
    why: Why
    grids: Proposal  # every feature carries the code of the grid it redraws
    dry_run: bool = False
    follow_shared: bool = Field(True, description="neighbours sharing a moved vertex move with it, same edit")


class SplitEdit(BaseModel):
    who: Who = None
    why: Why
    code: str
    line: dict[str, Any]
    crs: Crs = "EPSG:4326"
    dry_run: bool = False


class RevertEdit(BaseModel):
    who: Who = None
    why: Why
    dry_run: bool = False


class MergeEdit(BaseModel):
    who: Who = None
    why: Why
    codes: list[str] = Field(min_length=2)
    name: str | None = None
    dry_run: bool = False


# ----------------------------------------------------------------------------- parsing

def to_wgs84_geometry(geometry: dict[str, Any] | None, crs: str) -> BaseGeometry:
    """A GeoJSON geometry as shapely in WGS84 (GCJ-02/BD-09/EPSG input converted)."""
    if not geometry:
        raise InvalidGeometry("a feature has no geometry")
    try:
        shape = shapely.geometry.shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidGeometry(f"not a GeoJSON geometry: {exc}") from exc
    if normalize_crs(crs) in ("EPSG:4326", "EPSG:4490"):
        return shape
    return shapely.transform(shape, lambda xy: _stack(*to_wgs84(xy[:, 0], xy[:, 1], crs)))


def _stack(x, y):
    import numpy as np

    return np.column_stack([x, y])


def proposal_frame(proposal: Proposal) -> gpd.GeoDataFrame:
    rows = []
    for i, feature in enumerate(proposal.features):
        props = dict(feature.get("properties") or {})
        try:
            geom = to_wgs84_geometry(feature.get("geometry"), proposal.crs)
        except InvalidGeometry as exc:
            raise InvalidGeometry(f"feature {i + 1}: {exc.message}") from exc
        rows.append({"code": props.get("code") or None, "village_code": props.get("village_code") or None,
                     "kind": props.get("kind") or None, "name": props.get("name") or None,
                     "households": props.get("households"), "population": props.get("population"),
                     "geometry": geom})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)


# ----------------------------------------------------------------------------- services

def validate_proposal(session, proposal: Proposal, scope: Scope | None = None) -> dict[str, Any]:
    """The topology report of the villages the proposal touches, as if it were saved. A caller bound
    to an area validates only villages in it: the report would otherwise draw another town's grids
    and problems (403 naming the villages, which the caller itself sent)."""
    prepared = registry.prepare_grids(session, proposal_frame(proposal))
    current = registry.load_grids(session)
    closes = set(proposal.closes) | (set(prepared["code"]) & set(current["code"]))
    unknown = set(proposal.closes) - set(current["code"])
    if unknown:
        raise InvalidInput(f"closes names grids that are not current: {', '.join(sorted(unknown))}")
    villages = sorted(set(prepared["village_code"]) | {c[:12] for c in closes})
    if scope is not None and not scope.city_wide:
        foreign = [v for v in villages if not _sees_village(scope, v)]
        if foreign:
            raise Forbidden(f"village(s) outside your area: {', '.join(foreign)}", detail={"ids": foreign})
    kept = current[current["village_code"].isin(villages) & ~current["code"].isin(list(closes))]
    cols = ["code", "village_code", "kind", "name", "geometry"]
    merged = gpd.GeoDataFrame(pd.concat([kept[cols], prepared[cols]], ignore_index=True), geometry="geometry",
                              crs=4326)
    report = registry.validate_villages(session, merged, villages)
    return {"ok": report.ok, "report": report.summary(), "problems": report.to_geojson(),
            "codes": list(prepared["code"]), "closes": sorted(closes), "villages": villages}


def _sees_village(scope: Scope, village: str) -> bool:
    if scope.role == "grid_worker":
        return village in {code[:12] for code in scope.grid_codes}
    return scope.sees({}, grid_code=f"{village}001", village_code=village)


AUDITED_CODES = 2000  # an audit entry lists at most this many codes per side (and always the counts)


def audit_codes(request: Request, **codes) -> None:
    """Record in the request's audit entry (api/middleware.py) the grid codes an edit names, before it
    runs, so a refused edit is on record with what it tried to touch."""
    listed = {k: sorted({str(c) for c in v if c is not None and c == c})[:AUDITED_CODES] for k, v in codes.items()}
    request.state.audit = {**getattr(request.state, "audit", {}), **listed}


def audited_answer(request: Request, result: EditResult, asked: list[str] | None = None) -> dict[str, Any]:
    """The edit's answer; its audit entry gets the edit id and the codes it opened and closed."""
    audit_codes(request, opened=result.opened, closed=result.closed)
    request.state.audit.update(edit_id=result.edit_id, dry_run=result.dry_run,
                               counts={"opened": len(result.opened), "closed": len(result.closed)})
    if result.edit_id is not None:
        request.state.audit["object"] = f"edit={result.edit_id}"
    return edit_answer(result, asked)


def edit_answer(result: EditResult, asked: list[str] | None = None) -> dict[str, Any]:
    """The edit as the editor shows it; ``neighbours``: grids the edit redrew beyond those ``asked``
    (a reshape carries shared vertices into them)."""
    report = result.report
    neighbours = [c for c in result.opened if asked is not None and c not in asked]
    return {"edit_id": result.edit_id, "opened": result.opened, "closed": result.closed, "neighbours": neighbours,
            "dry_run": result.dry_run, "report": report.summary() if report else None,
            "followed": result.followed,  # what moved with the grids (layers/follow.py); {} on a dry run
            "problems": report.to_geojson() if report else {"type": "FeatureCollection", "features": []}}


# ----------------------------------------------------------------------------- routes

def who_of(scope: Scope, given: str | None) -> str:
    """The editor recorded with the edit: the signed-in user when auth is on, else the body's ``who``."""
    if not scope.demo_mode:
        return scope.user
    if not given:
        raise InvalidInput("who makes the edit? give who (sign-in is off)")
    return given


def in_scope(scope: Scope, codes) -> None:
    """A planner bound to an area edits only grids there (others: 404, as if they did not exist)."""
    from gis.errors import NotFound

    for code in codes:
        if code and not scope.sees({}, grid_code=str(code)):
            raise NotFound(f"no grid {code} is current")


@router.post("/validate")
def validate(proposal: Proposal, session: SessionDep, scope: ScopeDep) -> dict[str, Any]:
    """Topology report for proposed grids (problems as GeoJSON); nothing is written."""
    return validate_proposal(session, proposal, scope)


@router.post("/edits/add")
def add(body: AddEdit, session: SessionDep, scope: EditGridsScope, request: Request) -> dict[str, Any]:
    """Register newly drawn grids (codes assigned in reading order when missing)."""
    frame = proposal_frame(body.grids)
    audit_codes(request, codes=frame["code"], closes=body.grids.closes)
    in_scope(scope, [*frame["code"].dropna(), *body.grids.closes])
    if not scope.city_wide:  # a new grid's village decides its area
        in_scope(scope, [f"{v}001" for v in frame.get("village_code", pd.Series(dtype=object)).dropna()])
    who = who_of(scope, body.who)
    return audited_answer(request, registry.import_grids(session, frame, who=who, why=body.why, dry_run=body.dry_run))


@router.post("/edits/reshape")
def reshape(body: ReshapeEdit, session: SessionDep, scope: EditGridsScope, request: Request) -> dict[str, Any]:
    """New outlines for existing grids; each keeps its code as a new version."""
    frame = proposal_frame(body.grids)
    audit_codes(request, codes=frame["code"])
    if frame["code"].isna().any():
        raise InvalidInput("every reshaped grid needs the code of the grid it redraws")
    in_scope(scope, frame["code"])
    changes = dict(zip(frame["code"], frame.geometry, strict=True))
    who = who_of(scope, body.who)
    result = edits.reshape(session, changes, who=who, why=body.why, dry_run=body.dry_run,
                           follow_shared=body.follow_shared)
    in_scope(scope, result.opened)
    return audited_answer(request, result, asked=list(changes))


@router.post("/edits/split")
def split(body: SplitEdit, session: SessionDep, scope: EditGridsScope, request: Request) -> dict[str, Any]:
    """Cut one grid by a drawn line into grids with new codes."""
    audit_codes(request, codes=[body.code])
    in_scope(scope, [body.code])
    line = to_wgs84_geometry(body.line, body.crs)
    who = who_of(scope, body.who)
    answer = audited_answer(request, edits.split(session, body.code, line, who=who, why=body.why, dry_run=body.dry_run))
    if body.dry_run:  # the editor previews the pieces before saving
        geom = registry.load_grids(session, codes=[body.code]).geometry.iloc[0]
        answer["pieces"] = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"index": i, "code": code}, "geometry": shapely.geometry.mapping(piece)}
            for i, (piece, code) in enumerate(zip(edits.split_pieces(geom, line, body.code), answer["opened"],
                                                  strict=False))]}
    return answer


@router.post("/edits/merge")
def merge(body: MergeEdit, session: SessionDep, scope: EditGridsScope, request: Request) -> dict[str, Any]:
    """Join neighbouring grids of one village into one grid with a new code."""
    audit_codes(request, codes=body.codes)
    in_scope(scope, body.codes)
    return audited_answer(request, edits.merge(session, body.codes, who=who_of(scope, body.who), why=body.why,
                                               name=body.name, dry_run=body.dry_run))


@router.get("/edits/recent")
def recent(session: SessionDep, scope: ScopeDep, limit: Annotated[int, Query(ge=1, le=100)] = 10,
           code: str | None = None) -> list[dict[str, Any]]:
    """The newest registry edits (those touching grid ``code`` when given), newest first."""
    rows = edits.recent_edits(session, limit=limit, codes=[code] if code else None)
    return [r for r in rows if scope.city_wide or all(scope.sees({}, grid_code=c) for c in r["opened_codes"])]


@router.post("/edits/{edit_id}/revert")
def revert(edit_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)], body: RevertEdit, session: SessionDep,
           scope: EditGridsScope, request: Request) -> dict[str, Any]:
    """Undo an edit as a new version (old outlines and codes back) when no later edit changed its grids."""
    for row in edits.recent_edits(session, limit=1, ids=[edit_id]):
        in_scope(scope, [*row["opened_codes"], *row["closed_codes"]])
    result = edits.revert(session, edit_id, who=who_of(scope, body.who), why=body.why, dry_run=body.dry_run)
    return audited_answer(request, result)


@router.get("/edits/find")
def find(session: SessionDep, scope: ScopeDep, q: Annotated[str, Query(min_length=1, max_length=50)],
         limit: Annotated[int, Query(ge=1, le=50)] = 20) -> list[dict[str, Any]]:
    """Current grids whose name, code, village or town name contains ``q`` (the editor's search box)."""
    frame = edits.find_grids(session, q, limit=limit * 4)
    frame = frame[scope.mask(frame, grid_code="code")] if len(frame) else frame
    return frame.head(limit).to_dict(orient="records")
