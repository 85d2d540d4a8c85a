"""The FastAPI application factory."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api import errors
from api.routers import grids, pages
from gis.db import session_factory
from gis.settings import ApiSettings, api_settings

WEB = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: ApiSettings | None = None, *, database_url: str | None = None) -> FastAPI:
    settings = settings or api_settings()
    app = FastAPI(title="OneMap", version="0.1.0",
                  description="One map governs the city: grids, resolver, tickets and sensing over PostGIS.")
    app.state.settings = settings
    app.state.sessions = session_factory(database_url)
    errors.install(app)
    app.include_router(grids.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")
    vendor = WEB / "node_modules"
    if vendor.is_dir():  # installed from the npm registry by scripts/setup.sh
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
    logging.getLogger("onemap").setLevel(logging.INFO)
    return app
