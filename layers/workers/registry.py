"""People and assignments (网格员队伍): create, edit, assign grids, import from CSV, list.

Roles follow "1+1+N+N": a grid chief (网格长, may chair 2-3 grids), at least one full-time worker
(专职网格员), specialist workers (专业网格员) and helpers (网格协管员). A worker's town is the town of
the first assigned grid unless given. Phones are masked in every list (138****1234).
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import func, literal, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from gis import codes as C
from gis.batch import Batch, read_table
from gis.batch_values import blank
from gis.bulk import raw_connection
from gis.errors import Conflict, Forbidden, InvalidInput, NotFound
from gis.models import Grid
from gis.registry import current
from layers.accounts.scope import Scope
from layers.privacy import mask_phone
from layers.workers.models import ROLES, Assignment, LastPosition, Worker

ROLE_ALIASES = {**{r: r for r in ROLES}, **{v: k for k, v in ROLES.items()},
                "chief": "grid_chief", "fulltime": "full_time", "full-time": "full_time"}


def role_name(raw: str) -> str:
    key = str(raw).strip().lower()
    if key not in ROLE_ALIASES:
        raise InvalidInput(f"unknown role {raw!r}: use one of {', '.join(ROLES)} (or 网格长, 专职网格员, ...)")
    return ROLE_ALIASES[key]


def grid_list(raw) -> list[str]:
    parts = raw if isinstance(raw, list | tuple) else str(raw or "").replace("|", ";").replace(",", ";").split(";")
    return [C.validate_grid_code(p.strip()) for p in parts if str(p).strip()]


def _current_grids(session: Session, codes: Iterable[str]) -> dict[str, str]:
    """Grid code → town code, for the codes that are current grids."""
    rows = session.execute(select(Grid.code, Grid.town_code).where(current(Grid), Grid.code.in_(list(codes)))).all()
    return {code: town for code, town in rows}


def assign(session: Session, worker_id: str, grids: list[str]) -> list[str]:
    """Replace a worker's grids (one or several); every code must be a current grid."""
    get_worker(session, worker_id)
    codes = sorted(set(grid_list(grids)))
    missing = sorted(set(codes) - set(_current_grids(session, codes)))
    if missing:
        raise NotFound(f"no current grid {', '.join(missing)}")
    session.execute(text("DELETE FROM worker_grids WHERE worker_id = :w AND grid_code <> ALL(:c)"),
                    {"w": worker_id, "c": codes})
    session.execute(text("INSERT INTO worker_grids (worker_id, grid_code) SELECT :w, unnest(CAST(:c AS text[])) "
                         "ON CONFLICT DO NOTHING"), {"w": worker_id, "c": codes})
    return codes


def import_workers(session: Session, data, *, fmt: str | None = None) -> dict:
    """Register or update workers from CSV / JSON lines: id, name, role, phone, grids ("code;code")."""
    batch = Batch(read_table(data, fmt=fmt))
    for col in ("id", "name", "role", "grids"):
        if col not in batch.frame:
            batch.frame[col] = None
    batch.reject(blank(batch.frame["id"]), "missing worker id")
    batch.reject(blank(batch.frame["name"]), "missing name")
    batch.reject(batch.frame["id"].astype(str).str.strip().duplicated().to_numpy(), "duplicate worker id in file")
    rows, bad = [], []
    for r in batch.frame.to_dict("records"):
        try:
            rows.append(_worker_row(session, r))
        except (InvalidInput, NotFound) as exc:
            bad.append({"row": int(r["row"]), "reason": exc.message})
    for row in rows:
        _upsert(session, row)
    return {"imported": len(rows), "rejected": sorted(batch.rejected + bad, key=lambda r: r["row"])}


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) or not str(value).strip() \
        else str(value).strip()


