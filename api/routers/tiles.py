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

import hashlib
import json
import math
import time
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.auth import ScopeDep
from api.deps import SessionDep
from gis import codes as C
from gis.coords import wgs84_to_gcj02
from gis.errors import InvalidInput, NotFound
from layers.accounts.scope import PREFIX, Scope

router = APIRouter(tags=["map"])

MVT = "application/vnd.mapbox-vector-tile"
EXTENT = 4096
BUFFER = 64
SIMPLIFY_PER_TILE = 1024  # simplify to 1/1024 of a tile: half a pixel when a tile is drawn 512 px wide
POINT_BUFFER = 512  # ticket symbols are up to ~30 px wide: neighbours draw the overhang too
WORLD_M = 40075016.68557849  # EPSG:3857 width of the world
TICKET_POINT_ZOOM = 13  # below: one aggregate per grid; from here: single tickets
MAX_TICKETS_PER_TILE = 20_000
CACHE_SIZE = 4096
OPEN_STATES_SQL = "state NOT IN ('closed', 'signed_off')"
CARD_RANK = {"ok": 0, "yellow": 1, "red": 2}
CARD_RANK_SQL = "CASE card WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END"

# A label point belongs to exactly one tile: half-open bounds (AsMVTGeom's rounding would put a point
# within half a unit of an edge into both neighbours).
INSIDE_SQL = ("ST_X(lp) >= ST_XMin(env.m) AND ST_X(lp) < ST_XMax(env.m)"
              " AND ST_Y(lp) > ST_YMin(env.m) AND ST_Y(lp) <= ST_YMax(env.m)")

AREA_SQL = """
WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g),
src AS (
  SELECT a.id, a.code, a.name, a.kind, a.parent_code,
         ST_Translate(ST_Simplify(ST_Transform(a.geom, 3857), :tol, true), :dx, :dy) AS m3857
  FROM areas a, env WHERE a.valid_to IS NULL AND a.level = :level AND a.geom && env.g)
SELECT
 (SELECT ST_AsMVT(t, :layer, 4096, 'geom', 'id') FROM (
    SELECT id, code, name, kind, parent_code, ST_AsMVTGeom(m3857, env.m, 4096, 64, true) AS geom
    FROM src, env) t WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(t, :layer || '_labels', 4096, 'geom', 'id') FROM (
    SELECT id, code, name, ST_AsMVTGeom(lp, env.m, 4096, 0, false) AS geom
    FROM (SELECT *, ST_PointOnSurface(m3857) AS lp FROM src) s, env WHERE {inside}) t)
""".replace("{inside}", INSIDE_SQL)

GRID_SQL = """
WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g),
src AS (
  SELECT g.id, g.code, CASE WHEN CAST(:names_all AS boolean) OR g.code LIKE :names_prefix OR g.code = ANY(CAST(:names_codes AS text[])) THEN g.name END AS name, g.kind, g.village_code, g.town_code, g.households, g.population,
         coalesce(o.open, 0) AS open, coalesce(o.card, 0) AS card, coalesce(o.red, 0) AS red,
         coalesce(o.yellow, 0) AS yellow,
         ST_Translate(ST_Simplify(ST_Transform(g.geom, 3857), :tol, true), :dx, :dy) AS m3857
  FROM grids g CROSS JOIN env
  LEFT JOIN unnest(CAST(:codes AS text[]), CAST(:opens AS int[]), CAST(:cards AS int[]), CAST(:reds AS int[]),
                   CAST(:yellows AS int[])) AS o(code, open, card, red, yellow)
         ON o.code = g.code
  WHERE g.valid_to IS NULL AND g.geom && env.g)
SELECT
 (SELECT ST_AsMVT(t, 'grids', 4096, 'geom', 'id') FROM (
    SELECT id, code, name, kind, village_code, town_code, households, population, open, card, red, yellow,
           ST_AsMVTGeom(m3857, env.m, 4096, 64, true) AS geom
    FROM src, env) t WHERE geom IS NOT NULL)
 || (SELECT ST_AsMVT(t, 'grids_labels', 4096, 'geom', 'id') FROM (
    SELECT id, code, name, open, card, red, ST_AsMVTGeom(lp, env.m, 4096, 0, false) AS geom
    FROM (SELECT *, ST_PointOnSurface(m3857) AS lp FROM src) s, env WHERE {inside}) t)
""".replace("{inside}", INSIDE_SQL)

