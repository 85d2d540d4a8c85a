"""Vector tiles (Mapbox Vector Tile) straight from PostGIS: ``GET /tiles/{layer}/{z}/{x}/{y}.pbf``.

Why tiles: the demo city's grids as plain GeoJSON are 7.8 MB, too heavy for every screen on every load,
and 100,000 ticket dots are a blur. PostGIS clips and quantises each tile (ST_TileEnvelope,
ST_AsMVTGeom, ST_AsMVT), so a screen fetches only what it shows at the detail it can show.

Layers: ``districts``, ``towns``, ``villages``, ``grids`` (with open-ticket counts and the worst card when
the tickets table exists), ``tickets`` (aggregated per grid below zoom 13, single tickets above) and
``workers`` (last positions: id, name, role, on duty, fix time). Each polygon layer carries a second MVT
layer ``<layer>_labels`` of one label point per feature, kept only in the tile that holds the point, so
labels are never repeated at tile edges. ``all`` is grids, villages, towns and tickets in one tile.

The big screen uses ``base``: the registry alone, lean (districts, towns, villages, grids with their
codes, names on the label points, no ticket counts). It changes only with a registry edit, so it is
cached for good; the screen colours it from ``GET /tiles/grid-stats`` (open tickets per grid, a few
dozen kB), which is all that changes when a ticket does, and fetches ``workers`` in big tiles.

GCJ-02 base maps (``?crs=gcj02``): each tile's overlay is translated by the GCJ-02 offset at the tile's
centre (gis.coords' published formula). The offset varies by metres over tens of kilometres, so within
one tile the error is far below a pixel at every zoom.

Scope: boundaries (towns, villages, grid polygons) are the map's frame and stay city-wide, as
``GET /areas`` does — they hold nothing personal and a town's staff need the neighbours for context.
Grid *names* are the caller's only: a grid outside the caller's area comes without its name (its
polygon and code stay, so the frame is whole); such tiles are cached per scope.
Everything about tickets is the caller's only: the open/card counts on grids, the per-grid aggregates
and stats and single ticket points count only the tickets the caller's scope sees; the workers are
those ``GET /workers`` lists for the caller. Scoped answers are cached per scope and sent
``Cache-Control: private`` so no shared cache hands one town's counts to another.

Registry tiles change only with an edit, so they are cached per process keyed by the registry
version (the newest edit id) and sent with an ETag; a client that names the version it saw
(``?r=<version>``, from ``GET /tiles``) gets them as immutable. Ticket tiles and the grid stats are
cached for a few seconds, worker positions for two.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from api.auth import ScopeDep
from api.deps import SessionDep
from gis.tiles import MVT
from layers import maptiles as M
from layers.accounts.scope import Scope
from layers.duty import duty

router = APIRouter(tags=["map"])

YEAR_S = 365 * 24 * 3600


def _cache_headers(scope: Scope, max_age: int, etag: str, *, immutable: bool = False) -> dict[str, str]:
    shared = scope.city_wide and scope.demo_mode  # the open demo: any cache may keep it
    headers = {"ETag": etag, "Cache-Control": f"{'public' if shared else 'private'}, max-age={max_age}"
               + (", immutable" if immutable else ""), "Vary": "Authorization, Cookie"}
    if shared:
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


@router.get("/tiles")
def tile_layers(session: SessionDep, scope: ScopeDep) -> dict:
    """The tile layers this server has now (``tickets`` and ``workers`` appear once their tables exist), the grids' bounds,
    the registry version (``?r=`` on registry tiles makes them immutable) and the registry's counts."""
    return M.layer_list(session)


@router.get("/tiles/grid-stats")
def grid_stats(request: Request, session: SessionDep, scope: ScopeDep,
               v: Annotated[int, Query(ge=0, description="client's live version: a new one skips cached counts")] = 0,
               ) -> Response:
    """Open tickets per grid the caller sees: ``grids`` maps a grid code to ``[open, worst card (0 ok,
    1 yellow, 2 red), red, yellow]`` (grids without open tickets are left out), with city totals.

    What colours the ``base`` tiles on the big screen: a live ticket event refetches this (a few kB)
    instead of every tile on the screen."""
    body = json.dumps(M.grid_stats(session, scope, v), separators=(",", ":")).encode()
    headers = _cache_headers(scope, int(M.TICKET_TTL_S), f'W/"stats-{M.digest(body)}"')
    if request.headers.get("if-none-match") == headers["ETag"]:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _code_list(value: str | None) -> list[str]:
    return [c for c in (value or "").split(",") if c.strip()]


@router.get("/map/duty")
def map_duty(session: SessionDep, scope: ScopeDep,
             grids: Annotated[str | None, Query(description="comma-separated 15-digit grid codes")] = None,
             areas: Annotated[str | None, Query(description="comma-separated 12-digit area codes")] = None,
             departments: Annotated[str | None, Query(description="comma-separated department codes")] = None,
             ) -> dict:
    """Who answers for these places (责任人): each grid's name, village, town and assigned workers (grid
    chief first, phones as the caller may see them), and the names of areas and departments — what the
    big screen's cards and feed print instead of codes. Unknown codes are left out of the answer."""
    return duty(session, grids=_code_list(grids), areas=_code_list(areas), departments=_code_list(departments),
                scope=scope)


@router.get("/tiles/{layer}/{z}/{x}/{y}.pbf", response_class=Response,
            responses={200: {"content": {MVT: {}}, "description": "a Mapbox Vector Tile"}})
def tile(request: Request, session: SessionDep, scope: ScopeDep, layer: str,
         z: Annotated[int, Path(ge=0, le=22)], x: Annotated[int, Path(ge=0)], y: Annotated[int, Path(ge=0)],
         crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$")] = "wgs84",
         v: Annotated[int, Query(ge=0, description="client's live version: a new one skips cached ticket data")] = 0,
         r: Annotated[int | None, Query(ge=0, description="registry version the client saw (GET /tiles): when it is "
                                                          "current, registry tiles are sent as immutable")] = None,
         ) -> Response:
    """One vector tile of a layer listed by ``GET /tiles`` (XYZ, EPSG:3857)."""
    plan = M.plan_tile(session, layer, z, x, y, crs, v, scope)
    immutable = plan.ttl is None and r is not None and plan.version == r
    max_age = YEAR_S if immutable else int(plan.ttl) if plan.ttl else 300
    headers = _cache_headers(scope, max_age, plan.etag, immutable=immutable)
    if request.headers.get("if-none-match") == plan.etag:
        return Response(status_code=304, headers=headers)
    body, hit = M.tile_bytes(session, plan, scope)
    headers["X-Tile-Cache"] = "hit" if hit else "miss"
    return Response(body, media_type=MVT, headers=headers)
