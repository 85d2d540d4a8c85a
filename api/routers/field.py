"""The field: the grid worker's phone (/mobile, an installable PWA) and public reporting (/report).

The phone talks to the ordinary API (sign-in, GPS ingest, ticket intake and moves, photos); the
routes here answer what only the phone asks: who am I and my grids, today's tasks, check-ins.
The public routes (``/report``, ``/public/...``) need no account even with sign-in on, and answer
nothing but the citizen's own report (layers/field/public.py has the abuse checks).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import ScopeDep, WriteScope
from api.client_ip import client_ip
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from api.routers.pages import templates
from api.schemas import field as F
from api.schemas.common import FeatureCollection
from gis import tiles as T
from gis.errors import InvalidInput
from layers.field import phone, public
from layers.incidents.attachments import MAX_ATTACHMENT_BYTES
from layers.incidents.categories import load_categories

router = APIRouter(tags=["field"])
STATIC = FilePath(__file__).resolve().parents[2] / "web" / "static"
SW_CSP = "default-src 'none'; connect-src 'self'; frame-ancestors 'none'"


# ----------------------------------------------------------------------------- the phone


@router.get("/mobile", response_class=HTMLResponse, include_in_schema=False)
def mobile_page(request: Request) -> HTMLResponse:
    """The grid worker's phone (网格员移动端)."""
    from api.auth import settings_of

    return templates.TemplateResponse(request, "mobile.html", {"auth_on": settings_of(request).enabled})


@router.get("/mobile-sw.js", include_in_schema=False)
def service_worker() -> FileResponse:
    """The phone's service worker, served from the root so it may control /mobile.

    A worker script's Content-Security-Policy governs the worker itself: the API's default for
    non-pages (``default-src 'none'``) would forbid its own fetches, so ``cache.addAll`` of the app
    shell failed and the worker never installed. It gets 'self' for fetches and nothing else."""
    return FileResponse(STATIC / "mobile-sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/mobile",
                                 "Content-Security-Policy": SW_CSP})


@router.get("/field/me", response_model=F.FieldMe)
def me(session: SessionDep, scope: ScopeDep, worker: str | None = None) -> dict[str, Any]:
    """The signed-in grid worker, its worker record (id = username) and its grids with names."""
    return phone.me(session, scope, worker)


