"""Base data (人、地、事、物、组织): thin routes over layers.basedata.

Personal numbers are masked by default; ``?reveal=true`` unmasks them for the roles that need them
(403 for the others) and writes an audit row naming the records shown. A CSV import is all or
nothing: a refused file answers 422 with every problem as {row, column, reason}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from api.auth import ScopeDep, WriteScope
from api.deps import SessionDep
from api.schemas import basedata as B
from api.schemas.errors import ErrorBody
from layers.basedata import importer as I
from layers.basedata import privacy as P
from layers.basedata import service as S

router = APIRouter(tags=["basedata"])
KindName = Annotated[str, Path(pattern="^(buildings|households|residents|units|key_sites)$")]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
MAX_UPLOAD = 20 * 1024 * 1024
T = TypeVar("T")


def _guard(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    except P.NotPermitted as exc:
        raise HTTPException(403, detail=exc.message) from exc


class RowIn(BaseModel):
    """The kind's fields (see ``GET /basedata/{kind}/template.csv``) plus grid_code or lon/lat."""

    model_config = ConfigDict(extra="allow")


@router.get("/grids/{code}/base-summary", response_model=B.BaseSummary)
def base_summary(code: str, session: SessionDep, scope: ScopeDep) -> dict[str, Any]:
    """{grid_code, households, residents, buildings, businesses, organisations, key_sites}; 404 when the
    grid has no base data (or is not the caller's)."""
    return S.base_summary(session, scope, code)


@router.get("/basedata/{kind}", response_model=B.BasePage)
def search(kind: KindName, request: Request, session: SessionDep, scope: ScopeDep, grid: str | None = None,
           village: str | None = None, town: str | None = None, q: str | None = None,
           household_id: int | None = None, reveal: bool = False,
           limit: Annotated[int, Query(ge=1, le=1000)] = 50,
           offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    total, items = _guard(S.search, session, scope, kind, grid=grid, village=village, town=town, q=q,
                          household_id=household_id, reveal=reveal, limit=limit, offset=offset,
                          path=request.url.path)
    return {"total": total, "limit": limit, "offset": offset, "masked": not reveal, "items": items}


@router.get("/basedata/{kind}/template.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the header row"}})
def template(kind: KindName) -> Response:
    return Response(I.template(kind), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{kind}-template.csv"'})


@router.get("/basedata/{kind}/{row_id}", response_model=B.BaseRow)
def read(kind: KindName, row_id: RowId, request: Request, session: SessionDep, scope: ScopeDep,
         reveal: bool = False) -> dict[str, Any]:
    return _guard(S.read, session, scope, kind, row_id, reveal=reveal, path=request.url.path)


@router.post("/basedata/{kind}", status_code=201, response_model=B.BaseRow)
def capture(kind: KindName, body: RowIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    """A grid worker captures a row (采集) in one of its grids."""
    return _guard(S.capture, session, scope, kind, body.model_dump())


@router.patch("/basedata/{kind}/{row_id}", response_model=B.BaseRow)
def change(kind: KindName, row_id: RowId, body: RowIn, session: SessionDep, scope: WriteScope) -> dict[str, Any]:
    return _guard(S.change, session, scope, kind, row_id, body.model_dump())


@router.post("/basedata/{kind}/import", response_model=None, responses={
    200: {"model": B.BaseImport},
    422: {"description": "rows refused, nothing stored (``errors``: row, column, reason); or a malformed request",
          "content": {"application/json": {"schema": {"anyOf": [B.RowErrors.model_json_schema(),
                                                                ErrorBody.model_json_schema()]}}}}})
async def import_csv(kind: KindName, session: SessionDep, scope: WriteScope,
                     file: UploadFile = File(...)) -> dict[str, Any] | JSONResponse:
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, detail=f"file over {MAX_UPLOAD // 1024 // 1024} MB: split it")
    try:
        return await run_in_threadpool(_guard, I.import_csv, session, scope, kind, data)
    except I.RowErrors as exc:
        return JSONResponse({"error": "RowErrors", "detail": exc.message, **exc.detail}, status_code=422)
