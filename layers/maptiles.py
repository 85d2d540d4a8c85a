"""The map's vector tiles as the caller sees them: registry tiles (gis.tiles) coloured by tickets, and
the ticket and worker layers.

Layers: ``districts``, ``towns``, ``villages``, ``grids`` (with open-ticket counts and the worst card when
the tickets table exists), ``tickets`` (aggregated per grid below zoom 13, single tickets above) and
``workers`` (last positions: id, name, role, on duty, fix time). ``all`` is grids, villages, towns and
tickets in one tile. ``base`` is the registry alone, lean: the big screen colours it from
:func:`grid_stats` (open tickets per grid), which is all that changes when a ticket does.

Scope: boundaries are the map's frame and stay city-wide; grid *names* are the caller's only (a grid
outside the caller's area comes without its name); everything about tickets counts only the tickets
the caller's scope sees; the workers are those ``GET /workers`` lists for the caller. Scoped answers
are cached per scope.

Caching (:data:`gis.tiles.TILES`): registry tiles are keyed by the registry version (the newest edit
id) and kept for good; ticket tiles and the grid stats by a few-second time bucket plus the client's
live version; worker positions by a two-second bucket.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gis import codes as C
from gis import tiles as T
from gis.cache import Cache, database_key
from gis.errors import NotFound
from gis.registry import registry_version
from layers.accounts.scope import PREFIX, Scope
from layers.incidents.layer import grid_counts
from layers.incidents.models import Ticket
from layers.incidents.workflow import TERMINAL
from layers.workers.models import Assignment, Worker

TICKET_POINT_ZOOM = 13  # below: one aggregate per grid; from here: single tickets
MAX_TICKETS_PER_TILE = 20_000
TICKET_TTL_S = 5.0
WORKER_TTL_S = 2.0  # live positions
CARD_RANK = {"ok": 0, "yellow": 1, "red": 2}
CARD_RANK_SQL = "CASE card WHEN 'red' THEN 2 WHEN 'yellow' THEN 1 ELSE 0 END"
CLOSED_STATES = tuple(sorted(s.value for s in TERMINAL))
OPEN_STATES_SQL = f"state NOT IN ({', '.join(repr(s) for s in CLOSED_STATES)})"

LAYERS = ("towns", "villages", "grids", "tickets", "all", "districts", "base", "workers")
NAMED_LAYERS = ("grids", "all", "base")  # carry grid names: cached per scope

TICKET_AGG_SQL = f"""
WITH {T.ENV_SQL},
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
WITH {T.ENV_SQL}
SELECT ST_AsMVT(t, 'tickets', 4096, 'geom', 'id') FROM (
  SELECT k.id, k.state, k.card, {CARD_RANK_SQL} AS card_rank, k.category, k.severity, k.channel,
         k.grid_code, 1 AS count, 0 AS aggregate, extract(epoch FROM k.created_at)::bigint AS created,
         ST_AsMVTGeom(ST_Translate(ST_Transform(k.geom, 3857), :dx, :dy), env.m, 4096, :pbuf, true) AS geom
  FROM tickets k CROSS JOIN env
  WHERE k.geom && env.g AND k.{OPEN_STATES_SQL} AND k.duplicate_of IS NULL
    AND (CAST(:ids AS bigint[]) IS NULL OR k.id = ANY(CAST(:ids AS bigint[])))
  ORDER BY k.id DESC LIMIT {MAX_TICKETS_PER_TILE}) t WHERE geom IS NOT NULL
"""

WORKER_SQL = f"""
WITH {T.ENV_SQL}
SELECT ST_AsMVT(t, 'workers', 4096, 'geom') FROM (
  SELECT w.id, w.name, w.role, w.on_duty, extract(epoch FROM p.ts)::bigint AS fix_at,
         ST_AsMVTGeom(ST_Translate(ST_Transform(p.geom, 3857), :dx, :dy), env.m, 4096, :pbuf, true) AS geom
  FROM worker_last_positions p JOIN workers w ON w.id = p.worker_id CROSS JOIN env
  WHERE w.active AND p.geom && env.g AND (CAST(:ids AS text[]) IS NULL OR w.id = ANY(CAST(:ids AS text[])))
  ORDER BY w.id) t WHERE geom IS NOT NULL
