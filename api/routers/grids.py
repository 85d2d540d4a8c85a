"""Areas and grids: the registry as GeoJSON, with history and as-of queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import text

from api.auth import ScopeDep
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from gis import codes as C
from gis import registry
from gis.errors import InvalidInput, NotFound

router = APIRouter(tags=["registry"])

GRID_PROPS = ["code", "name", "kind", "village_code", "town_code", "district_code", "households",
              "population", "valid_from", "valid_to", "geometry"]


@router.get("/health")
def health(session: SessionDep) -> dict:
    """Liveness and the registry version (id of the newest edit)."""
    session.execute(text("SELECT 1"))
    return {"status": "ok", "registry_version": registry.registry_version(session)}


def _aware(as_of: datetime | None) -> datetime | None:
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInput("as_of needs a timezone, e.g. 2026-11-01T08:00:00+08:00")
    return as_of


@router.get("/areas", response_class=GeoJSONResponse)
def areas(session: SessionDep, scope: ScopeDep, level: Annotated[str | None, Query(pattern="^(district|town|village)$")] = None,
          parent: str | None = None, as_of: datetime | None = None) -> GeoJSONResponse:
    """Districts, towns/streets and villages/communities, with names and parent codes.

    Not narrowed by the caller's area: the divisions are the map's frame and hold nothing personal."""
    if parent:
        C.validate_area_code(parent, C.level_of(parent))
    frame = registry.load_areas(session, level=level, parent=parent, as_of=_aware(as_of))
    frame = frame[["code", "level", "kind", "name", "parent_code", "geometry"]]
    return GeoJSONResponse(feature_collection(frame, precision=6))


@router.get("/grids", response_class=GeoJSONResponse)
def grids(session: SessionDep, scope: ScopeDep, town: str | None = None, village: str | None = None, code: str | None = None,
          as_of: datetime | None = None) -> GeoJSONResponse:
    """Grids as a FeatureCollection (current, or valid ``as_of``), filtered by town, village or code."""
    if town:
        C.validate_area_code(town, C.Level.TOWN)
    if village:
        C.validate_area_code(village, C.Level.VILLAGE)
    codes = None
    if code:
        codes = [C.validate_grid_code(c.strip()) for c in code.split(",")]
    frame = registry.load_grids(session, town=town, village=village, codes=codes, as_of=_aware(as_of))
    frame = _with_names(session, frame[scope.mask(frame, grid_code="code")])
    return GeoJSONResponse(feature_collection(frame[GRID_PROPS + ["village_name", "town_name"]], precision=6))


def _with_names(session: SessionDep, frame):
    names = dict(session.execute(text("SELECT code, name FROM areas WHERE valid_to IS NULL")).all())
    frame = frame.copy()
    frame["village_name"] = frame["village_code"].map(names)
    frame["town_name"] = frame["town_code"].map(names)
    return frame


@router.get("/grids/{code}", response_class=GeoJSONResponse)
def grid(code: str, session: SessionDep, scope: ScopeDep, as_of: datetime | None = None) -> GeoJSONResponse:
    """One grid as a Feature (404 as well when it lies outside the caller's area)."""
    C.validate_grid_code(code)
    frame = registry.load_grids(session, codes=[code], as_of=_aware(as_of))
    frame = frame[scope.mask(frame, grid_code="code")]
    if frame.empty:
        raise NotFound(f"no grid {code}" + (f" valid at {as_of.isoformat()}" if as_of else " is current"))
    frame = _with_names(session, frame)
    return GeoJSONResponse(feature_collection(frame[GRID_PROPS + ["village_name", "town_name"]])["features"][0])


@router.get("/grids/{code}/history", response_class=GeoJSONResponse)
def grid_history(code: str, session: SessionDep, scope: ScopeDep) -> GeoJSONResponse:
    """Every version of a grid code, oldest first, with who changed it and why."""
    frame = registry.grid_history(session, code)
    frame = frame[scope.mask(frame, grid_code="code")]
    if frame.empty:
        raise NotFound(f"grid {code} has never been registered")
    return GeoJSONResponse(feature_collection(frame[GRID_PROPS + ["edit_id", "who", "why"]], id_column=None))
