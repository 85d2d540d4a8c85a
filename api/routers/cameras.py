"""Cameras, their rules and calibration, detections, heat and key frames (no torch needed here)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ScopeDep, WriteScope
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from gis.errors import Forbidden, InvalidInput, NotFound
from layers.cameras import frames, layer, service
from layers.vision import vision_settings

router = APIRouter(tags=["cameras"])


class CameraIn(BaseModel):
    id: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=100)
    lon: float
    lat: float
    crs: str = "EPSG:4326"
    source: str | None = None
    source_kind: str | None = None
    heading_deg: float | None = None
    fov_deg: float | None = None
    range_m: float | None = None
    sample_fps: float | None = None


class CameraPatch(BaseModel):
    name: str | None = None
    lon: float | None = None
    lat: float | None = None
    crs: str = "EPSG:4326"
    source: str | None = None
    source_kind: str | None = None
    heading_deg: float | None = None
    fov_deg: float | None = None
    range_m: float | None = None
    sample_fps: float | None = None


class CalibrationIn(BaseModel):
    image_points: list[list[float]]
    map_points: list[list[float]]
    crs: str = "EPSG:4326"


class RuleIn(BaseModel):
    kind: str
    name: str | None = None
    classes: list[str] | None = None
    roi: list[list[float]] | None = None
    min_count: int | None = None
    min_dwell_s: float | None = None
    cooldown_s: float | None = None
    clear_s: float | None = None
    stationary_s: float | None = None
    stationary_px: float | None = None
    category: str | None = None
    severity: str | None = None


def _aware(since: datetime | None) -> datetime | None:
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a timezone, e.g. 2026-11-01T08:00:00+08:00")
    return since


@router.get("/cameras", response_class=GeoJSONResponse)
def cameras(session: SessionDep, scope: ScopeDep, town: str | None = None,
            layer_: Annotated[str, Query(alias="layer", pattern="^(points|wedges)$")] = "points") -> GeoJSONResponse:
    """Cameras as points with status and alarm state (``alarm``/``ok``); each carries its view wedge
    as a GeoJSON polygon in ``properties.wedge``; ``layer=wedges`` returns the wedges as features."""
    frame = layer.cameras_frame(session, town=town, scope=scope)
    if layer_ == "wedges":
        return GeoJSONResponse(feature_collection(layer.wedge_frame(frame), id_column="id"))
    return GeoJSONResponse(feature_collection(frame, id_column="id"))


@router.post("/cameras", status_code=201)
def create(body: CameraIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """Register a camera in the caller's area (elsewhere: 403 with its id, and nothing is stored)."""
    cam = service.create_camera(session, **body.model_dump())
    _refuse_foreign(scope, [cam])
    return service.camera_dict(cam)


