"""The error answers every route may give, documented once for the whole app (``FastAPI(responses=)``).

Bodies (see :mod:`api.errors`): a domain error ``{"error", "detail", "info"?}``; a topology error adds
``report`` and ``problems`` (GeoJSON); a refused request body ``{"error": "InvalidInput", "detail",
"problems": [{"where", "problem"}]}``; FastAPI's own refusals (sign-in, role checks) ``{"detail"}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """An error answer (错误). ``error`` names the kind (NotFound, Forbidden, InvalidInput, Conflict,
    IllegalMove, TopologyError, RateLimited, PayloadTooLarge, DatabaseUnavailable...); answers made by
    FastAPI itself (401 sign-in, 403 role) carry only ``detail``."""

    model_config = ConfigDict(extra="allow")

    error: str | None = Field(None, description="the kind of error")
    detail: Any = Field(description="why, in one readable line (原因)")
    info: Any = Field(None, description="what the caller can do next, e.g. the allowed moves of a refused move")
    problems: Any = Field(None, description="the request's problems (422: [{where, problem}]) or the topology "
                                           "problems as GeoJSON")


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    # the schema inline under application/json, not ``"model"``: FastAPI would file a model under the
    # route's own media type (application/geo+json, text/csv ...), but errors are always JSON
    answer: dict[str, Any] = {"description": description,
                              "content": {"application/json": {"schema": ErrorBody.model_json_schema()}}}
    if headers:
        answer["headers"] = headers
    return answer


_RETRY = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("bad input: a malformed code, CRS, geometry, file or value (输入有误)"),
    401: _error("not signed in, or the token is expired or revoked (未登录)",
                {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}),
    403: _error("the account's role or area may not do this (无权限)"),
    404: _error("no such thing, or not in the caller's area (不存在)"),
    409: _error("conflicts with the current state, e.g. a move the ticket's state does not allow (冲突)"),
    413: _error("the request body is larger than the server accepts (请求过大)"),
    422: _error("the request does not match the schema, or a grid edit breaks topology (校验失败)"),
    429: _error("too many attempts; retry after the given seconds (请求过多)", _RETRY),
    503: _error("the database is unavailable or busy; retry shortly (服务繁忙)", _RETRY),
}


class Open311Error(BaseModel):
    """GeoReport v2's error shape: a list of ``{code, description}``."""

    code: int
    description: str


def open311_responses() -> dict[int | str, dict[str, Any]]:
    """The error answers of the GeoReport v2 routes: its own ``[{code, description}]`` for what the
    route refuses, OneMap's error body for what is refused before it (sign-in, role, a malformed request)."""
    either = {"anyOf": [{"type": "array", "items": Open311Error.model_json_schema()}, ErrorBody.model_json_schema()]}
    return {status: {**answer, "content": {"application/json": {"schema": either}}}
            for status, answer in ERROR_RESPONSES.items()}


def complete_error_answers(schema: dict[str, Any]) -> dict[str, Any]:
    """Give every operation of an OpenAPI ``schema`` the common error answers, in place: a route that
    names one only to describe it in its own words (``responses={404: {"description": ...}}``) keeps
    its words and gains the body's schema."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            answers = operation.setdefault("responses", {})
            for status, default in ERROR_RESPONSES.items():
                answer = answers.setdefault(str(status), dict(default))
                answer.setdefault("content", default["content"])
    return schema
