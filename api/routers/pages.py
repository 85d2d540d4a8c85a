"""HTML pages (templates in web/templates); they talk to the API over HTTP only."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "web" / "templates")


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    return templates.TemplateResponse(request, "map.html", {"tile_url": settings.tile_url,
                                                            "tile_crs": settings.tile_crs})