@router.post("/cameras/import", status_code=201)
async def import_cameras(request: Request, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """CSV body (id,name,lon,lat[,crs,source,source_kind,heading_deg,fov_deg,range_m,sample_fps]); all or none
    (cameras outside the caller's area: 403 for the batch, naming them). Parsing and storing run in the
    thread pool."""
    body = await request.body()
    cams = await run_in_threadpool(_import_in_scope, session, body, scope)
    return {"imported": len(cams), "ids": [c.id for c in cams]}


def _import_in_scope(session, body: bytes, scope) -> list:
    cams = service.import_csv(session, body)
    _refuse_foreign(scope, cams)
    return cams


def _refuse_foreign(scope, cams: list) -> None:
    """Cameras placed outside the caller's area refuse the request (403 naming them; the request's
    transaction is rolled back, so nothing is stored)."""
    foreign = [cam.id for cam in cams if not scope.sees(cam)]
    if foreign:
        raise Forbidden(f"camera(s) outside your area: {', '.join(foreign[:20])}; nothing was stored",
                        detail={"ids": foreign})


@router.get("/cameras/{camera_id}")
def one(camera_id: str, session: SessionDep, scope: ScopeDep) -> dict[str, Any]:
    out = service.camera_dict(service.get_camera(session, camera_id, scope=scope))
    out["rules"] = [{"id": r.id, "kind": r.kind, "name": r.name, "classes": r.classes, "roi": r.roi,
                     "min_count": r.min_count, "min_dwell_s": r.min_dwell_s, "category": r.category,
                     "enabled": r.enabled} for r in service.rules_of(session, camera_id)]
    return out


@router.patch("/cameras/{camera_id}")
def patch(camera_id: str, body: CameraPatch, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    service.get_camera(session, camera_id, scope=scope)
    cam = service.update_camera(session, camera_id, **body.model_dump())
    return service.camera_dict(scope.check(cam, f"camera {camera_id}"))  # moved out of the area: 404, rolled back


@router.delete("/cameras/{camera_id}", status_code=204)
def delete(camera_id: str, session: SessionDep, scope: WriteScope) -> None:
    service.get_camera(session, camera_id, scope=scope)
    service.delete_camera(session, camera_id)
    frames.drop_latest(vision_settings().keyframe_dir, camera_id)


@router.put("/cameras/{camera_id}/calibration")
def calibrate(camera_id: str, body: CalibrationIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """Fit the ground homography from ≥ 4 image ↔ map pairs; answers the reprojection error in metres."""
    service.get_camera(session, camera_id, scope=scope)
    result = service.calibrate(session, camera_id, body.image_points, body.map_points, crs=body.crs)
    return {"camera_id": camera_id, "rms_m": result.rms_m, "max_m": result.max_m, "epsg": result.epsg,
            "errors_m": result.errors_m.round(3).tolist()}


@router.post("/cameras/{camera_id}/rules", status_code=201)
def add_rule(camera_id: str, body: RuleIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    service.get_camera(session, camera_id, scope=scope)
    values = body.model_dump(exclude={"kind"})
    row, _ = service.add_rule(session, camera_id, body.kind, **values)
    return {"id": row.id, "camera_id": camera_id, "kind": row.kind, "classes": row.classes,
            "min_count": row.min_count, "min_dwell_s": row.min_dwell_s, "category": row.category}


@router.get("/cameras/{camera_id}/keyframe")
def key_frame(camera_id: str, session: SessionDep, scope: ScopeDep) -> FileResponse:
    """The newest annotated key frame (JPEG)."""
    service.get_camera(session, camera_id, scope=scope)
    path = layer.latest_key_frame(session, camera_id)
    if path is None or not Path(path).is_file():
        raise NotFound(f"camera {camera_id} has no key frame yet")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/cameras/{camera_id}/frame", responses={200: {"content": {"image/jpeg": {}}},
                                                     404: {"description": "no such camera, or no frame yet"}})
def latest_frame(camera_id: str, session: SessionDep, scope: ScopeDep) -> Response:
    """The camera's latest analysed frame: a JPEG with the YOLO boxes (class, confidence, track id)
    and the rules' regions drawn on it. ``X-Frame-Time`` is the frame's time (ISO 8601, UTC, ``Z``):
    ``GET /detections?camera=ID&since=<X-Frame-Time>`` starts with exactly this frame's detections,
    placed on the map. 404 with the reason when the runner has not analysed this camera yet."""
    cam = service.get_camera(session, camera_id, scope=scope)
    found = frames.read_latest(vision_settings().keyframe_dir, camera_id)
    if found is None:
        why = {"error": f"its analysis stopped with an error: {cam.status_note}",
               "offline": f"it is offline: {cam.status_note}"}.get(cam.status, "the vision runner has not analysed it yet")
        raise NotFound(f"camera {camera_id} has no analysed frame: {why}")
    data, at = found
    return Response(data, media_type="image/jpeg",
                    headers={"X-Frame-Time": frames.time_text(at), "Cache-Control": "no-store",
                             "X-Camera-Status": cam.status})


@router.get("/detections", response_class=GeoJSONResponse)
def detections(session: SessionDep, scope: ScopeDep, camera: str | None = None,
               class_: Annotated[str | None, Query(alias="class")] = None, since: datetime | None = None,
               until: datetime | None = None,
               limit: Annotated[int, Query(ge=1, le=layer.MAX_LIMIT)] = layer.DEFAULT_LIMIT) -> GeoJSONResponse:
    """Detections, newest first; geometry is the map point when the camera is calibrated, else null.
    ``since`` is inclusive, ``until`` exclusive (both need a timezone)."""
    frame = layer.detections_frame(session, camera=camera, class_name=class_, since=_aware(since),
                                   until=_aware(until), limit=limit, scope=scope)
    return GeoJSONResponse(_with_null_geometry(frame))


def _with_null_geometry(frame) -> dict:
    located = frame[frame.geometry.notna()]
    collection = feature_collection(located, id_column="id")
    unlocated = frame[frame.geometry.isna()].drop(columns=frame.geometry.name)
    for row in unlocated.to_dict("records"):
        props = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        collection["features"].append({"type": "Feature", "id": props["id"], "properties": props, "geometry": None})
    collection["features"].sort(key=lambda f: (f["properties"]["at"], f["properties"]["id"]), reverse=True)
    return collection


@router.get("/detections/heat", response_class=GeoJSONResponse)
def heat(session: SessionDep, scope: ScopeDep, class_: Annotated[str | None, Query(alias="class")] = None,
         since: datetime | None = None, until: datetime | None = None) -> GeoJSONResponse:
    """Per-class, per-hour counts in ~50 m cells: ``count`` weights a heat layer."""
    frame = layer.heat(session, class_name=class_, since=_aware(since), until=_aware(until), scope=scope)
    return GeoJSONResponse(feature_collection(frame, id_column=None))