"""

# (database, ticket stamp, scope) → per-grid arrays: one GROUP BY serves every tile of a stamp
_AGGREGATES: Cache[dict[str, list[Any]]] = Cache("open tickets per grid", size=16)


# ----------------------------------------------------------------------------- what the caller sees

def has_tickets(session: Session) -> bool:
    return T.has_table(session, "tickets")


def has_workers(session: Session) -> bool:
    return T.has_table(session, "worker_last_positions")


def scope_tag(scope: Scope | None) -> str:
    """A cache-key part that differs between scopes that see different tickets ("" city-wide)."""
    if scope is None or scope.city_wide:
        return ""
    return f"{scope.role}|{scope.area_code or ''}|{scope.department or ''}|{','.join(scope.grid_codes)}"


def open_ticket_ids(session: Session, scope: Scope | None) -> list[int] | None:
    """The open tickets ``scope`` sees (None: all); open tickets are few, so a list is cheap."""
    if scope is None or scope.city_wide or not has_tickets(session):
        return None
    stmt = select(Ticket.id).where(Ticket.state.not_in(CLOSED_STATES), Ticket.duplicate_of.is_(None))
    return list(session.scalars(scope.filter(stmt, Ticket)))


def visible_worker_ids(session: Session, scope: Scope | None) -> list[str] | None:
    """The workers ``scope`` sees, as ``GET /workers`` lists them (None: all): its town's, and those
    patrolling a grid in its area."""
    if scope is None or scope.city_wide:
        return None
    return list(session.scalars(scope.filter(select(Worker.id), Worker, via=(Worker.id, Assignment.worker_id))))


def open_by_grid(session: Session, stamp: str = "", scope: Scope | None = None) -> dict[str, list[Any]]:
    """Open tickets per grid as parallel arrays: counts, worst card (0 ok, 1 yellow, 2 red), reds, yellows.

    One GROUP BY serves every tile of the same ``stamp`` (time bucket + client version) in this process.
    """
    if not has_tickets(session):
        return T.no_counts()

    def make() -> dict[str, list[Any]]:
        frame = grid_counts(session, scope=scope)
        return {"codes": frame["grid_code"].tolist(), "opens": frame["open_count"].tolist(),
                "cards": frame["worst_card"].map(CARD_RANK).tolist(), "reds": frame["red"].tolist(),
                "yellows": frame["yellow"].tolist()}

    if not stamp:
        return make()
    return _AGGREGATES.get_or_make((database_key(session), stamp, scope_tag(scope)), make)


def grid_name_params(scope: Scope | None) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------- tiles

def render_tile(session: Session, layer: str, params: dict[str, Any], stamp: str = "",
                scope: Scope | None = None) -> bytes:
    """One tile's bytes for ``layer`` (empty bytes when nothing is in it).

    ``all`` is every layer in one tile (grids, villages, towns, then tickets when they exist): a
    big screen then makes a quarter of the requests, drawn in that order. ``base`` is the registry
    alone (grids without ticket counts, villages, towns, districts): it depends on nothing else.
    """
    if layer == "all":
        names = ["grids", "villages", "towns"] + (["tickets"] if has_tickets(session) else [])
        return b"".join(render_tile(session, name, params, stamp, scope) for name in names)
    if layer in ("base", "towns", "villages", "districts"):
        return T.render_registry(session, layer, params, names=grid_name_params(scope))
    if layer == "grids":
        return T.render_registry(session, layer, params, names=grid_name_params(scope),
                                 counts=open_by_grid(session, stamp, scope))
    points = {"pbuf": T.POINT_BUFFER, "margin": T.POINT_BUFFER / T.EXTENT}
    extra: dict[str, Any]
    if layer == "workers":
        sql, extra = WORKER_SQL, {"ids": visible_worker_ids(session, scope)}
    elif params["z"] < TICKET_POINT_ZOOM:
        sql, extra = TICKET_AGG_SQL, dict(open_by_grid(session, stamp, scope))
    else:
        sql, extra = TICKET_POINT_SQL, {"ids": open_ticket_ids(session, scope)}
    return bytes(session.scalar(text(sql), {**params, **extra, **points}) or b"")


def ticket_stamp(client_version: int = 0) -> str:
    """The cache stamp of ticket-driven data: a few-second time bucket plus the client's live version."""
    return f"{int(time.time() // TICKET_TTL_S)}.{client_version}"


