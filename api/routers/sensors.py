"""Pollution sensors: registry CRUD, bulk readings, thresholds, alarms, and the map layers."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import AdminScope, ScopeDep, WriteScope
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from api.schemas import sensing as W
from api.schemas.common import FeatureCollection, IngestResult, RegisterImport
from gis.errors import InvalidInput
from layers.sensors import ingest, layer, registry, thresholds

router = APIRouter(prefix="/sensors", tags=["sensors"])

MAX_BODY = 200 * 1024 * 1024


class SensorIn(BaseModel):
    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    lon: float
    lat: float
    crs: str = "EPSG:4326"
    kind: str = "air"
    pollutants: list[str] | None = None
    owner: str | None = None


class SensorPatch(BaseModel):
    name: str | None = None
    kind: str | None = None
    pollutants: list[str] | None = None
    owner: str | None = None
    status: str | None = None
    lon: float | None = None
    lat: float | None = None
    crs: str = "EPSG:4326"


class ThresholdPatch(BaseModel):
    limit_value: float | None = None
    consecutive: int | None = None
    who: str = "api"


async def _body(request: Request) -> tuple[bytes, str | None]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidInput(f"batch larger than {MAX_BODY // 2**20} MB: split it")
    kind = request.headers.get("content-type", "")
    fmt = "csv" if "csv" in kind else "jsonl" if "json" in kind else None
    return body, fmt


@router.get("", response_class=GeoJSONResponse, response_model=FeatureCollection)
def sensors(session: SessionDep, scope: ScopeDep, town: str | None = None, retired: bool = False) -> GeoJSONResponse:
    """Every sensor of the caller's area with its latest reading and state (ok, over, stale, no_data,
    alarm, offline)."""
    frame = layer.sensors_layer(session, town=town, include_retired=retired, scope=scope)
    return GeoJSONResponse(feature_collection(frame, id_column="id"))


@router.get("/grids", response_class=GeoJSONResponse, response_model=FeatureCollection)
def grid_layer(session: SessionDep, scope: ScopeDep, town: str | None = None) -> GeoJSONResponse:
    """Per grid: sensors, open alarms, worst latest PM2.5/PM10, drawn on the grid polygons."""
    frame = layer.grid_aggregate(session, town=town, scope=scope)
    return GeoJSONResponse(feature_collection(frame, id_column="grid_code"))


@router.get("/thresholds", response_model=list[W.Threshold])
def list_thresholds(session: SessionDep, scope: ScopeDep) -> list[dict]:
    return thresholds.list_thresholds(session)


@router.patch("/thresholds/{pollutant}", response_model=W.Threshold)
def edit_threshold(session: SessionDep, scope: AdminScope, pollutant: str, patch: ThresholdPatch) -> dict:
    """Thresholds are city-wide: city admins only; ``who`` is the signed-in user when auth is on."""
    who = patch.who if scope.demo_mode else scope.user
    return thresholds.set_threshold(session, registry.pollutant_name(pollutant), who=who,
                                    limit_value=patch.limit_value, consecutive=patch.consecutive)


@router.get("/alarms")
def alarms(session: SessionDep, scope: ScopeDep,
           state: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
           sensor: str | None = None) -> list[dict]:
    return thresholds.list_alarms(session, state=state, sensor_id=sensor, scope=scope)


@router.post("/readings", response_model=IngestResult)
async def post_readings(request: Request, session: SessionDep, scope: WriteScope) -> dict:
    """A batch of readings as CSV (text/csv) or JSON lines; good rows land, bad ones come back.
    Only for sensors in the caller's area: a batch naming another area's sensor is refused whole
    (403 with the offending ids). The body is read here; parsing, thresholds and storing run in the
    thread pool."""
    body, fmt = await _body(request)
    result = await run_in_threadpool(partial(ingest.ingest_readings, session, body, fmt=fmt, scope=scope))
    return result.as_dict()


@router.post("/import", response_model=RegisterImport)
async def import_sensors(request: Request, session: SessionDep, scope: AdminScope, crs: str = "EPSG:4326") -> dict:
    """Register or update sensors from CSV / JSON lines (id, name, kind, pollutants, lon, lat, owner);
    the city's register, so city admins only. Parsing, resolving and storing run in the thread pool."""
    body, fmt = await _body(request)
    return await run_in_threadpool(registry.import_sensors, session, body, crs=crs, fmt=fmt)


@router.post("", status_code=201, response_model=W.Sensor)
def create(session: SessionDep, scope: WriteScope, sensor: SensorIn) -> dict:
    """Register a sensor in the caller's area (elsewhere: 404, and nothing is stored)."""
    registry.create_sensor(session, **sensor.model_dump())
    return registry.get_sensor(session, sensor.id, scope=scope)


@router.get("/{sensor_id}", response_model=W.Sensor)
def get(session: SessionDep, scope: ScopeDep, sensor_id: str) -> dict:
    """One sensor (another area's: 404, as if it did not exist)."""
    return registry.get_sensor(session, sensor_id, scope=scope)


@router.patch("/{sensor_id}", response_model=W.Sensor)
def update(session: SessionDep, scope: WriteScope, sensor_id: str, patch: SensorPatch) -> dict:
    registry.get_sensor(session, sensor_id, scope=scope)
    changes = patch.model_dump(exclude_unset=True)
    registry.update_sensor(session, sensor_id, **changes)
    return registry.get_sensor(session, sensor_id, scope=scope)  # moved out of the area: 404, rolled back


@router.delete("/{sensor_id}", response_model=W.Sensor)
def retire(session: SessionDep, scope: WriteScope, sensor_id: str) -> dict:
    """Retire (never delete): readings and alarms stay readable."""
    registry.get_sensor(session, sensor_id, scope=scope)
    return registry.retire_sensor(session, sensor_id)


@router.get("/{sensor_id}/readings")
def readings(session: SessionDep, scope: ScopeDep, sensor_id: str, start: datetime | None = None,
             end: datetime | None = None) -> list[dict]:
    """One sensor's series in time order (default: the 24 hours before its newest reading)."""
    return layer.series(session, sensor_id, start=start, end=end, scope=scope)