# The registry alone in one query, with only what the big screen draws and labels: polygons carry their
# code (grids: colour by open tickets; towns: the selected one), names ride on the label points only.
BASE_SQL = """
WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g),
src AS (
  SELECT 'grid' AS level, g.id, g.code, CASE WHEN CAST(:names_all AS boolean) OR g.code LIKE :names_prefix OR g.code = ANY(CAST(:names_codes AS text[])) THEN g.name END AS name,
         ST_Translate(ST_Simplify(ST_Transform(g.geom, 3857), :tol, true), :dx, :dy) AS m3857
  FROM grids g, env WHERE g.valid_to IS NULL AND g.geom && env.g
  UNION ALL
  SELECT a.level, a.id, a.code, a.name,
         ST_Translate(ST_Simplify(ST_Transform(a.geom, 3857), :tol, true), :dx, :dy) AS m3857
  FROM areas a, env WHERE a.valid_to IS NULL AND a.level IN ('village', 'town', 'district') AND a.geom && env.g),
shapes AS (SELECT level, id, code, ST_AsMVTGeom(m3857, env.m, 4096, 64, true) AS geom FROM src, env),
labels AS (SELECT level, id, code, name, ST_AsMVTGeom(lp, env.m, 4096, 0, false) AS geom
           FROM (SELECT *, ST_PointOnSurface(m3857) AS lp FROM src WHERE level <> 'district') s, env WHERE {inside})
SELECT
 (SELECT ST_AsMVT(t, 'grids', 4096, 'geom', 'id') FROM (
    SELECT id, code, geom FROM shapes WHERE level = 'grid' AND geom IS NOT NULL) t)
 || (SELECT ST_AsMVT(t, 'villages', 4096, 'geom', 'id') FROM (
    SELECT id, geom FROM shapes WHERE level = 'village' AND geom IS NOT NULL) t)
 || (SELECT ST_AsMVT(t, 'towns', 4096, 'geom', 'id') FROM (
    SELECT id, code, geom FROM shapes WHERE level = 'town' AND geom IS NOT NULL) t)
 || (SELECT ST_AsMVT(t, 'districts', 4096, 'geom', 'id') FROM (
    SELECT id, geom FROM shapes WHERE level = 'district' AND geom IS NOT NULL) t)
 || (SELECT ST_AsMVT(t, 'grids_labels', 4096, 'geom', 'id') FROM (
    SELECT id, code, name, geom FROM labels WHERE level = 'grid') t)
 || (SELECT ST_AsMVT(t, 'villages_labels', 4096, 'geom', 'id') FROM (
    SELECT id, code, name, geom FROM labels WHERE level = 'village') t)
 || (SELECT ST_AsMVT(t, 'towns_labels', 4096, 'geom', 'id') FROM (
    SELECT id, code, name, geom FROM labels WHERE level = 'town') t)
""".replace("{inside}", INSIDE_SQL)

TICKET_AGG_SQL = """
WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g),
agg AS (SELECT o.code, o.open, o.card, o.red, o.yellow
        FROM unnest(CAST(:codes AS text[]), CAST(:opens AS int[]), CAST(:cards AS int[]),
                    CAST(:reds AS int[]), CAST(:yellows AS int[])) AS o(code, open, card, red, yellow)
        WHERE o.open > 0)
SELECT ST_AsMVT(t, 'tickets', 4096, 'geom', 'id') FROM (
  SELECT g.id, g.code AS grid_code, g.name, agg.open AS count, agg.card, agg.red, agg.yellow, 1 AS aggregate,
         ST_AsMVTGeom(ST_Translate(ST_Transform(ST_PointOnSurface(g.geom), 3857), :dx, :dy), env.m, 4096, :pbuf, true) AS geom
  FROM grids g JOIN agg ON agg.code = g.code CROSS JOIN env
  WHERE g.valid_to IS NULL AND g.geom && env.g) t WHERE geom IS NOT NULL
"""

