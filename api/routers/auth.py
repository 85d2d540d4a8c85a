"""Sign-in (``POST /auth/token``), who am I (``GET /auth/me``) and the audit log (``GET /audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from api.auth import COOKIE, AdminScope, CurrentUser, ScopeDep, settings_of
from api.client_ip import client_ip
from api.deps import SessionDep
from api.schemas import accounts as A
from api.schemas.errors import ErrorBody
from layers.accounts import audit
from layers.accounts.scope import ROLE_NAMES
from layers.accounts.security import AuthError, authenticate, issue_token
from layers.accounts.throttle import SignInThrottle, committing

router = APIRouter(tags=["auth"])

LOGIN_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>OneMap · 登录</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/onemap.css"></head>
<body class="login"><main id="login">
<h1>OneMap 一张图 · 登录</h1>
<form method="post" action="/auth/token">
<input type="hidden" name="next" value="{next}">
<label>用户名 <input name="username" autocomplete="username" required></label>
<label>密码 <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">登录</button>
</form></main></body></html>"""


def _safe_next(value: str | None) -> str | None:
    """Only a path on this site: never an open redirect to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    return value


NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _throttle(request: Request) -> SignInThrottle:
    """The app's sign-in throttle, made on first use: its counts live in the database, shared by every
    server process, each record in a transaction of its own (kept though the request answers 401)."""
    found = getattr(request.app.state, "sign_in_throttle", None)
    if found is None:
        found = request.app.state.sign_in_throttle = SignInThrottle(committing(request.app.state.sessions))
    return found


@router.post("/auth/token", response_model=None, responses={
    200: {"model": A.TokenOut, "description": "the token (also set as an HttpOnly cookie)"},
    303: {"description": "with a form field next: a redirect there, the token in the cookie"},
    401: {"model": ErrorBody, "description": "wrong username or password, or a disabled account"},
    429: {"model": ErrorBody, "description": "too many failed sign-ins: see Retry-After"}})
def token(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)], next: Annotated[str | None, Form(max_length=500)] = None,
          grant_type: Annotated[str | None, Form(pattern="^password$")] = None) -> Response:
    """OAuth2 password flow: form ``username`` and ``password`` → a short-lived bearer token.

    The token also comes back as an HttpOnly, SameSite=Strict cookie for the pages; with a form field
    ``next`` (a path on this site) the answer is a redirect there, for the plain HTML login form.
    Failures are throttled per (account, address), account and address (``layers.accounts.throttle``):
    429 with ``Retry-After``, the same for unknown usernames. Answers are ``Cache-Control: no-store``."""
    settings = settings_of(request)
    request.state.audit = {"object": f"user {username[:64]}"}
    request.state.user = request.state.role = None  # who signs in is the object; a stale cookie is not who
    if not settings.enabled:
        raise HTTPException(400, detail="auth is off (demo mode): no sign-in needed")
    throttle, ip = _throttle(request), client_ip(request.scope) or "?"
    refused = throttle.check(username, ip)
    if refused is not None:
        return JSONResponse({"error": "TooManyRequests", "detail": refused.reason}, status_code=429,
                            headers={"Retry-After": str(refused.retry_after), **NO_STORE})
    try:
        user = authenticate(session, username, password, settings=settings)
    except AuthError as exc:
        throttle.failed(username, ip, lockout_failures=settings.lockout_failures,
                        lockout_minutes=settings.lockout_minutes)
        raise HTTPException(401, detail=exc.message, headers={"WWW-Authenticate": "Bearer", **NO_STORE}) from exc
    throttle.succeeded(username, ip)
    request.state.user, request.state.role = user.username, user.role
    issued = issue_token(user, settings=settings)
    body = {"access_token": issued.access_token, "token_type": issued.token_type,
            "expires_at": issued.expires_at.isoformat(), "expires_in": settings.token_minutes * 60}
    target = _safe_next(next)
    response: Response = (RedirectResponse(target, status_code=303, headers=NO_STORE) if target
                          else JSONResponse(body, headers=NO_STORE))
    response.set_cookie(COOKIE, issued.access_token, max_age=settings.token_minutes * 60, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/auth/logout", response_model=None, responses={200: {"model": A.Status}})
def logout() -> Response:
    """Forget the pages' cookie (tokens themselves expire on their own)."""
    response = JSONResponse({"status": "signed out"})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(next: str | None = None) -> HTMLResponse:
    """A plain HTML sign-in form (no script) for the pages."""
    target = _safe_next(next) or "/"
    return HTMLResponse(LOGIN_PAGE.replace("{next}", target.replace('"', "%22").replace("<", "%3C")))


@router.get("/auth/me", response_model=A.Me)
def me(request: Request, user: CurrentUser, scope: ScopeDep) -> dict:
    """Who the caller is and what the role covers (``auth: false`` in demo mode)."""
    return {
        "auth": settings_of(request).enabled,
        "username": scope.user,
        "display_name": user.display_name if user else "演示用户",
        "role": scope.role,
        "role_name": ROLE_NAMES[scope.role],
        "area_code": scope.area_code,
        "department": scope.department,
        "grid_codes": list(scope.grid_codes),
        "permissions": sorted(scope.permissions),
        "can_see_phones": scope.can_see_phones,
        "may_edit_grids": scope.may_edit_grids,
        "may_export": scope.may_export,
    }


@router.get("/audit", response_model=A.AuditPage)
def audit_log(session: SessionDep, scope: AdminScope, username: str | None = None,
              method: Annotated[str | None, Query(pattern="^(GET|POST|PUT|PATCH|DELETE|get|post|put|patch|delete)$")] = None,
              path: Annotated[str | None, Query(max_length=500)] = None, action: str | None = None,
              status: Annotated[int | None, Query(ge=100, le=599)] = None, since: datetime | None = None,
              until: datetime | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict:
    """The audit log, newest first (city administrators only): filter by user, method, path prefix,
    action (the route's name), status and time."""
    total, rows = audit.query(session, username=username, method=method, path_prefix=path, action=action,
                              status=status, since=since, until=until, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "entries": rows}
