"""Sign-in and the caller's scope as FastAPI dependencies.

- ``CurrentUser``: the signed-in :class:`User` (bearer token from ``POST /auth/token``, or the same
  token in the ``onemap_token`` HttpOnly cookie the pages use); ``None`` when auth is off.
- ``ScopeDep``: the caller's :class:`Scope`. With auth off (the local demo only) it is the city-wide
  ``anonymous-demo`` scope. Routes pass it to the data layer (``scope.filter(stmt, Model)``); they
  never test roles themselves.
- ``require("export")`` etc.: a dependency that answers 403 unless the role has the permission;
  ``WriteScope``, ``ExportScope``, ``EditGridsScope``, ``AdminScope`` are the usual ones as aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep
from layers.accounts.scope import Scope
from layers.accounts.security import AuthError, User, scope_of, user_for_token
from layers.accounts.settings import AuthSettings, auth_settings

COOKIE = "onemap_token"
DEMO_BANNER = "演示模式 · 未启用登录"

oauth2 = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def settings_of(request: Request) -> AuthSettings:
    """The app's auth settings (set by ``api.middleware.install``), else the environment's."""
    return getattr(request.app.state, "auth_settings", None) or auth_settings()


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, detail=message, headers={"WWW-Authenticate": "Bearer"})


async def current_user(request: Request, session: SessionDep,
                       token: Annotated[str | None, Depends(oauth2)] = None) -> User | None:
    """Async so that with auth off nothing leaves the event loop; the account lookup (a query) runs in
    the thread pool."""
    settings = settings_of(request)
    if not settings.enabled:
        return None
    token = token or request.cookies.get(COOKIE)
    if not token:
        raise unauthorized("sign in first: POST /auth/token with username and password")
    try:
        user = await run_in_threadpool(user_for_token, session, token, settings=settings)
    except AuthError as exc:
        raise unauthorized(exc.message) from exc
    request.state.user = user.username
    request.state.role = user.role
    return user


CurrentUser = Annotated[User | None, Depends(current_user)]


async def current_scope(request: Request, user: CurrentUser) -> Scope:
    scope = Scope.demo() if user is None else scope_of(user)
    request.state.user = scope.user
    request.state.role = scope.role
    return scope


ScopeDep = Annotated[Scope, Depends(current_scope)]


def require(permission: str) -> Callable[[Scope], Scope]:
    """A dependency: the caller's scope if its role has ``permission``, else 403."""
    async def check(scope: ScopeDep) -> Scope:
        if not scope.allows(permission):
            raise HTTPException(403, detail=f"the {scope.role} role may not {permission.replace('_', ' ')}")
        return scope
    check.__name__ = f"require_{permission}"
    return check


WriteScope = Annotated[Scope, Depends(require("write"))]
ExportScope = Annotated[Scope, Depends(require("export"))]
EditGridsScope = Annotated[Scope, Depends(require("edit_grids"))]
AdminScope = Annotated[Scope, Depends(require("admin"))]


def demo_banner(request: Request) -> str | None:
    """The banner pages show when auth is off, else None (for templates that want to place it)."""
    return None if settings_of(request).enabled else DEMO_BANNER
