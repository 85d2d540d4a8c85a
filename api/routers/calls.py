"""Grid calls, departments report (网格呼叫、部门报到): thin routes over layers.calls.service.

Every step is authorised by the signed-in account (its level and area, in the service); a step that
belongs to another level answers 403 with whose turn it is, a call outside the caller's area 404.
``level`` and ``actor`` in a body are honoured only with sign-in off (the local demo's switch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from api.auth import AdminScope, ScopeDep, WriteScope
from api.deps import SessionDep
from api.schemas import calls as C
from layers.accounts.scope import Scope
from layers.calls import service as S

router = APIRouter(tags=["calls"])
CallId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Move = Literal["approve", "reject", "sign", "arrive", "resolve", "withdraw", "escalate", "flag"]
T = TypeVar("T")


def _guard(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except S.NotYourTurn as exc:
        raise HTTPException(403, detail=exc.message) from exc


class CallIn(BaseModel):
    description: str = Field(min_length=1, max_length=4000)
    ticket_id: int | None = Field(None, ge=1, le=2**63 - 1)
    lon: float | None = None
    lat: float | None = None
    crs: str = "EPSG:4326"
    category: str | None = Field(None, max_length=4)
    department: str | None = Field(None, max_length=20)
    level: str | None = Field(None, description="demo only (sign-in off): who raises")
    actor: str | None = Field(None, max_length=100, description="demo only (sign-in off)")


class CallMoveIn(BaseModel):
    note: str | None = Field(None, max_length=4000)
    lon: float | None = None
    lat: float | None = None
    crs: str = "EPSG:4326"
    department: str | None = Field(None, max_length=20, description="approve at the town: the department called")
    level: str | None = Field(None, description="demo only (sign-in off): who acts")
    actor: str | None = Field(None, max_length=100, description="demo only (sign-in off)")


class LimitIn(BaseModel):
    stage: str
    key: str = "*"
    minutes: int
    clock: Literal["calendar", "working"] = "calendar"
    title: str = ""


def _demo(scope: Scope, value: str | None) -> str | None:
    return value if scope.user == Scope.demo().user else None


@router.post("/calls", status_code=201, response_model=C.CallDetail)
def raise_call(body: CallIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """Raise a call about a ticket or a point; it starts one level above the caller."""
    return _guard(S.raise_call, session, scope, description=body.description, ticket_id=body.ticket_id,
                  lon=body.lon, lat=body.lat, crs=body.crs, category=body.category, department=body.department,
                  demo_level=body.level, actor=_demo(scope, body.actor))


@router.get("/calls", response_model=C.CallPage)
def list_calls(session: SessionDep, scope: ScopeDep, state: str | None = None, town: str | None = None,
               department: str | None = None, overdue: bool | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 50,
               offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    total, items = S.list_calls(session, scope, state=state, town=town, department=department, overdue=overdue,
                                limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.get("/calls/limits", response_model=list[C.CallLimit])
def get_limits(session: SessionDep, scope: ScopeDep) -> list[dict[str, Any]]:
    """Each stage's time limit (minutes, calendar or working clock); ``key`` a department or ``*``."""
    return S.limits(session)


@router.put("/calls/limits", response_model=C.CallLimit)
def put_limit(body: LimitIn, session: SessionDep, scope: AdminScope) -> dict[str, Any]:
    return S.set_limit(session, **body.model_dump())


@router.post("/calls/sweep")
def sweep(session: SessionDep, scope: WriteScope) -> dict[str, int]:
    """Escalate or flag the caller's calls whose time ran out (what a scheduler runs every minute)."""
    return S.sweep(session, scope=scope)


@router.get("/calls/{call_id}", response_model=C.CallDetail)
def get_call(call_id: CallId, session: SessionDep, scope: ScopeDep, level: str | None = None) -> dict[str, Any]:
    return S.detail(session, call_id, scope, demo_level=_demo(scope, level))


@router.post("/calls/{call_id}/{move}", response_model=C.CallDetail)
def move(call_id: CallId, move: Move, body: CallMoveIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """approve / reject (note) / sign / arrive (lon, lat: within the radius of the place) / resolve / withdraw."""
    payload: dict[str, Any] = {}
    if move == "arrive":
        payload = {"lon": body.lon, "lat": body.lat, "crs": body.crs}
    if body.department:
        payload["department"] = body.department
    return _guard(S.apply_move, session, call_id, move, scope, note=body.note, payload=payload,
                  demo_level=body.level, actor=_demo(scope, body.actor))
