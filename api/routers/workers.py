"""Field workers: people and grids, GPS batches, last positions, a day's track, the patrol report,
and nearest help for a ticket."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

import geopandas as gpd
import pandas as pd
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from gis.errors import InvalidInput
from layers.incidents.service import mask_phone
from layers.workers import ingest, live, registry, report, tracks
from layers.workers.models import ROLES

router = APIRouter(tags=["workers"])

MAX_BODY = 200 * 1024 * 1024


class WorkerIn(BaseModel):
    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=50)
    role: str = "full_time"
    phone: str | None = None
    grids: list[str] = []
    on_duty: bool = True


class WorkerPatch(BaseModel):
    name: str | None = None
    role: str | None = None
    phone: str | None = None
    on_duty: bool | None = None
    active: bool | None = None


class GridsIn(BaseModel):
    grids: list[str]


def _day(value: str | None) -> date:
    from layers.workers.simulate import day_of

    try:
        return day_of(value)
    except ValueError as exc:
        raise InvalidInput(f"date must look like 2026-05-01, got {value!r}") from exc


@router.get("/workers", response_class=GeoJSONResponse)
def workers(session: SessionDep, town: str | None = None) -> GeoJSONResponse:
    """Last positions (GeoJSON): id, name, role, grids, masked phone, fix time and grid."""
    rows = session.execute(text(
        "SELECT w.id, w.name, w.role, w.phone, w.town_code, w.on_duty, p.ts AS fix_at, p.grid_code, "
        "coalesce((SELECT string_agg(grid_code, ';' ORDER BY grid_code) FROM worker_grids g WHERE g.worker_id = w.id), '') "
        "AS grids, ST_AsBinary(p.geom) AS wkb FROM workers w JOIN worker_last_positions p ON p.worker_id = w.id "
        "WHERE w.active AND (CAST(:t AS text) IS NULL OR w.town_code = :t) ORDER BY w.id"), {"t": town}).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=["id", "name", "role", "phone", "town_code", "on_duty",
                                                         "fix_at", "grid_code", "grids", "wkb"])
    frame["phone"] = frame["phone"].map(mask_phone)
    frame["role_name"] = frame["role"].map(ROLES)
    geoms = shapely.from_wkb([bytes(w) for w in frame.pop("wkb")]) if len(frame) else []
    return GeoJSONResponse(feature_collection(gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=4326)),
                                              id_column="id"))


@router.post("/workers", status_code=201)
def create(session: SessionDep, worker: WorkerIn) -> dict:
    return registry.create_worker(session, **worker.model_dump())


@router.post("/workers/import")
async def import_workers(request: Request, session: SessionDep) -> dict:
    """Register or update workers from CSV / JSON lines: id, name, role, phone, grids."""
    body = await request.body()
    fmt = "csv" if "csv" in request.headers.get("content-type", "") else None
    return registry.import_workers(session, body, fmt=fmt)


@router.post("/workers/positions")
async def positions(request: Request, session: SessionDep, crs: str = "EPSG:4326") -> dict:
    """A batch of GPS fixes (CSV or JSON lines) in any CRS: good rows land, bad ones come back."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput(f"batch larger than {MAX_BODY // 2**20} MB: split it")
    kind = request.headers.get("content-type", "")
    fmt = "csv" if "csv" in kind else "jsonl" if "json" in kind else None
    return ingest.ingest_positions(session, body, crs=crs, fmt=fmt).as_dict()


@router.get("/workers/report")
def patrol_report(session: SessionDep, town: str, date: str | None = None,
                  format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"):
    """The daily patrol report of a town; ``format=csv`` downloads it (UTF-8 with BOM)."""
    day = _day(date)
    frame = report.patrol_report(session, town, day)
    if format == "csv":
        return Response(report.report_csv(frame), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="patrol-{town}-{day}.csv"'})
    return {"town": town, "date": day.isoformat(), "workers": frame.to_dict("records")}


@router.get("/workers/{worker_id}")
def get(session: SessionDep, worker_id: str) -> dict:
    return registry.get_worker(session, worker_id)


@router.patch("/workers/{worker_id}")
def update(session: SessionDep, worker_id: str, patch: WorkerPatch) -> dict:
    return registry.update_worker(session, worker_id, **patch.model_dump(exclude_unset=True))


@router.put("/workers/{worker_id}/grids")
def assign(session: SessionDep, worker_id: str, body: GridsIn) -> dict:
    """Replace the worker's grids ("one person one grid" or several)."""
    registry.assign(session, worker_id, body.grids)
    return registry.get_worker(session, worker_id)


@router.get("/workers/{worker_id}/track", response_class=GeoJSONResponse)
def track(session: SessionDep, worker_id: str, date: str | None = None) -> GeoJSONResponse:
    """The click-a-worker view: the day's track (MultiLineString, split at gaps) with distance, time
    in/out of the grids, coverage and last position, plus the tickets the worker reported that day."""
    day = _day(date)
    t = tracks.day_track(session, worker_id, day)
    features = []
    if t.geometry is not None:
        features.append({"type": "Feature", "id": f"track-{worker_id}",
                         "properties": {"kind": "track", **_plain(t.summary())},
                         "geometry": shapely.geometry.mapping(t.geometry)})
    for ticket in t.tickets:
        props = _plain({k: v for k, v in ticket.items() if k not in ("lon", "lat")})
        geometry = None if ticket["lon"] is None else {"type": "Point", "coordinates": [ticket["lon"], ticket["lat"]]}
        features.append({"type": "Feature", "id": f"ticket-{ticket['id']}", "properties": {"kind": "ticket", **props},
                         "geometry": geometry})
    return GeoJSONResponse({"type": "FeatureCollection", "summary": _plain(t.summary()), "features": features})


def _plain(values: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


@router.get("/tickets/{ticket_id}/nearest-workers")
def nearest(session: SessionDep, ticket_id: int, k: Annotated[int, Query(ge=1, le=50)] = 5,
            max_age_min: Annotated[int | None, Query(ge=1)] = None) -> list[dict]:
    """The nearest on-duty workers to a ticket: distance (m), grids, last fix age (s)."""
    max_age = timedelta(minutes=max_age_min) if max_age_min else None
    return live.nearest_workers(session, ticket_id=ticket_id, k=k, max_age=max_age)