TICKET_POINT_SQL = f"""
WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g)
SELECT ST_AsMVT(t, 'tickets', 4096, 'geom', 'id') FROM (
  SELECT k.id, k.state, k.card, {CARD_RANK_SQL} AS card_rank, k.category, k.severity, k.channel,
         k.grid_code, 1 AS count, 0 AS aggregate, extract(epoch FROM k.created_at)::bigint AS created,
         ST_AsMVTGeom(ST_Translate(ST_Transform(k.geom, 3857), :dx, :dy), env.m, 4096, :pbuf, true) AS geom
  FROM tickets k CROSS JOIN env
  WHERE k.geom && env.g AND k.{OPEN_STATES_SQL} AND k.duplicate_of IS NULL
    AND (CAST(:ids AS bigint[]) IS NULL OR k.id = ANY(CAST(:ids AS bigint[])))
  ORDER BY k.id DESC LIMIT {MAX_TICKETS_PER_TILE}) t WHERE geom IS NOT NULL
"""

WORKER_SQL = """
WITH env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g)
SELECT ST_AsMVT(t, 'workers', 4096, 'geom') FROM (
  SELECT w.id, w.name, w.role, w.on_duty, extract(epoch FROM p.ts)::bigint AS fix_at,
         ST_AsMVTGeom(ST_Translate(ST_Transform(p.geom, 3857), :dx, :dy), env.m, 4096, :pbuf, true) AS geom
  FROM worker_last_positions p JOIN workers w ON w.id = p.worker_id CROSS JOIN env
  WHERE w.active AND p.geom && env.g AND (CAST(:ids AS text[]) IS NULL OR w.id = ANY(CAST(:ids AS text[])))
  ORDER BY w.id) t WHERE geom IS NOT NULL
"""


# ----------------------------------------------------------------------------- tile maths

def tile_centre(z: int, x: int, y: int) -> tuple[float, float]:
    """Longitude and latitude of a tile's centre (Web Mercator, XYZ scheme)."""
    n = 2.0 ** z
    lon = (x + 0.5) / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n))))
    return lon, lat


def mercator(lon: float, lat: float) -> tuple[float, float]:
    r = WORLD_M / (2 * math.pi)
    return math.radians(lon) * r, r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def crs_offset(z: int, x: int, y: int, crs: str) -> dict[str, float]:
    """The shift that lays WGS84 overlays on this tile of a base map in ``crs`` (zero for wgs84)."""
    if crs == "wgs84":
        return {"dlon": 0.0, "dlat": 0.0, "dx": 0.0, "dy": 0.0}
    lon, lat = tile_centre(z, x, y)
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    (mx, my), (gx, gy) = mercator(lon, lat), mercator(glon, glat)
    return {"dlon": glon - lon, "dlat": glat - lat, "dx": gx - mx, "dy": gy - my}


def tile_params(z: int, x: int, y: int, crs: str) -> dict[str, float | int]:
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidInput(f"tile {z}/{x}/{y} does not exist: x and y must be in 0..{2**z - 1} at zoom {z}")
    size_m = WORLD_M / 2**z
    return {"z": z, "x": x, "y": y, "tol": size_m / SIMPLIFY_PER_TILE, "margin": BUFFER / EXTENT,
            **crs_offset(z, x, y, crs)}


# ----------------------------------------------------------------------------- data

_TABLE_SEEN: dict[tuple, float] = {}  # (database, table) → when it was last looked for and missing (0: found)
_AGGREGATES: dict[tuple, dict[str, list]] = {}
_INFO: dict[tuple, dict] = {}  # (database, registry version) → bounds and counts of the registry


def _db(session: Session) -> str:
    return str(session.get_bind().engine.url)


def has_table(session: Session, table: str) -> bool:
    """Whether a layer's table exists (once seen it stays; a missing one is looked for every 30 s)."""
    key = (_db(session), table)
    missing_since = _TABLE_SEEN.get(key)
    if missing_since == 0.0:
        return True
    if missing_since is not None and time.monotonic() - missing_since < 30:
        return False
    found = session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{table}"}) is True
    _TABLE_SEEN[key] = 0.0 if found else time.monotonic()
    return found


def has_tickets(session: Session) -> bool:
    return has_table(session, "tickets")