def _worker_row(session: Session, r: dict) -> dict:
    grids = grid_list(r.get("grids"))
    towns = _current_grids(session, grids)
    missing = sorted(set(grids) - set(towns))
    if missing:
        raise NotFound(f"no current grid {', '.join(missing)}")
    town = _text(r.get("town_code")) or (towns[grids[0]] if grids else None)
    on_duty = str(r.get("on_duty", "true")).strip().lower() not in ("false", "0", "no", "off")
    return {"id": str(r["id"]).strip(), "name": str(r["name"]).strip(), "role": role_name(r.get("role") or "full_time"),
            "phone": _text(r.get("phone")), "town_code": town, "on_duty": on_duty, "grids": grids}


def _upsert(session: Session, row: dict) -> None:
    session.execute(text(
        "INSERT INTO workers (id, name, role, phone, town_code, on_duty) VALUES (:id, :name, :role, :phone, "
        ":town_code, :on_duty) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, role = EXCLUDED.role, "
        "phone = EXCLUDED.phone, town_code = EXCLUDED.town_code, on_duty = EXCLUDED.on_duty, active = true"),
        {k: row[k] for k in ("id", "name", "role", "phone", "town_code", "on_duty")})
    if row["grids"]:
        assign(session, row["id"], row["grids"])


def create_worker(session: Session, *, id: str, name: str, role: str = "full_time", phone: str | None = None,
                  grids: list[str] | None = None, on_duty: bool = True) -> dict:
    if session.scalar(text("SELECT 1 FROM workers WHERE id = :id"), {"id": id}):
        raise Conflict(f"worker {id} is already registered")
    _upsert(session, _worker_row(session, {"id": id, "name": name, "role": role, "phone": phone,
                                           "grids": grids or [], "on_duty": on_duty}))
    return get_worker(session, id)


def update_worker(session: Session, worker_id: str, *, name: str | None = None, role: str | None = None,
                  phone: str | None = None, on_duty: bool | None = None, active: bool | None = None) -> dict:
    get_worker(session, worker_id)
    session.execute(text(
        "UPDATE workers SET name = coalesce(:name, name), role = coalesce(:role, role), phone = coalesce(:phone, phone), "
        "on_duty = coalesce(:on_duty, on_duty), active = coalesce(:active, active) WHERE id = :id"),
        {"id": worker_id, "name": name, "role": role_name(role) if role else None, "phone": phone,
         "on_duty": on_duty, "active": active})
    return get_worker(session, worker_id)


def scoped_ids(session: Session, scope: Scope, worker_ids: Iterable[str] | None = None) -> set[str] | None:
    """The workers ``scope`` sees (None: all of them): those of its town, and those assigned to a
    grid in its area (a worker is seen by every area it patrols)."""
    if scope.city_wide:
        return None
    stmt = scope.filter(select(Worker.id), Worker, via=(Worker.id, Assignment.worker_id))
    if worker_ids is not None:
        stmt = stmt.where(Worker.id.in_(list(worker_ids)))
    return set(session.scalars(stmt))


def check_worker(session: Session, scope: Scope | None, worker_id: str) -> None:
    """NotFound for a worker outside ``scope``, exactly as for one that does not exist."""
    if scope is not None and not scope.city_wide and not scoped_ids(session, scope, [worker_id]):
        raise NotFound(f"no worker {worker_id!r}")


def last_positions(session: Session, *, town: str | None = None, scope: Scope | None = None) -> gpd.GeoDataFrame:
    """Active workers with a fix: id, name, role, masked phone, town, duty, fix time and grid, grids
    (``a;b``); within ``scope`` when given. Phones are masked in this list for every role."""
    ordered = aggregate_order_by(literal(";"), Assignment.grid_code)
    grids = (select(func.coalesce(func.string_agg(Assignment.grid_code, ordered), ""))
             .where(Assignment.worker_id == Worker.id).scalar_subquery())
    stmt = (select(Worker.id, Worker.name, Worker.role, Worker.phone, Worker.town_code, Worker.on_duty,
                   LastPosition.ts.label("fix_at"), LastPosition.grid_code, grids.label("grids"),
                   func.ST_AsBinary(LastPosition.geom).label("wkb"))
            .join(LastPosition, LastPosition.worker_id == Worker.id).where(Worker.active).order_by(Worker.id))
    if town:
        stmt = stmt.where(Worker.town_code == town)
    if scope is not None:
        stmt = scope.filter(stmt, Worker, via=(Worker.id, Assignment.worker_id))
    rows = session.execute(stmt).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=["id", "name", "role", "phone", "town_code", "on_duty",
                                                         "fix_at", "grid_code", "grids", "wkb"])
    frame["phone"] = frame["phone"].map(mask_phone)
    frame["role_name"] = frame["role"].map(ROLES)
    geoms = shapely.from_wkb([bytes(w) for w in frame.pop("wkb")]) if len(frame) else []
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=4326))


