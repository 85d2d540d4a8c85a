"""Tickets (事件工单) and assessment (考核): thin routes over layers.incidents.

Every route calls one service function; domain errors become 400/403/404/409 in api/errors.py, so a
refused move answers 409 with the allowed moves in ``info.allowed``.

Who acts is the signed-in account (:mod:`layers.incidents.authz`): its workflow role, its area; a
body ``role`` may only repeat it (403 otherwise) and ``at`` is for city admins importing past events.
With sign-in off (the local demo) the body's ``role`` is the demo's role switch.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import AdminScope, ScopeDep, WriteScope, require
from api.deps import SessionDep
from api.geojson import GeoJSONResponse, feature_collection
from api.schemas import tickets as T
from api.schemas.common import FeatureCollection
from gis.errors import InvalidInput, NotFound
from gis.settings import CITY_TZ
from layers.accounts.scope import Scope
from layers.field import idempotency as idem
from layers.incidents import authz as A
from layers.incidents import kpis as K
from layers.incidents import layer as L
from layers.incidents.attachments import MAX_ATTACHMENT_BYTES, add_attachment, get_attachment
from layers.incidents.cards import run_cards_job
from layers.incidents.categories import load_categories, load_departments
from layers.incidents.intake import create_and_detail, place_ticket
from layers.incidents.moves import move_and_detail
from layers.incidents.read import detail, list_tickets
from layers.incidents.routes import routing_table, set_route

router = APIRouter(tags=["tickets"])

MAX_ID = 2**63 - 1  # BIGINT: a larger id cannot exist, answer 422 instead of a database error
TicketId = Annotated[int, Path(ge=1, le=MAX_ID)]


class TicketIn(BaseModel):
    """A report from any channel; a location by coordinates (any CRS the resolver takes) or address."""

    channel: Literal["hotline", "app", "wechat", "patrol", "camera", "sensor"]
    category: str = Field(
        description="4-digit category code (GB/T 30428.2 小类 or OneMap extension)"
    )
    severity: Literal["general", "important", "urgent"] = "general"
    description: str = Field(min_length=1, max_length=4000)
    lon: float | None = None
    lat: float | None = None
    crs: str = "EPSG:4326"
    address: str | None = Field(None, max_length=500)
    reporter_name: str | None = Field(None, max_length=50)
    reporter_phone: str | None = Field(None, max_length=30)
    source_ref: str | None = Field(None, max_length=100)
    actor: str = "api"
    require_place: bool = Field(False, description="refuse (400) instead of queueing as unplaced")


class MoveIn(BaseModel):
    actor: str = Field("api", min_length=1, max_length=100,
                       description="who (demo only; signed in, the account is recorded)")
    role: str | None = Field(None, description="signed in: optional, must equal the account's workflow role; "
                                               "demo: the role switch (default district)")
    note: str | None = Field(None, max_length=4000)
    payload: dict[str, Any] = Field(default_factory=dict)
    satisfaction: int | str | None = Field(None, description="shortcut for revisit")
    at: datetime | None = Field(None, description="city admins importing past events only (default: now)")


class PlaceIn(BaseModel):
    lon: float
    lat: float
    crs: str = "EPSG:4326"
    actor: str = Field("api", min_length=1)
    role: str | None = None


class RouteIn(BaseModel):
    department: str
    needs_town: bool
    who: str = Field(min_length=1)
    why: str = ""


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _csv(frame: pd.DataFrame, name: str) -> Response:
    return Response(
        K.to_csv(frame),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


IdempotencyKey = Annotated[str | None, Header(max_length=100, description=(
    "a client-made key (e.g. a UUID); a retry with the same key answers the first attempt's result"))]


@router.post("/tickets", status_code=201, response_model=T.TicketDetail,
             responses={200: {"model": T.TicketDetail, "description": "a retry with the same Idempotency-Key"}})
def create(body: TicketIn, session: SessionDep, scope: WriteScope, response: Response,
           idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    """Receive a report; ``unplaced`` is true when its place could not be resolved (kept, listed).

    A desk may file a report anywhere (a citizen calls the wrong town): the answer is the new ticket
    either way, with the phone as the caller's role may see it. With ``Idempotency-Key`` a retry (a
    phone that lost the answer) gets the same ticket back (200, ``Idempotent-Replayed: true``)."""
    if idempotency_key is not None:
        done = idem.claim(session, owner=scope.user, key=idempotency_key, kind="ticket")
        if done is not None:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return detail(session, done, scope=scope)
    fields = body.model_dump()
    fields["actor"] = _actor(scope, body.actor)
    # create_ticket + detail, without a read-back; duplicates only among the tickets the caller sees
    out = create_and_detail(session, scope=scope, **fields)
    if idempotency_key is not None:
        idem.remember(session, owner=scope.user, key=idempotency_key, ref_id=out["id"])
    return out


def _actor(scope: Scope, given: str) -> str:
    """Who acted: the signed-in user when auth is on, else what the body says (the demo)."""
    return given if scope.demo_mode else scope.user


@router.get("/tickets", response_model=T.TicketPage)
def list_(
    session: SessionDep,
    scope: ScopeDep,
    state: str | None = None,
    town: str | None = None,
    grid: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    unplaced: bool | None = None,
    card: Annotated[str | None, Query(pattern="^(ok|yellow|red)$")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    sort: Literal["newest", "urgency"] = "newest",
) -> dict[str, Any]:
    """Tickets newest first, or ``sort=urgency`` (red, then yellow, then the running deadline: the
    longest overdue first, then the nearest) across all pages; reporter phones masked."""
    total, rows = list_tickets(
        session,
        state=state,
        town=town,
        grid=grid,
        category=category,
        channel=channel,
        department=department,
        overdue=overdue,
        unplaced=unplaced,
        card=card,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        scope=scope,
        sort=sort,
    )
    return {"total": total, "limit": limit, "offset": offset, "items": rows}


@router.get("/tickets/departments", response_model=list[T.Department])
def departments(scope: ScopeDep) -> list[dict[str, str]]:
    """The departments and utilities a ticket can be routed or dispatched to: code, Chinese name and
    kind (``department`` 职能部门 or ``utility`` 公用企业), for the desk's names and pickers."""
    return [{"code": d.code, "name": d.name, "kind": d.kind.value} for d in load_departments().values()]