def digest(value: str | bytes) -> str:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()[:16]


@dataclass(frozen=True)
class TilePlan:
    """What one tile request names: its cache key, ETag, time to live (None: the registry's, for good),
    ticket stamp, and the registry version it was keyed on."""

    layer: str
    params: dict[str, Any]
    key: tuple[Any, ...]
    etag: str
    ttl: float | None
    stamp: str
    version: int


def check_layer(session: Session, layer: str) -> None:
    """NotFound unless ``layer`` is one this server has now."""
    if layer not in LAYERS:
        raise NotFound(f"no tile layer {layer!r}; layers: {', '.join(LAYERS)}")
    if layer == "tickets" and not has_tickets(session):
        raise NotFound("no tile layer 'tickets': the tickets table does not exist yet")
    if layer == "workers" and not has_workers(session):
        raise NotFound("no tile layer 'workers': the workers tables do not exist yet")


def plan_tile(session: Session, layer: str, z: int, x: int, y: int, crs: str,
              client_version: int = 0, scope: Scope | None = None) -> TilePlan:
    """Registry layers are versioned by edit id; ticket-coloured ones by a few-second time bucket plus
    the client's version (bumped on every live ticket event); worker positions by a two-second bucket
    plus that version. The ETag differs per scope where the answer does, without spelling it out."""
    check_layer(session, layer)
    params = T.tile_params(z, x, y, crs)
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
    if tag:
        stamp += "." + digest(tag)
    key = (database_key(session), layer, z, x, y, crs, stamp)
    return TilePlan(layer, params, key, f'W/"{layer}-{crs}-{stamp}"', ttl, stamp_t, version)


def tile_bytes(session: Session, plan: TilePlan, scope: Scope | None = None) -> tuple[bytes, bool]:
    """The tile's bytes and whether they came from the cache."""
    body = T.TILES.get(plan.key)
    if body is not None:
        return body, True
    body = render_tile(session, plan.layer, plan.params, plan.stamp, scope)
    T.TILES.put(plan.key, body, ttl=plan.ttl)
    return body, False


# ----------------------------------------------------------------------------- the layer list and stats

def layer_list(session: Session) -> dict[str, Any]:
    """The tile layers this server has now (``tickets`` and ``workers`` once their tables exist), the
    grids' bounds, the registry version and the registry's counts."""
    names = [n for n in LAYERS if (n != "tickets" or has_tickets(session)) and (n != "workers" or has_workers(session))]
    return {**T.registry_info(session), "stats": "/tiles/grid-stats", "layers": [
        {"name": n, "tiles": [f"/tiles/{n}/{{z}}/{{x}}/{{y}}.pbf"], "minzoom": 0, "maxzoom": 22,
         "labels": f"{n}_labels" if n not in ("tickets", "all", "base", "workers") else None,
         "aggregate_below_zoom": TICKET_POINT_ZOOM if n == "tickets" else None} for n in names]}


def grid_stats(session: Session, scope: Scope | None, client_version: int = 0) -> dict[str, Any]:
    """Open tickets per grid the caller sees: ``grids`` maps a grid code to ``[open, worst card, red,
    yellow]`` (grids without open tickets are left out), with city totals."""
    tickets = has_tickets(session)
    data = open_by_grid(session, ticket_stamp(client_version) if tickets else "", scope)
    grids = {code: [o, c, r, y] for code, o, c, r, y in
             zip(data["codes"], data["opens"], data["cards"], data["reds"], data["yellows"], strict=True) if o}
    return {"tickets": tickets, "columns": ["open", "card", "red", "yellow"], "grids": grids,
            "totals": {"open": sum(data["opens"]), "red": sum(data["reds"]), "yellow": sum(data["yellows"]),
                       "grids": len(grids)}}


def clear_caches() -> None:
    """Forget cached tiles, aggregates, layer info and table lookups (tests that write tickets call this)."""
    T.clear_caches()
    _AGGREGATES.clear()
