"""Domain errors → HTTP status, in one table, installed once.

An unexpected error answers 500 with a fixed message and an id that is also in the log; the
exception text never reaches the client.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from gis import errors as E

log = logging.getLogger("onemap.api")

STATUS: list[tuple[type[Exception], int]] = [
    (E.NotFound, 404),
    (E.Forbidden, 403),
    (E.Conflict, 409),
    (E.IllegalMove, 409),
    (E.TopologyError, 422),
    (E.UnknownCRS, 400),
    (E.CodeError, 400),
    (E.InvalidGeometry, 400),
    (E.InvalidInput, 400),
    (E.DatabaseUnavailable, 503),
    (E.CalendarNotCovered, 503),
    (E.RateLimited, 429),
    (E.OneMapError, 400),
]


def _body(exc: E.OneMapError) -> dict:
    body: dict = {"error": type(exc).__name__, "detail": exc.message}
    detail = exc.detail
    if isinstance(exc, E.TopologyError) and detail is not None:
        body["report"] = detail.summary()
        body["problems"] = detail.to_geojson()
    elif detail is not None:
        body["info"] = detail
    return body


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI lists for this path (Starlette's own 405 names only the first route's):
    those of the most specific path template that matches (``/grids/validate`` before ``/grids/{code}``).
    Empty for a path the OpenAPI does not list (the pages)."""
    templates = getattr(request.app.state, "allow_templates", None)
    if templates is None:  # fewest parameters first; a stable sort keeps the routing order otherwise
        paths = sorted(request.app.openapi()["paths"].items(), key=lambda kv: kv[0].count("{"))
        templates = request.app.state.allow_templates = [
            (compile_path(path)[0], [m for m in METHODS if m.lower() in item]) for path, item in paths]
    return next((methods for regex, methods in templates if regex.match(request.scope["path"])), [])


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            if allowed:
                exc = HTTPException(405, detail=exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(allowed)})
        return await http_exception_handler(request, exc)

    @app.exception_handler(E.OneMapError)
    async def domain_error(request: Request, exc: E.OneMapError) -> JSONResponse:
        status = next(code for cls, code in STATUS if isinstance(exc, cls))
        headers = {"Retry-After": str(exc.detail["retry_after"])} if isinstance(exc, E.RateLimited) else None
        return JSONResponse(_body(exc), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in err.get("loc", ())), "problem": err.get("msg")}
                    for err in exc.errors()]
        return JSONResponse({"error": "InvalidInput", "detail": "invalid request", "problems": problems},
                            status_code=422)

    @app.exception_handler(OperationalError)
    async def db_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return JSONResponse({"error": "DatabaseUnavailable", "detail": "the database is unavailable; retry shortly"},
                            status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(DataError)
    async def bad_value(request: Request, exc: DataError) -> JSONResponse:
        reason = str(getattr(exc, "orig", exc)).splitlines()[0][:200]
        return JSONResponse({"error": "InvalidInput", "detail": f"a value is out of range or malformed: {reason}"},
                            status_code=400)

    @app.exception_handler(PoolTimeout)
    async def busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database pool exhausted on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "Busy", "detail": "the service is busy; retry shortly"},
                            status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.exception("unexpected error %s on %s %s", error_id, request.method, request.url.path)
        return JSONResponse({"error": "InternalError", "detail": "internal error", "id": error_id}, status_code=500)
