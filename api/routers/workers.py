"""Field workers: people and grids, GPS batches, last positions, a day's track, the patrol report,
and nearest help for a ticket."""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from typing import Annotated

import shapely
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ScopeDep, WriteScope
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from api.schemas import sensing as W
from api.schemas.common import FeatureCollection, IngestResult, RegisterImport
from gis.errors import Forbidden, InvalidInput
from layers.workers import ingest, live, registry, report, tracks

router = APIRouter(tags=["workers"])

MAX_BODY = 200 * 1024 * 1024
MAX_AGE_MIN = 366 * 24 * 60  # a year: older fixes are no help, and timedelta overflows far beyond


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


@router.get("/workers", response_class=GeoJSONResponse, response_model=FeatureCollection)
def workers(session: SessionDep, scope: ScopeDep, town: str | None = None) -> GeoJSONResponse:
    """Last positions (GeoJSON): id, name, role, grids, masked phone, fix time and grid — the workers
    of the caller's area (its town's, and those patrolling a grid in it)."""
    frame = registry.last_positions(session, town=town, scope=scope)
    return GeoJSONResponse(feature_collection(frame, id_column="id"))


@router.post("/workers", status_code=201, response_model=W.Worker)
def create(session: SessionDep, worker: WorkerIn, scope: WriteScope) -> dict:
    out = registry.create_worker(session, **worker.model_dump())
    registry.check_worker(session, scope, worker.id)  # one's own area only (rolled back on 404)
    return out


@router.post("/workers/import", response_model=RegisterImport)
async def import_workers(request: Request, session: SessionDep, scope: WriteScope) -> dict:
    """Register or update workers from CSV / JSON lines: id, name, role, phone, grids (city-wide writers;
    a roster import touches every town). Parsing and storing run in the thread pool."""
    if not scope.city_wide:
        raise Forbidden("a roster import is city-wide: ask a city account, or add workers one by one")
    body = await request.body()
    fmt = "csv" if "csv" in request.headers.get("content-type", "") else None
    return await run_in_threadpool(registry.import_workers, session, body, fmt=fmt)


@router.post("/workers/positions", response_model=IngestResult)
async def positions(request: Request, session: SessionDep, scope: WriteScope, crs: str = "EPSG:4326") -> dict:
    """A batch of GPS fixes (CSV or JSON lines) in any CRS: good rows land, bad ones come back.
    A grid worker's account reports only its own fixes (its username is its worker id), other writers
    only for the workers of their area: a batch naming anyone else is refused whole (403 with the
    offending ids). The body is read here; parsing, resolving and storing run in the thread pool."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput(f"batch larger than {MAX_BODY // 2**20} MB: split it")
    kind = request.headers.get("content-type", "")
    fmt = "csv" if "csv" in kind else "jsonl" if "json" in kind else None
    result = await run_in_threadpool(partial(ingest.ingest_positions, session, body, crs=crs, fmt=fmt, scope=scope))
    return result.as_dict()


@router.get("/workers/report", response_model=None, responses={
    200: {"model": W.PatrolReport, "content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "JSON, or CSV (UTF-8 with BOM) with format=csv"}})
def patrol_report(session: SessionDep, scope: ScopeDep, town: str, date: str | None = None,
                  format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"):
    """The daily patrol report of a town; ``format=csv`` downloads it (UTF-8 with BOM)."""
    day = _day(date)
    frame = report.patrol_report(session, town, day, scope=scope)
    if format == "csv":
        return Response(report.report_csv(frame), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="patrol-{town}-{day}.csv"'})
    return {"town": town, "date": day.isoformat(), "workers": frame.to_dict("records")}


@router.get("/workers/{worker_id}", response_model=W.Worker)
def get(session: SessionDep, scope: ScopeDep, worker_id: str) -> dict:
    """One worker (another area's: 404); the phone as the caller's role may see it."""
    return registry.get_worker(session, worker_id, scope=scope)


@router.patch("/workers/{worker_id}", response_model=W.Worker)
def update(session: SessionDep, scope: WriteScope, worker_id: str, patch: WorkerPatch) -> dict:
    registry.check_worker(session, scope, worker_id)
    registry.update_worker(session, worker_id, **patch.model_dump(exclude_unset=True))
    return registry.get_worker(session, worker_id, scope=scope)


@router.put("/workers/{worker_id}/grids", response_model=W.Worker)
def assign(session: SessionDep, scope: WriteScope, worker_id: str, body: GridsIn) -> dict:
    """Replace the worker's grids ("one person one grid" or several) — only with grids the caller sees."""
    registry.check_worker(session, scope, worker_id)
    hidden = [code for code in body.grids if not scope.sees({}, grid_code=code)]
    if hidden:
        raise InvalidInput(f"grid {hidden[0]} is outside your area")
    registry.assign(session, worker_id, body.grids)
    return registry.get_worker(session, worker_id, scope=scope)


@router.get("/workers/{worker_id}/track", response_class=GeoJSONResponse, response_model=FeatureCollection)
def track(session: SessionDep, scope: ScopeDep, worker_id: str, date: str | None = None) -> GeoJSONResponse:
    """The click-a-worker view: the day's track (MultiLineString, split at gaps) with distance, time
    in/out of the grids, coverage and last position, plus the tickets the worker reported that day."""
    day = _day(date)
    registry.check_worker(session, scope, worker_id)
    t = tracks.day_track(session, worker_id, day)
    features = []
    if t.geometry is not None:
        features.append({"type": "Feature", "id": f"track-{worker_id}",
                         "properties": {"kind": "track", **_plain(t.summary())},
                         "geometry": shapely.geometry.mapping(t.geometry)})
    for ticket in (tk for tk in t.tickets if scope.sees(tk)):
        props = _plain({k: v for k, v in ticket.items() if k not in ("lon", "lat")})
        geometry = None if ticket["lon"] is None else {"type": "Point", "coordinates": [ticket["lon"], ticket["lat"]]}
        features.append({"type": "Feature", "id": f"ticket-{ticket['id']}", "properties": {"kind": "ticket", **props},
                         "geometry": geometry})
    return GeoJSONResponse({"type": "FeatureCollection", "summary": _plain(t.summary()), "features": features})


def _plain(values: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


@router.get("/tickets/{ticket_id}/nearest-workers", response_model=list[W.NearestWorker])
def nearest(session: SessionDep, scope: ScopeDep, ticket_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
            k: Annotated[int, Query(ge=1, le=50)] = 5,
            max_age_min: Annotated[int | None, Query(ge=1, le=MAX_AGE_MIN)] = None) -> list[dict]:
    """The nearest on-duty workers to a ticket (the caller's: else 404) among the caller's workers:
    distance (m), grids, last fix age (s)."""
    max_age = timedelta(minutes=max_age_min) if max_age_min else None
    return live.nearest_workers(session, ticket_id=ticket_id, k=k, max_age=max_age, scope=scope)
