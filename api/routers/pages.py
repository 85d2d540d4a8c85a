"""HTML pages (templates in web/templates): the big-screen map, grid editor, ticket desk, export page.

The pages talk to the API over HTTP only; the template passes nothing but the optional base map
(``ONEMAP_TILE_URL``) and its CRS, so a page never knows more than any other API client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.auth import settings_of

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[2] / "web" / "templates")

PAGES = {"map": "map.html", "editor": "editor.html", "desk": "desk.html", "export": "export.html"}


def render(request: Request, page: str) -> HTMLResponse:
    settings = request.app.state.settings
    tile_crs = "gcj02" if str(settings.tile_crs).lower().replace("-", "") == "gcj02" else "wgs84"
    context = {"tile_url": settings.tile_url, "tile_crs": tile_crs, "page": page,
               "auth_on": settings_of(request).enabled}  # the header's 登录 link; off: the demo banner instead
    return templates.TemplateResponse(request, PAGES[page], context)


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request) -> HTMLResponse:
    """The command hall's big-screen map (指挥大屏)."""
    return render(request, "map")


@router.get("/editor", response_class=HTMLResponse)
def editor_page(request: Request) -> HTMLResponse:
    """The planners' grid editor (网格编辑)."""
    return render(request, "editor")


@router.get("/desk", response_class=HTMLResponse)
def desk_page(request: Request) -> HTMLResponse:
    """The ticket desk (工单受理台) for town and department staff."""
    return render(request, "desk")


@router.get("/exports", response_class=HTMLResponse)
def export_page(request: Request) -> HTMLResponse:
    """The analysts' export page (数据导出); ``GET /export`` is the exports API's JSON catalogue."""
    return render(request, "export")