@router.get("/tickets/categories", response_model=list[T.Category])
def categories(scope: ScopeDep) -> list[dict[str, Any]]:
    """Every event category (小类) with its major class (大类), its department and its completion
    limits: the intake form's grouped picker."""
    return [{"code": c.code, "name": c.name, "major_code": c.major_code, "major_name": c.major_name,
             "department": c.department, "needs_town": c.needs_town,
             "acceptance_condition": c.acceptance_condition, "limit_type": c.limit_type.value,
             "limits": {"general": c.limit_general, "important": c.limit_important, "urgent": c.limit_urgent}}
            for c in load_categories().values()]


@router.get("/tickets/layer/grids")
def grid_layer(session: SessionDep, scope: ScopeDep, town: str | None = None) -> list[dict[str, Any]]:
    """Per grid: open tickets, yellow/red cards and the worst card, for colouring the map."""
    return _records(L.grid_counts(session, town=town, scope=scope))


@router.get("/tickets/layer/points", response_class=GeoJSONResponse, response_model=FeatureCollection)
def point_layer(
    session: SessionDep,
    scope: ScopeDep,
    town: str | None = None,
    limit: Annotated[int, Query(ge=1, le=20000)] = 5000,
) -> GeoJSONResponse:
    """Open tickets as GeoJSON points."""
    frame = L.open_points(session, town=town, limit=limit, scope=scope)
    return GeoJSONResponse(feature_collection(frame, id_column="id"))