def get_worker(session: Session, worker_id: str, *, masked: bool = True, scope: Scope | None = None) -> dict:
    """One worker; outside ``scope`` a 404. The phone: masked, or as ``scope``'s role may see it."""
    check_worker(session, scope, worker_id)
    row = session.execute(text(
        "SELECT w.id, w.name, w.role, w.phone, w.town_code, w.on_duty, w.active, "
        "coalesce(array_agg(g.grid_code ORDER BY g.grid_code) FILTER (WHERE g.grid_code IS NOT NULL), '{}') AS grids "
        "FROM workers w LEFT JOIN worker_grids g ON g.worker_id = w.id WHERE w.id = :id GROUP BY w.id"),
        {"id": worker_id}).mappings().first()
    if row is None:
        raise NotFound(f"no worker {worker_id!r}")
    out = dict(row)
    out["role_name"] = ROLES[out["role"]]
    if scope is not None:
        out["phone"] = scope.phone(out["phone"])
    elif masked:
        out["phone"] = mask_phone(out["phone"])
    return out


def known_ids(session: Session, ids: Iterable[str] | None = None) -> set[str]:
    """The active workers' ids; with ``ids``, those of them that are active workers (GPS ingest asks
    with a batch's own ids: one indexed query, exact whatever was registered a moment ago)."""
    if ids is None:
        return set(session.scalars(text("SELECT id FROM workers WHERE active")))
    with raw_connection(session).cursor() as cur:  # the raw cursor: this runs for every GPS batch
        cur.execute("SELECT id FROM workers WHERE active AND id = ANY(%s)", [list(ids)])
        return {r[0] for r in cur.fetchall()}


def assignments(session: Session, worker_ids: Iterable[str]) -> dict[str, list[str]]:
    rows = session.execute(text("SELECT worker_id, grid_code FROM worker_grids WHERE worker_id = ANY(:w) "
                                "ORDER BY worker_id, grid_code"), {"w": list(worker_ids)}).all()
    out: dict[str, list[str]] = {}
    for worker_id, code in rows:
        out.setdefault(worker_id, []).append(code)
    return out


def known_in_scope(session: Session, scope: Scope | None, ids: Iterable[str]) -> set[str]:
    """:func:`known_ids` for a GPS batch sent by ``scope``. A grid worker (网格员) reports only its own
    fixes: its account's username is its worker id. Other scoped writers report for the workers they
    see (their town's, and those patrolling a grid in their area). A batch naming anyone else is
    refused whole (Forbidden, the offending ids in ``detail``): nothing is stored, nothing dropped."""
    found = known_ids(session, ids)
    if scope is None or scope.city_wide or not found:
        return found
    if scope.role == "grid_worker":
        visible = found & {scope.user}
    else:
        visible = scoped_ids(session, scope, sorted(found)) or set()
    foreign = sorted(found - visible)
    if foreign:
        who = "your own worker id" if scope.role == "grid_worker" else "your area"
        raise Forbidden(f"worker(s) outside {who}: {', '.join(foreign[:20])}"
                        + (f" and {len(foreign) - 20} more" if len(foreign) > 20 else "")
                        + "; nothing was stored", detail={"ids": foreign})
    return found
