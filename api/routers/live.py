"""Live updates for the big screen: ``GET /live`` server-sent events fed by PostgreSQL LISTEN/NOTIFY.

The listening and fan-out is :class:`gis.notify.Hub` (one LISTEN connection per process, see there);
this router adds the caller's scope, the heartbeat and the token re-check. Browsers' EventSource
reconnects by itself.

Scope: a city-wide caller gets every event as it is. A scoped caller (a town, a department, a grid
worker) gets an event whose payload places it (``town_code``/``grid_code``, and for a department the
``department``) only when its scope sees that place; an event it cannot judge (a batch of worker
positions, a sensor batch) arrives as a bare nudge — its name and ``kind`` — so the screen refetches
through the scoped API instead of reading other areas' data from the stream. ``registry`` events
(a new registry version) go to everyone: the boundaries are the map's shared frame.

Revocation: an open stream asks every ``RECHECK_S`` seconds whether the token it was opened with still
stands (the same check as every request: one indexed row on the side connection). When the account is
disabled, its password reset or the token expired, the stream sends ``event: revoked`` with the reason
and ends; the browser's reconnect then meets 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import COOKIE, ScopeDep, settings_of
from gis.errors import InvalidInput
from gis.notify import CHANNELS, Hub, event_text, libpq_dsn
from layers.accounts.scope import DEPARTMENT_COLUMNS, Scope
from layers.accounts.security import AuthError, user_for_token

log = logging.getLogger("onemap.live")
router = APIRouter(tags=["map"])

HEARTBEAT_S = 15.0
RECHECK_S = 5.0  # how often an open stream asks again whether its token still stands


PLACE_KEYS = ("grid_code", "village_code", "town_code", "district_code")
NUDGE_KEYS = ("kind", "bulk", "event")


def scoped_message(scope: Scope, message: str) -> str | None:
    """``message`` as ``scope`` may receive it: whole, a bare nudge, or None (not for this caller)."""
    if scope.city_wide:
        return message
    head, _, rest = message.partition("\n")
    name = head.removeprefix("event: ")
    if name in ("registry", "hello"):
        return message
    try:
        data = json.loads(rest.removeprefix("data: ").strip() or "{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return event_text(name, "{}")
    placed = any(k in data for k in PLACE_KEYS)
    routed = not scope.department or any(k in data for k in (*DEPARTMENT_COLUMNS, "co_units"))
    if placed and routed:
        return message if scope.sees(data) else None
    nudge = {k: data[k] for k in NUDGE_KEYS if k in data and isinstance(data[k], str | int)}
    return event_text(name, json.dumps(nudge))


def hub_for(request: Request) -> Hub:
    """This process's hub (made on first use, bound to the app)."""
    state = request.app.state
    hub = getattr(state, "live_hub", None)
    if hub is None:
        engine_url = state.sessions.kw["bind"].url.render_as_string(hide_password=False)
        dsn = getattr(state, "live_dsn", None) or libpq_dsn(engine_url)
        hub = state.live_hub = Hub(dsn)
    return hub


def _wanted(channels: str | None) -> set[str]:
    names = set(CHANNELS) if not channels else {c.strip() for c in channels.split(",") if c.strip()}
    unknown = names - set(CHANNELS)
    if unknown:
        raise InvalidInput(f"unknown live channel {', '.join(sorted(unknown))}; channels: {', '.join(CHANNELS)}")
    return names


def _token(request: Request) -> str | None:
    raw = request.headers.get("authorization", "")
    return raw[7:].strip() if raw.lower().startswith("bearer ") else request.cookies.get(COOKIE)


def _revoked(request: Request, token: str) -> str | None:
    """Why the stream's token no longer stands, or None (also when the database cannot say now)."""
    session = request.app.state.sessions()
    try:
        user_for_token(session, token, settings=settings_of(request))
    except AuthError as exc:
        return exc.message
    except Exception:  # noqa: BLE001 - a database blip must not cut every screen; the next check decides
        log.warning("live: could not re-check a stream's account", exc_info=True)
    finally:
        session.close()
    return None


async def stream(request: Request, hub: Hub, names: set[str], scope: Scope | None = None) -> AsyncIterator[str]:
    queue = hub.subscribe()
    token = _token(request) if settings_of(request).enabled else None
    loop = asyncio.get_running_loop()
    recheck_at = loop.time() + RECHECK_S
    beat_at = loop.time() + HEARTBEAT_S
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.listening.wait(), timeout=5.0)
        yield "retry: 3000\n" + event_text("hello", json.dumps({"channels": sorted(names),
                                                              "listening": hub.listening.is_set()}))
        while not await request.is_disconnected():
            if token is not None and loop.time() >= recheck_at:
                reason = await run_in_threadpool(_revoked, request, token)
                if reason is not None:
                    yield event_text("revoked", json.dumps({"detail": reason}))
                    return
                recheck_at = loop.time() + RECHECK_S
            wait = min(beat_at, recheck_at if token is not None else beat_at) - loop.time()
            try:
                message = await asyncio.wait_for(queue.get(), timeout=max(wait, 0.01))
            except TimeoutError:
                if loop.time() >= beat_at:
                    yield ": ping\n\n"
                    beat_at = loop.time() + HEARTBEAT_S
                continue
            if message.split("\n", 1)[0].removeprefix("event: ") not in names:
                continue
            out = message if scope is None else scoped_message(scope, message)
            if out is not None:
                yield out
    finally:
        hub.unsubscribe(queue)


@router.get("/live")
async def live(request: Request, scope: ScopeDep,
               channels: Annotated[str | None, Query(description="comma-separated: " + ", ".join(CHANNELS))] = None
               ) -> StreamingResponse:
    """Server-sent events: ``tickets``, ``registry``, ``alarms``, ``workers``, ``sensors``, ``cameras`` —
    a scoped caller's stream carries only its area's ticket events (see the module's docstring)."""
    names = _wanted(channels)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(request, hub_for(request), names, scope), media_type="text/event-stream",
                             headers=headers)