@router.post("/tickets/cards/refresh", response_model=T.CardsRun)
def cards(request: Request, session: SessionDep, scope: AdminScope) -> dict[str, Any]:
    """Recompute yellow/red cards now (city admins; the server also does it on its own schedule).
    Cards are computed at the server's time: a ``now`` is refused, not ignored."""
    if "now" in request.query_params:
        raise InvalidInput("now is not accepted: cards are computed at the server's time")
    every = timedelta(seconds=request.app.state.settings.cards_every_s)
    counts = run_cards_job(session, every=every, force=True)
    return {"ran": counts is not None, **(counts or {})}


@router.get("/tickets/routing", response_model=list[T.Route])
def get_routing(session: SessionDep, scope: ScopeDep) -> list[dict[str, Any]]:
    """Category → department and whether a town handles it first (CSV defaults + overrides)."""
    return [r.__dict__ for r in routing_table(session).rows()]


@router.put("/tickets/routing/{category}", response_model=T.Route)
def put_routing(category: str, body: RouteIn, session: SessionDep,
                scope: Annotated[Scope, Depends(require("admin"))]) -> dict[str, Any]:
    """Change where a category goes: city-wide, so city admins only."""
    row = set_route(
        session,
        category,
        department=body.department,
        needs_town=body.needs_town,
        who=_actor(scope, body.who),
        why=body.why,
    )
    return {"category": row.category, "department": row.department, "needs_town": row.needs_town}


@router.get("/tickets/{ticket_id}", response_model=T.TicketDetail)
def show(ticket_id: TicketId, session: SessionDep, scope: ScopeDep) -> dict[str, Any]:
    """Detail: place codes, state, deadlines, cards, timeline, photos, allowed moves by role, and the
    caller's own ``actor_role`` and ``my_moves`` (another area's ticket: 404, as if it did not exist)."""
    return detail(session, ticket_id, scope=scope)


@router.post("/tickets/{ticket_id}/attachments", status_code=201, response_model=T.Attachment)
async def attach(
    ticket_id: TicketId,
    session: SessionDep,
    scope: WriteScope,
    file: Annotated[UploadFile, File()],
    uploaded_by: Annotated[str, Form()] = "api",
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """A photo (JPEG/PNG/WebP, at most 5 MB). The body is read here; the check and the insert run
    in the thread pool so the event loop never waits on the database. With ``Idempotency-Key`` a
    retried upload answers the photo stored the first time."""
    data = await file.read(MAX_ATTACHMENT_BYTES + 1)
    who = A.acting(scope)
    row = await run_in_threadpool(
        _attach_once,
        session,
        ticket_id,
        filename=file.filename or "photo",
        content_type=file.content_type or "",
        data=data,
        uploaded_by=_actor(scope, uploaded_by),
        role=who.role.value,
        scope=scope,
        key=idempotency_key,
    )
    return {
        "id": row.id,
        "filename": row.filename,
        "content_type": row.content_type,
        "size": row.size,
    }


def _attach_once(session: Session, ticket_id: int, *, key: str | None, scope: Scope, **fields: Any) -> Any:
    if key is not None:
        done = idem.claim(session, owner=scope.user, key=key, kind="attachment")
        if done is not None:
            return get_attachment(session, ticket_id, done, scope=scope)
    row = add_attachment(session, ticket_id, scope=scope, **fields)
    if key is not None:
        idem.remember(session, owner=scope.user, key=key, ref_id=row.id)
    return row


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}},
                             "description": "the photo's bytes"}})
def attachment(ticket_id: TicketId, attachment_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep,
               scope: ScopeDep) -> Response:
    row = get_attachment(session, ticket_id, attachment_id, scope=scope)
    return Response(row.data, media_type=row.content_type)


