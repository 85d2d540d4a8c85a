"""Areas and grids: the registry as GeoJSON, with history and as-of queries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import geopandas as gpd
import pandas as pd
from fastapi import APIRouter, Query, Response

from api.auth import ScopeDep
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from gis import codes as C
from gis import registry
from gis.cache import Cache, database_key
from gis.errors import InvalidInput, NotFound
from gis.locate import current_version

router = APIRouter(tags=["registry"])

GRID_PROPS = ["code", "name", "kind", "village_code", "town_code", "district_code", "households",
              "population", "valid_from", "valid_to", "geometry"]


@router.get("/health")
def health(session: SessionDep) -> dict:
    """Liveness and the registry version (id of the newest edit)."""
    registry.ping(session)
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


# Current grids rendered once per registry version and selection: each feature's JSON text beside the
# columns the caller's scope is tested on, so every caller still gets only its own grids (``scope.mask``
# runs on every request) while the geometry is never serialised twice.
RENDERED: Cache[tuple[pd.DataFrame, list[bytes]]] = Cache("rendered grids", size=256)


@router.get("/grids", response_class=GeoJSONResponse)
def grids(session: SessionDep, scope: ScopeDep, town: str | None = None, village: str | None = None, code: str | None = None,
          as_of: datetime | None = None) -> Response:
    """Grids as a FeatureCollection (current, or valid ``as_of``), filtered by town, village or code.

    Current grids are rendered once per registry version and selection and served from memory after
    that (checked against the registry version on every request, so an edit shows at once)."""
    if town:
        C.validate_area_code(town, C.Level.TOWN)
    if village:
        C.validate_area_code(village, C.Level.VILLAGE)
    codes = None
    if code:
        codes = sorted({C.validate_grid_code(c.strip()) for c in code.split(",")})

    def make() -> tuple[pd.DataFrame, list[bytes]]:
        frame = registry.load_grids(session, town=town, village=village, codes=codes, as_of=_aware(as_of))
        frame = _with_names(session, frame)[GRID_PROPS + ["village_name", "town_name"]]
        features = feature_collection(frame, precision=6)["features"]
        texts = [json.dumps(f, ensure_ascii=False, separators=(",", ":")).encode() for f in features]
        return pd.DataFrame(frame.drop(columns="geometry")), texts

    if as_of is not None:
        frame, texts = make()
    else:
        key = (database_key(session), current_version(session), town, village, tuple(codes or ()))
        frame, texts = RENDERED.get_or_make(key, make)
    visible = scope.mask(frame, grid_code="code").to_numpy()
    body = b",".join(t for t, keep in zip(texts, visible, strict=True) if keep)
    return Response(b'{"type":"FeatureCollection","features":[' + body + b"]}", media_type=GeoJSONResponse.media_type)


def _with_names(session: SessionDep, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    names = registry.area_names(session)
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
