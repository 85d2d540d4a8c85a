"""Vector tiles of the registry (Mapbox Vector Tile) straight from PostGIS, and the tile maths.

Why tiles: the demo city's grids as plain GeoJSON are 7.8 MB, too heavy for every screen on every load.
PostGIS clips and quantises each tile (ST_TileEnvelope, ST_AsMVTGeom, ST_AsMVT), so a screen fetches
only what it shows at the detail it can show. This module knows the registry only (districts, towns,
villages, grids); what colours grids by tickets and the ticket and worker layers are in
``layers/maptiles.py``, which passes the per-grid counts in as arrays (``GRID_SQL``'s ``:codes`` ...).

Each polygon layer carries a second MVT layer ``<layer>_labels`` of one label point per feature, kept
only in the tile that holds the point, so labels are never repeated at tile edges.

GCJ-02 base maps: each tile's overlay is translated by the GCJ-02 offset at the tile's centre
(:func:`crs_offset`). The offset varies by metres over tens of kilometres, so within one tile the
error is far below a pixel at every zoom.

Registry tiles change only with an edit: they are cached (:data:`TILES`) keyed by the registry version.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import registry
from gis.cache import Cache, database_key
from gis.coords import wgs84_to_gcj02
from gis.errors import InvalidInput

MVT = "application/vnd.mapbox-vector-tile"
EXTENT = 4096
BUFFER = 64
SIMPLIFY_PER_TILE = 1024  # simplify to 1/1024 of a tile: half a pixel when a tile is drawn 512 px wide
POINT_BUFFER = 512  # point symbols are up to ~30 px wide: neighbours draw the overhang too
WORLD_M = 40075016.68557849  # EPSG:3857 width of the world
TABLE_RECHECK_S = 30.0

# The tile's envelope in EPSG:3857 (m) and, widened by the margin and shifted back by the CRS offset,
# in EPSG:4326 (g) for the GiST test.
ENV_SQL = """env AS (SELECT ST_TileEnvelope(:z, :x, :y) AS m,
                    ST_Translate(ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => :margin), 4326), -:dlon, -:dlat) AS g)"""

# A label point belongs to exactly one tile: half-open bounds (AsMVTGeom's rounding would put a point
# within half a unit of an edge into both neighbours).
INSIDE_SQL = ("ST_X(lp) >= ST_XMin(env.m) AND ST_X(lp) < ST_XMax(env.m)"
              " AND ST_Y(lp) > ST_YMin(env.m) AND ST_Y(lp) <= ST_YMax(env.m)")

AREA_SQL = """
WITH {env},
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
""".replace("{inside}", INSIDE_SQL).replace("{env}", ENV_SQL)

GRID_SQL = """
WITH {env},
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
""".replace("{inside}", INSIDE_SQL).replace("{env}", ENV_SQL)

# The registry alone in one query, with only what the big screen draws and labels: polygons carry their
# code (grids: colour by open tickets; towns: the selected one), names ride on the label points only.
BASE_SQL = """
WITH {env},
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
""".replace("{inside}", INSIDE_SQL).replace("{env}", ENV_SQL)

TILES: Cache[bytes] = Cache("map tiles", size=4096)  # finished tiles; ticket-driven ones expire
_TABLES: Cache[bool] = Cache("tables seen", size=256)  # (database, table) → found; a miss is asked again
_INFO: Cache[dict[str, Any]] = Cache("registry info", size=16)  # (database, registry version) → bounds, counts


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

def has_table(session: Session, table: str) -> bool:
    """Whether a layer's table exists (once seen it stays; a missing one is looked for every 30 s)."""
    key = (database_key(session), table)
    known = _TABLES.get(key)
    if known is not None:
        return known
    found = session.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"public.{table}"}) is True
    _TABLES.put(key, found, ttl=None if found else TABLE_RECHECK_S)
    return found


def registry_info(session: Session) -> dict[str, Any]:
    """Bounds of the grids and how many grids, villages and towns there are, once per registry version."""
    version = registry.registry_version(session)

    def make() -> dict[str, Any]:
        box = registry.extent(session, "grids")
        return {"bounds": None if box is None else [round(v, 6) for v in box], "registry_version": version,
                "counts": registry.current_counts(session)}

    return _INFO.get_or_make((database_key(session), version), make)


def render_registry(session: Session, layer: str, params: dict[str, Any], *, names: dict[str, Any],
                    counts: dict[str, list[Any]] | None = None) -> bytes:
    """One tile of a registry layer: ``base`` (every level, lean), ``grids`` (with ``counts``, the
    per-grid arrays GRID_SQL joins: codes, opens, cards, reds, yellows) or ``towns``/``villages``/
    ``districts``. ``names`` says whose grid names the tile carries (names_all, names_prefix, names_codes)."""
    if layer == "base":
        sql, extra = BASE_SQL, names
    elif layer == "grids":
        sql, extra = GRID_SQL, {**(counts or no_counts()), **names}
    elif layer in ("towns", "villages", "districts"):
        sql, extra = AREA_SQL, {"level": layer[:-1], "layer": layer}
    else:
        raise InvalidInput(f"{layer!r} is not a registry tile layer")
    return bytes(session.scalar(text(sql), {**params, **extra}) or b"")


# The registry's names anyone may see: towns' and villages' (public), no grid's.
PUBLIC_NAMES = {"names_all": False, "names_prefix": "", "names_codes": []}


def public_base(session: Session, z: int, x: int, y: int, crs: str) -> bytes:
    """The ``base`` tile for pages without an account (the public report form): outlines, town and
    village names, no grid names. In :data:`TILES` with the other registry tiles, per registry version."""
    params = tile_params(z, x, y, crs)  # a tile outside the zoom's range: 400
    key = (database_key(session), "public-base", z, x, y, crs, registry.registry_version(session))
    return TILES.get_or_make(key, lambda: render_registry(session, "base", params, names=PUBLIC_NAMES))


def no_counts() -> dict[str, list[Any]]:
    """The per-grid count arrays when nothing is counted."""
    return {"codes": [], "opens": [], "cards": [], "reds": [], "yellows": []}


def clear_caches() -> None:
    """Forget cached tiles, registry info and table lookups."""
    for cache in (TILES, _TABLES, _INFO):
        cache.clear()