@router.get("/field/tasks", response_model=F.FieldTasks)
def tasks(session: SessionDep, scope: ScopeDep, worker: str | None = None,
          limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Open tickets in my grids; the ones assigned to my grid's village (mine to handle) first."""
    who = phone.me(session, scope, worker)
    items = phone.tasks(session, [g["code"] for g in who["grids"]], limit=limit)
    return {"worker": who["worker"]["id"], "items": items}


class CheckInIn(BaseModel):
    client_id: str = Field(min_length=1, max_length=100)
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    accuracy_m: float | None = Field(None, ge=0)
    site: str = Field("", max_length=200)
    ticket_id: int | None = Field(None, ge=1, le=2**63 - 1)
    at: datetime | None = None
    worker: str | None = Field(None, description="demo mode only: which worker")


@router.post("/field/checkins", status_code=201, response_model=F.CheckIn)
def check_in(body: CheckInIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """现场签到 at a site (optionally a ticket's: the distance to it is recorded); once per client_id."""
    who = phone.me(session, scope, body.worker)
    return phone.check_in(session, worker_id=who["worker"]["id"], client_id=body.client_id, lon=body.lon,
                          lat=body.lat, accuracy_m=body.accuracy_m, site=body.site, ticket_id=body.ticket_id,
                          at=body.at, scope=scope)


# ----------------------------------------------------------------------------- public reporting


@router.get("/public/categories", response_model=list[F.PublicCategory])
def categories() -> list[dict[str, str]]:
    """Every category (code, name, major group): the pickers of the phone and the public page."""
    return [{"code": c.code, "name": c.name, "major_code": c.major_code, "major_name": c.major_name}
            for c in load_categories().values()]


@router.get("/public/outline", response_class=GeoJSONResponse, response_model=FeatureCollection)
def outline(session: SessionDep) -> GeoJSONResponse:
    """The public report page's map: town/street outlines and names only (no grids, no tickets)."""
    frame = public.town_outlines(session)
    return GeoJSONResponse(feature_collection(frame, precision=5, id_column=None),
                           headers={"Cache-Control": "public, max-age=3600"})


@router.get("/public/tiles/base/{z}/{x}/{y}.pbf", response_class=Response,
            responses={200: {"content": {T.MVT: {}}, "description": "a vector tile"}})
def public_base_tile(session: SessionDep, z: Annotated[int, Path(ge=0, le=22)], x: Annotated[int, Path(ge=0)],
                     y: Annotated[int, Path(ge=0)],
                     crs: Annotated[str, Query(pattern="^(wgs84|gcj02)$")] = "wgs84") -> Response:
    """The public report page's base map (no account): the big screen's registry base layer (grid,
    village and town outlines; town and village names) with no grid names and nothing else (no
    tickets, workers or counts). Cached per registry version."""
    body = T.public_base(session, z, x, y, crs)
    return Response(body, media_type=T.MVT, headers={"Cache-Control": "public, max-age=3600"})


def _base_map(request: Request) -> dict[str, str]:
    """The optional raster base map (``ONEMAP_TILE_URL``, the configured tile server) and its CRS."""
    settings = request.app.state.settings
    crs = "gcj02" if str(settings.tile_crs).lower().replace("-", "") == "gcj02" else "wgs84"
    return {"tile_url": settings.tile_url, "tile_crs": crs}


@router.get("/report", response_class=HTMLResponse, include_in_schema=False)
def report_page(request: Request) -> HTMLResponse:
    """随手拍: the public report form (no account)."""
    return templates.TemplateResponse(request, "report.html", {"form_token": public.form_token(), **_base_map(request)})


@router.get("/report/{code}", response_class=HTMLResponse, include_in_schema=False)
def follow_page(request: Request, code: str) -> HTMLResponse:
    """The citizen's follow-up page for one code (the data comes from /public/reports/CODE)."""
    return templates.TemplateResponse(request, "report_follow.html", {"code": code[:20]})


def _ip(request: Request) -> str:
    return client_ip(request.scope) or "unknown"


@router.post("/public/reports", status_code=201, response_model=None, responses={
    201: {"model": F.ReportReceipt, "description": "received: follow it at /report/CODE"},
    200: {"model": F.ReportReceipt, "description": "the same report again (duplicate): its first code"}})
async def submit(
    request: Request,
    session: SessionDep,
    category: Annotated[str, Form(max_length=4)],
    description: Annotated[str, Form(max_length=4000)],
    form_token: Annotated[str, Form(max_length=100)],
    lon: Annotated[float | None, Form()] = None,
    lat: Annotated[float | None, Form()] = None,
    address: Annotated[str | None, Form(max_length=200)] = None,
    name: Annotated[str | None, Form(max_length=50)] = None,
    phone_number: Annotated[str | None, Form(alias="phone", max_length=30)] = None,
    website: Annotated[str, Form(max_length=200)] = "",
    photo: Annotated[UploadFile | None, File()] = None,
) -> JSONResponse:
    """A citizen's report (no account): answers ``{"code"}`` to follow it at /report/CODE."""
    data = await photo.read(MAX_ATTACHMENT_BYTES + 1) if photo is not None else b""
    shot = public.Photo(photo.filename or "photo", photo.content_type or "", data) if photo and data else None
    if shot is not None and len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(f"the photo is larger than {MAX_ATTACHMENT_BYTES // 2**20} MB")
    out = await run_in_threadpool(
        public.submit, session, ip=_ip(request), category=category, description=description, lon=lon, lat=lat,
        address=address, name=name, phone=phone_number, photo=shot, token=form_token, honeypot=website)
    return JSONResponse(out, status_code=200 if out["duplicate"] else 201)


@router.get("/public/reports/{code}", response_model=F.FollowUp)
def follow(code: str, session: SessionDep) -> dict[str, Any]:
    """The report's own status history (Chinese), nothing else."""
    return public.follow(session, code)


class RatingIn(BaseModel):
    satisfaction: int = Field(ge=1, le=5, description="1-5: 4-5 满意, 3 基本满意, 1-2 不满意")


@router.post("/public/reports/{code}/rating", response_model=F.FollowUp)
def rate(code: str, body: RatingIn, session: SessionDep) -> dict[str, Any]:
    """The citizen's revisit (回访) once the ticket is handled and reviewed."""
    return public.rate(session, code, body.satisfaction)
