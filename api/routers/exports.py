"""Downloads for analysts: GET /export/{layer}?format=shp|gpkg|geojson|csv&area=&from=&to=&crs=&encoding=.

The file is written chunk by chunk into a temporary file while the request's session is open, then
streamed from disk and deleted: memory stays at one chunk whatever the size, and every error (unknown
area, a character GBK cannot hold, the 2 GB shapefile limit) is a clean 4xx before any byte is sent.
An empty selection is a valid empty file (a month without tickets is an answer, not an error); the
``X-Feature-Count`` header says how many features the file holds. Several layers may be named with
commas (``/export/grids,tickets?format=gpkg``) for formats that hold several (gpkg, shp).
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.auth import ExportScope
from api.deps import SessionDep
from gis import export as X
from gis.errors import InvalidInput
from gis.export_crs import file_stem, output_crs
from gis.export_dbf import ENCODINGS
from layers import catalog

router = APIRouter(tags=["exports"])


def content_disposition(filename: str, fallback: str) -> str:
    """An attachment header old and new browsers read: ASCII name plus RFC 5987 UTF-8 name."""
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def download_names(layers: list[catalog.Layer], fmt: str, crs: str, area: str | None,
                   area_name: str | None, start: datetime | None, end: datetime | None) -> tuple[str, str]:
    """(Chinese file name, ASCII fallback), e.g. 网格_圣城街道_20261101-20261201.zip."""
    period = ""
    if start or end:
        period = f"_{start.strftime('%Y%m%d') if start else ''}-{end.strftime('%Y%m%d') if end else ''}"
    ascii_stem = "+".join(layer.name for layer in layers) + (f"_{area}" if area else "") + period
    zh_stem = "+".join(layer.title for layer in layers) + (f"_{area_name or area}" if area else "") + period
    suffix = X.SUFFIXES[fmt]
    return file_stem(zh_stem, crs) + suffix, file_stem(ascii_stem, crs) + suffix


def _area_name(session, area: str | None) -> str | None:
    if not area:
        return None
    from gis import registry

    found = registry.load_areas(session, codes=[area])
    return None if found.empty else str(found["name"].iloc[0])


@router.get("/export/{layer}")
def export_layer(
    layer: str,
    session: SessionDep,
    scope: ExportScope,
    format: Annotated[str, Query(description="shp (zipped), gpkg, geojson or csv")] = "shp",
    area: Annotated[str | None, Query(description="12-digit district, town or village code")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="start, inclusive (Asia/Shanghai if naive)")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="end, exclusive")] = None,
    crs: Annotated[str | None, Query(description="EPSG:4326 (default), EPSG:4490, EPSG:4513-4554 or gcj02")] = None,
    encoding: Annotated[str | None, Query(description="shapefile text: utf-8 (default) or gbk")] = None,
    names: Annotated[str, Query(pattern="^(en|zh)$", description="field and layer names: en or zh (Chinese)")] = "en",
    geometry: Annotated[str, Query(pattern="^(wkt|lonlat)$", description="csv geometry columns")] = "wkt",
) -> FileResponse:
    """Download a layer (or several, comma-separated) as a file ArcGIS, QGIS or Excel opens: roles
    with the export permission only, and only the features of the caller's area."""
    fmt, out_crs = X.check_format(format), output_crs(crs)
    wanted = [n.strip() for n in layer.split(",") if n.strip()]
    found = [catalog.get(n) for n in wanted]
    if len(found) > 1 and fmt in ("geojson", "csv"):
        raise InvalidInput(f"{fmt} holds one layer; ask for gpkg or shp to get {', '.join(wanted)} in one file")
    sources = catalog.export_sources(session, wanted, area=area, start=start, end=end, zh=names == "zh",
                                     scope=scope)
    start, end = catalog.check_range(start, end)
    fd, tmp = tempfile.mkstemp(prefix="onemap-export-", suffix=X.SUFFIXES[fmt])
    os.close(fd)
    path = Path(tmp)
    try:
        summary = X.export(sources, fmt, path, crs=out_crs, encoding=encoding, geometry=geometry)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    filename, fallback = download_names(found, fmt, out_crs, area, _area_name(session, area), start, end)
    headers = {"Content-Disposition": content_disposition(filename, fallback),
               "X-Feature-Count": str(sum(summary.rows.values()))}
    if summary.truncated:
        headers["X-Truncated-Values"] = str(summary.truncated)
    return FileResponse(path, media_type=X.MEDIA_TYPES[fmt], headers=headers,
                        background=BackgroundTask(path.unlink, missing_ok=True))


@router.get("/export/{layer}/count")
def export_count(
    layer: str,
    session: SessionDep,
    scope: ExportScope,
    area: Annotated[str | None, Query(description="12-digit district, town or village code")] = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> dict:
    """How many features ``GET /export/{layer}`` would write with the same filters (the export page
    shows it before the download)."""
    catalog.get(layer)
    chunks = catalog.select_chunks(session, layer, area=area, start=start, end=end, scope=scope)
    return {"layer": layer, "count": sum(len(c) for c in chunks)}


@router.get("/export")
def export_catalog(scope: ExportScope) -> dict:
    """The exportable layers, formats, encodings and coordinate systems."""
    return {
        "layers": [{"name": layer.name, "title": layer.title, "geometry_type": layer.geometry_type,
                    "time_filter": layer.temporal, "description": layer.description}
                   for layer in catalog.layers().values()],
        "formats": list(X.FORMATS),
        "encodings": list(ENCODINGS),
        "crs": ["EPSG:4326", "EPSG:4490", "EPSG:4513..EPSG:4554", "gcj02"],
    }