def has_workers(session: Session) -> bool:
    return has_table(session, "worker_last_positions")


def scope_tag(scope: Scope | None) -> str:
    """A cache-key part that differs between scopes that see different tickets ("" city-wide)."""
    if scope is None or scope.city_wide:
        return ""
    return f"{scope.role}|{scope.area_code or ''}|{scope.department or ''}|{','.join(scope.grid_codes)}"


def open_ticket_ids(session: Session, scope: Scope | None) -> list[int] | None:
    """The open tickets ``scope`` sees (None: all); open tickets are few, so a list is cheap."""
    if scope is None or scope.city_wide or not has_tickets(session):
        return None
    from sqlalchemy import select

    from layers.incidents.models import Ticket

    stmt = select(Ticket.id).where(Ticket.state.not_in(("closed", "signed_off")), Ticket.duplicate_of.is_(None))
    return list(session.scalars(scope.filter(stmt, Ticket)))


def visible_worker_ids(session: Session, scope: Scope | None) -> list[str] | None:
    """The workers ``scope`` sees, as ``GET /workers`` lists them (None: all): its town's, and those
    patrolling a grid in its area."""
    if scope is None or scope.city_wide:
        return None
    from sqlalchemy import select

    from layers.workers.models import Assignment, Worker

    return list(session.scalars(scope.filter(select(Worker.id), Worker, via=(Worker.id, Assignment.worker_id))))


def open_by_grid(session: Session, stamp: str = "", scope: Scope | None = None) -> dict[str, list]:
    """Open tickets per grid as parallel arrays: counts, worst card (0 ok, 1 yellow, 2 red), reds, yellows.

    One GROUP BY serves every tile of the same ``stamp`` (time bucket + client version) in this process.
    """
    if not has_tickets(session):
        return {"codes": [], "opens": [], "cards": [], "reds": [], "yellows": []}
    key = (_db(session), stamp, scope_tag(scope))
    if stamp and key in _AGGREGATES:
        return _AGGREGATES[key]
    from layers.incidents.layer import grid_counts

    frame = grid_counts(session, scope=scope)
    out = {"codes": frame["grid_code"].tolist(), "opens": frame["open_count"].tolist(),
           "cards": frame["worst_card"].map(CARD_RANK).tolist(), "reds": frame["red"].tolist(),
           "yellows": frame["yellow"].tolist()}
    if stamp:
        if len(_AGGREGATES) > 16:
            _AGGREGATES.clear()
        _AGGREGATES[key] = out
    return out


def clear_caches() -> None:
    """Forget cached tiles, aggregates, layer info and table lookups (tests that write tickets call this)."""
    CACHE.items.clear()
    _AGGREGATES.clear()
    _TABLE_SEEN.clear()
    _INFO.clear()


def registry_version(session: Session) -> int:
    return int(session.scalar(text("SELECT coalesce(max(id), 0) FROM grid_edits")))