@router.post("/tickets/{ticket_id}/place", response_model=T.TicketDetail)
def place(ticket_id: TicketId, body: PlaceIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """Place an unplaced ticket (the desk found it on the map). Unplaced tickets are visible city-wide
    only, so only city-wide writers reach one, and placing is the command centre's work; the answer is
    the placed ticket."""
    who = A.acting(scope, body.role)
    A.may_place(who)
    place_ticket(
        session,
        ticket_id,
        lon=body.lon,
        lat=body.lat,
        crs=body.crs,
        actor=_actor(scope, body.actor),
        role=who.role.value,
        scope=scope,
    )
    return detail(session, ticket_id, scope=scope)


@router.post("/tickets/{ticket_id}/{move}", response_model=T.TicketDetail | T.MovedOut)
def do_move(ticket_id: TicketId, move: str, body: MoveIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """One move: check, reject, grab, dispatch, split, join, return, sign, start, complete,
    verify_fix, review_pass, review_fail, revisit, close, sign_off, extend.

    As the signed-in account's workflow role, on a ticket that account may act on (403 with the
    reason otherwise); at the server's time unless a city admin imports a past event (``at``)."""
    who = A.acting(scope, body.role)
    at = A.when(who, body.at)
    payload = dict(body.payload)
    if body.satisfaction is not None:
        payload["satisfaction"] = body.satisfaction
    out = move_and_detail(  # apply_move + detail, in fewer round trips
        session,
        ticket_id,
        move,
        actor=_actor(scope, body.actor),
        role=who.role.value,
        note=body.note,
        payload=payload,
        at=at,
        scope=scope,
        acting=who,
    )
    # a dispatch may route it out of the caller's scope (to a department): then the answer says so
    # instead of a 404 for the move the caller has just made
    return {"id": ticket_id, "moved_out_of_scope": True} if out is None else out


Level = Literal["town", "department", "grid"]


def _json_or_csv(model: type) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI of a route answering ``model`` as JSON, or CSV with ``format=csv``."""
    return {200: {"model": model, "content": {"text/csv": {"schema": {"type": "string"}}},
                  "description": "JSON, or CSV (UTF-8) with format=csv"}}


@router.get("/kpis", response_model=None, responses=_json_or_csv(T.KpiAnswer))
def kpis(
    session: SessionDep,
    scope: ScopeDep,
    level: Level = "town",
    code: str | None = None,
    month: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any] | Response:
    """Timely sign-for, on-time completion, first-time fix, satisfaction, closure; counts by category."""
    month = month or (None if start else datetime.now(CITY_TZ).strftime("%Y-%m"))
    if code and not scope.sees({}, **{K.LEVEL_COLUMN[level]: code}):
        raise NotFound(f"no {level} {code}")  # another area's KPIs: answered as if it did not exist
    frame = _visible(K.kpis(session, level, month=month, start=start, end=end, code=code), scope, level)
    if format == "csv":
        return _csv(frame, f"kpis-{level}-{month or 'period'}")
    cats = _visible(K.counts_by_category(session, level, month=month, start=start, end=end, code=code), scope, level)
    p = K.period(month, start, end)
    return {
        "level": level,
        "period": {"label": p.label, "start": p.start, "end": p.end},
        "rows": _records(frame),
        "by_category": _records(cats),
    }


@router.get("/kpis/ranking", response_model=None, responses=_json_or_csv(T.Ranking))
def ranking(
    session: SessionDep,
    scope: ScopeDep,
    level: Literal["town", "department"] = "town",
    month: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any] | Response:
    """The monthly ranking (月度排名): rank 1 has the best mean of the five rates."""
    month = month or datetime.now(CITY_TZ).strftime("%Y-%m")
    frame = _visible(K.ranking(session, level, month=month), scope, level)
    if format == "csv":
        return _csv(frame, f"ranking-{level}-{month}")
    return {"level": level, "month": month, "rows": _records(frame)}


def _visible(frame: pd.DataFrame, scope: Scope, level: str) -> pd.DataFrame:
    """The KPI rows of the units the caller sees (its town, its department, its grids); ranks stay
    the city-wide ones, so a town sees where it stands without seeing the others."""
    if scope.city_wide or frame.empty:
        return frame
    return frame[scope.mask(frame, **{K.LEVEL_COLUMN[level]: "code"})].reset_index(drop=True)
