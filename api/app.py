"""The FastAPI application factory."""

from __future__ import annotations

import importlib
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api import errors, jobs, middleware
from gis.db import session_factory
from gis.settings import ApiSettings, api_settings
from layers import follow

# One router module per layer; each exposes `router`.
ROUTERS = [
    "api.routers.grids",
    "api.routers.resolve",
    "api.routers.geocode",
    "api.routers.tickets",
    "api.routers.calls",
    "api.routers.basedata",
    "api.routers.open311",
    "api.routers.sensors",
    "api.routers.workers",
    "api.routers.cameras",
    "api.routers.editor",
    "api.routers.tiles",
    "api.routers.live",
    "api.routers.exports",
    "api.routers.ogc",
    "api.routers.auth",
    "api.routers.pages",
    "api.routers.field",
]

log = logging.getLogger("onemap.api")

WEB = Path(__file__).resolve().parent.parent / "web"



@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Warm the resolver's index and the connection pool in the background so the first requests do
    not wait for them; run the scheduled jobs (:mod:`api.jobs`) while the server is up."""
    def warm() -> None:
        from gis.db import warm_pool
        from gis.locate import warm as build
        from gis.settings import database_settings

        try:
            with app.state.sessions() as session:
                log.info("resolver index ready: %d grids", build(session))
            warm_pool(app.state.sessions.kw["bind"], database_settings().pool_size)
        except Exception:  # noqa: BLE001 - a cold start must not stop the server; requests build it
            log.warning("could not warm the resolver index at start-up", exc_info=True)

    threading.Thread(target=warm, name="warm-resolver", daemon=True).start()
    tasks = jobs.start(app)  # the card refresh, on the server's clock
    yield
    await jobs.stop(tasks)
    audit = getattr(app.state, "audit", None)
    if audit is not None and hasattr(audit, "close"):  # store what was queued before the process ends
        await run_in_threadpool(audit.close)


def create_app(settings: ApiSettings | None = None, *, database_url: str | None = None) -> FastAPI:
    settings = settings or api_settings()
    app = FastAPI(title="OneMap", version="0.1.0", lifespan=_lifespan,
                  description="One map governs the city: grids, resolver, tickets and sensing over PostGIS.")
    app.state.settings = settings
    app.state.sessions = session_factory(database_url)
    follow.install()  # sensors, cameras, assignments and grid workers follow every grid edit
    errors.install(app)
    middleware.install(app)
    for name in ROUTERS:
        app.include_router(importlib.import_module(name).router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    vendor = WEB / "node_modules"
    if vendor.is_dir():  # installed from the npm registry by scripts/setup.sh
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
    logging.getLogger("onemap").setLevel(logging.INFO)
    return app