class TileCache:
    """A small LRU of finished tiles; entries expire after ``ttl`` seconds (None: never)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.items: OrderedDict[tuple, tuple[float | None, bytes]] = OrderedDict()

    def get(self, key: tuple) -> bytes | None:
        hit = self.items.get(key)
        if hit is None or (hit[0] is not None and hit[0] < time.monotonic()):
            return None
        self.items.move_to_end(key)
        return hit[1]

    def put(self, key: tuple, tile: bytes, ttl: float | None) -> None:
        self.items[key] = (None if ttl is None else time.monotonic() + ttl, tile)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


CACHE = TileCache()
TICKET_TTL_S = 5.0
WORKER_TTL_S = 2.0  # live positions


def render_tile(session: Session, layer: str, params: dict, stamp: str = "", scope: Scope | None = None) -> bytes:
    """One tile's bytes for ``layer`` (empty bytes when nothing is in it).

    ``all`` is every layer in one tile (grids, villages, towns, then tickets when they exist): a
    big screen then makes a quarter of the requests, drawn in that order. ``base`` is the registry
    alone (grids without ticket counts, villages, towns, districts): it depends on nothing else.
    """
    if layer == "all":
        names = ["grids", "villages", "towns"] + (["tickets"] if has_tickets(session) else [])
        return b"".join(render_tile(session, name, params, stamp, scope) for name in names)
    if layer == "base":
        return bytes(session.scalar(text(BASE_SQL), {**params, **grid_name_params(scope)}) or b"")
    if layer == "workers":
        return bytes(session.scalar(text(WORKER_SQL), {**params, "ids": visible_worker_ids(session, scope),
                                                        "pbuf": POINT_BUFFER, "margin": POINT_BUFFER / EXTENT}) or b"")
    if layer in ("towns", "villages", "districts"):
        sql, extra = AREA_SQL, {"level": layer[:-1], "layer": layer}
    elif layer == "grids":
        sql, extra = GRID_SQL, {**open_by_grid(session, stamp, scope), **grid_name_params(scope)}
    elif params["z"] < TICKET_POINT_ZOOM:
        sql, extra = TICKET_AGG_SQL, open_by_grid(session, stamp, scope)
    else:
        sql, extra = TICKET_POINT_SQL, {"ids": open_ticket_ids(session, scope)}
    if layer == "tickets":
        extra = {**extra, "pbuf": POINT_BUFFER, "margin": POINT_BUFFER / EXTENT}
    tile = session.scalar(text(sql), {**params, **extra})
    return bytes(tile or b"")


def grid_name_params(scope: Scope | None) -> dict:
    """Which grids' names the caller sees, as SQL parameters: all (city-wide), those under its area's
    code prefix, or (a grid worker) its own grids."""
    if scope is None or scope.city_wide:
        return {"names_all": True, "names_prefix": "", "names_codes": []}
    if scope.role == "grid_worker":
        return {"names_all": False, "names_prefix": "", "names_codes": list(scope.grid_codes)}
    if scope.area_code:
        level = C.level_of(scope.area_code)
        return {"names_all": False, "names_prefix": scope.area_code[:PREFIX[level]] + "%", "names_codes": []}
    return {"names_all": True, "names_prefix": "", "names_codes": []}  # a department without an area: city-wide


def ticket_stamp(client_version: int = 0) -> str:
    """The cache stamp of ticket-driven data: a few-second time bucket plus the client's live version."""
    return f"{int(time.time() // TICKET_TTL_S)}.{client_version}"


def cache_key(session: Session, layer: str, params: dict, crs: str,
              client_version: int = 0, scope: Scope | None = None) -> tuple[tuple, str, float | None, str]:
    """(key, etag, ttl, ticket stamp): registry layers are versioned by edit id; ticket-coloured ones
    by a few-second time bucket plus the client's version (bumped on every live ticket event); worker
    positions by a two-second bucket plus that version."""
    version = registry_version(session)
    if layer == "workers":
        ttl: float | None = WORKER_TTL_S
        stamp_t = f"{int(time.time() // WORKER_TTL_S)}.{client_version}"
    elif layer in ("tickets", "all", "grids") and has_tickets(session):
        ttl, stamp_t = TICKET_TTL_S, ticket_stamp(client_version)
    else:
        ttl, stamp_t = None, ""
    live = ttl is not None
    stamp = f"{version}" + (f".{stamp_t}" if live else "")
    tag = scope_tag(scope) if live or layer in NAMED_LAYERS else ""
    if tag:  # the ETag differs per scope too, without spelling the scope out
        stamp += "." + _digest(tag)
    key = (_db(session), layer, params["z"], params["x"], params["y"], crs, stamp)
    return key, f'W/"{layer}-{crs}-{stamp}"', ttl, stamp_t


def _digest(value: str | bytes) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()[:16]


def _cache_headers(scope: Scope, max_age: int, etag: str, *, immutable: bool = False) -> dict[str, str]:
    shared = scope.city_wide and scope.demo_mode  # the open demo: any cache may keep it
    headers = {"ETag": etag, "Cache-Control": f"{'public' if shared else 'private'}, max-age={max_age}"
               + (", immutable" if immutable else ""), "Vary": "Authorization, Cookie"}
    if shared:
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


# ----------------------------------------------------------------------------- routes

LAYERS = ("towns", "villages", "grids", "tickets", "all", "districts", "base", "workers")
NAMED_LAYERS = ("grids", "all", "base")  # carry grid names: cached per scope
YEAR_S = 365 * 24 * 3600


def registry_info(session: Session) -> dict:
    """Bounds of the grids and how many grids, villages and towns there are, once per registry version."""
    version = registry_version(session)
    key = (_db(session), version)
    if key not in _INFO:
        box = session.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
                                   " (SELECT ST_Extent(geom) AS e FROM grids WHERE valid_to IS NULL) s")).one()
        counts = dict(session.execute(text(
            "SELECT 'grids', count(*) FROM grids WHERE valid_to IS NULL UNION ALL"
            " SELECT level || 's', count(*) FROM areas WHERE valid_to IS NULL GROUP BY level")).all())
        if len(_INFO) > 16:
            _INFO.clear()
        _INFO[key] = {"bounds": None if box[0] is None else [round(v, 6) for v in box], "registry_version": version,
                      "counts": {k: int(v) for k, v in counts.items()}}
    return _INFO[key]


@router.get("/tiles")
def tile_layers(session: SessionDep, scope: ScopeDep) -> dict:
    """The tile layers this server has now (``tickets`` and ``workers`` appear once their tables exist), the grids' bounds,
    the registry version (``?r=`` on registry tiles makes them immutable) and the registry's counts."""
    names = [n for n in LAYERS if (n != "tickets" or has_tickets(session)) and (n != "workers" or has_workers(session))]
    info = registry_info(session)
    return {**info, "stats": "/tiles/grid-stats", "layers": [
        {"name": n, "tiles": [f"/tiles/{n}/{{z}}/{{x}}/{{y}}.pbf"], "minzoom": 0, "maxzoom": 22,
         "labels": f"{n}_labels" if n not in ("tickets", "all", "base", "workers") else None,
         "aggregate_below_zoom": TICKET_POINT_ZOOM if n == "tickets" else None} for n in names]}


@router.get("/tiles/grid-stats")
def grid_stats(request: Request, session: SessionDep, scope: ScopeDep,
               v: Annotated[int, Query(ge=0, description="client's live version: a new one skips cached counts")] = 0,
               ) -> Response:
    """Open tickets per grid the caller sees: ``grids`` maps a grid code to ``[open, worst card (0 ok,
    1 yellow, 2 red), red, yellow]`` (grids without open tickets are left out), with city totals.

    What colours the ``base`` tiles on the big screen: a live ticket event refetches this (a few kB)
    instead of every tile on the screen."""
    tickets = has_tickets(session)
    stamp = ticket_stamp(v) if tickets else ""
    data = open_by_grid(session, stamp, scope)
    grids = {code: [o, c, r, y] for code, o, c, r, y in
             zip(data["codes"], data["opens"], data["cards"], data["reds"], data["yellows"], strict=True) if o}
    body = json.dumps({"tickets": tickets, "columns": ["open", "card", "red", "yellow"], "grids": grids,
                       "totals": {"open": sum(data["opens"]), "red": sum(data["reds"]), "yellow": sum(data["yellows"]),
                                  "grids": len(grids)}}, separators=(",", ":")).encode()
    headers = _cache_headers(scope, int(TICKET_TTL_S), f'W/"stats-{_digest(body)}"')
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
    from layers.duty import duty

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
    if layer not in LAYERS:
        raise NotFound(f"no tile layer {layer!r}; layers: {', '.join(LAYERS)}")
    if layer == "tickets" and not has_tickets(session):
        raise NotFound("no tile layer 'tickets': the tickets table does not exist yet")
    if layer == "workers" and not has_workers(session):
        raise NotFound("no tile layer 'workers': the workers tables do not exist yet")
    params = tile_params(z, x, y, crs)
    key, etag, ttl, stamp = cache_key(session, layer, params, crs, v, scope)
    immutable = ttl is None and r is not None and key[-1].split(".")[0] == str(r)
    headers = _cache_headers(scope, YEAR_S if immutable else int(ttl) if ttl else 300, etag, immutable=immutable)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    body = CACHE.get(key)
    headers["X-Tile-Cache"] = "miss" if body is None else "hit"
    if body is None:
        body = render_tile(session, layer, params, stamp, scope)
        CACHE.put(key, body, ttl)
    return Response(body, media_type=MVT, headers=headers)
