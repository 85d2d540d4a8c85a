"""OGC API – Features (Part 1 core + GeoJSON, Part 2 CRS by reference) over the layer catalog.

QGIS, ArcGIS Pro and GDAL's OAPIF driver add grids and tickets as live layers from
``/ogc``. A small router of our own rather than mounting pygeoapi: the catalog already knows how to
select each layer with the same area/time rules as the exports, and pygeoapi would bring its own
configuration file, provider plugins and a second copy of those rules for six endpoints.

CRS Part 2: ``crs=`` and ``bbox-crs=`` take OGC URIs (CRS84, EPSG:4326, EPSG:4490 and the CGCS2000
Gauss-Krüger zones EPSG:4513-4554); the answer says its CRS in ``Content-Crs``. Coordinates follow
the CRS's own axis order as Part 2 requires: CRS84 is lon/lat, the EPSG codes are lat/lon
(northing/easting for the zones). ``datetime`` filters tickets by time received (a closed interval
is treated as half-open [start, end)); for registry layers it picks the grids as they stood at its
end. Paging is ``limit`` (default 100, at most 10,000) and ``offset`` with ``next`` links.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated

import numpy as np
import shapely
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pyproj import CRS
from sqlalchemy.orm import Session

from api.auth import ScopeDep
from api.deps import SessionDep
from gis import registry
from gis.coords import WGS84, to_wgs84
from gis.errors import InvalidInput, NotFound, UnknownCRS
from gis.export_crs import GK_EPSG, is_projected, to_output_crs
from gis.export_geojson import features_json
from layers import catalog

router = APIRouter(prefix="/ogc", tags=["ogc"])

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
]
SUPPORTED = [CRS84] + [f"{EPSG_URI}{code}" for code in (4326, 4490, *GK_EPSG)]
GEOJSON = "application/geo+json"
DEFAULT_LIMIT, MAX_LIMIT = 100, 10_000


# ------------------------------------------------------------------------------------ CRS


def parse_crs(uri: str | None, what: str = "crs") -> str:
    """An OGC CRS URI (or EPSG:nnnn) → 'CRS84' or 'EPSG:nnnn' from the supported list."""
    if uri is None or uri.strip() in ("", CRS84, "CRS84", "OGC:CRS84"):
        return "CRS84"
    value = uri.strip().strip("[]")
    if value.startswith(EPSG_URI):
        value = "EPSG:" + value[len(EPSG_URI):]
    if value.upper().startswith("EPSG:") and f"{EPSG_URI}{value[5:]}" in SUPPORTED:
        return value.upper()
    raise UnknownCRS(f"{what} {uri!r} is not supported; use one of {CRS84}, {EPSG_URI}4326, "
                     f"{EPSG_URI}4490 or {EPSG_URI}4513..4554")


def crs_uri(name: str) -> str:
    return CRS84 if name == "CRS84" else EPSG_URI + name.split(":")[1]


@lru_cache(maxsize=64)
def north_first(name: str) -> bool:
    """Whether the CRS's first axis points north (EPSG lat/lon and northing/easting)."""
    return name != "CRS84" and CRS.from_user_input(name).axis_info[0].direction == "north"


def _swap(geoms: np.ndarray) -> np.ndarray:
    return shapely.transform(geoms, lambda c: c[:, ::-1])


def bbox_to_wgs84(bbox: str | None, bbox_crs: str | None) -> tuple[float, float, float, float] | None:
    """A ``bbox`` in ``bbox-crs`` (its axis order) as a WGS84 lon/lat box covering it."""
    if not bbox:
        return None
    try:
        values = [float(v) for v in bbox.split(",")]
    except ValueError as exc:
        raise InvalidInput(f"bbox {bbox!r} must be four comma-separated numbers") from exc
    if len(values) == 6:  # 3-D bbox: drop the heights
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4:
        raise InvalidInput(f"bbox {bbox!r} must be four comma-separated numbers")
    name = parse_crs(bbox_crs, "bbox-crs")
    if north_first(name):
        values = [values[1], values[0], values[3], values[2]]
    if name in ("CRS84", "EPSG:4326", "EPSG:4490"):
        return catalog.check_bbox((values[0], values[1], values[2], values[3]))
    ring = shapely.segmentize(shapely.box(*values), (values[2] - values[0]) / 16 or 1.0)
    corners = shapely.get_coordinates(ring)
    x, y = to_wgs84(corners[:, 0], corners[:, 1], crs=name)
    return catalog.check_bbox((float(x.min()), float(y.min()), float(x.max()), float(y.max())))


# ------------------------------------------------------------------------------- datetime


def _instant(text_: str) -> datetime | None:
    if text_ in ("", ".."):
        return None
    try:
        return datetime.fromisoformat(text_.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"datetime {text_!r} is not RFC 3339, e.g. 2026-11-01T00:00:00Z") from exc


def parse_datetime(value: str | None, layer: catalog.Layer) -> tuple[datetime | None, datetime | None]:
    """``datetime`` (an instant or start/end with '..' for open ends) → the catalog's [start, end)."""
    if not value:
        return None, None
    if "/" in value:
        first, _, second = value.partition("/")
        return _instant(first), _instant(second)
    moment = _instant(value)
    if layer.temporal is None:
        return None, moment  # registry layers: as they stood at that instant
    return moment, moment + timedelta(seconds=1) if moment else None


# ---------------------------------------------------------------------------------- pages


def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict:
    link = {"href": href, "rel": rel, "type": type_}
    if title:
        link["title"] = title
    return link


@router.get("")
def landing(request: Request) -> dict:
    """The landing page: where the conformance declaration and the collections are."""
    return {
        "title": "OneMap",
        "description": "Grids, areas, tickets and sensors of the city as OGC API – Features (一张图).",
        "links": [
            _link(str(request.url_for("landing")), "self", "application/json", "this document"),
            _link(str(request.url_for("conformance")), "conformance", "application/json",
                  "conformance classes"),
            _link(str(request.url_for("collections")), "data", "application/json", "feature collections"),
        ],
    }


@router.get("/conformance")
def conformance() -> dict:
    return {"conformsTo": CONFORMANCE}


def city_bbox(session: Session) -> list[float]:
    """The extent of every current area: the city is every layer's extent."""
    box = registry.extent(session, "areas")
    return [round(v, 7) for v in box] if box is not None else [-180.0, -90.0, 180.0, 90.0]


def _collection(request: Request, layer: catalog.Layer, bbox: list[float]) -> dict:
    items = str(request.url_for("items", collection_id=layer.name))
    return {
        "id": layer.name,
        "title": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "extent": {"spatial": {"bbox": [bbox], "crs": CRS84},
                   "temporal": {"interval": [[None, None]], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}},
        "crs": SUPPORTED,
        "storageCrs": CRS84,
        "links": [
            _link(str(request.url_for("collection", collection_id=layer.name)), "self", "application/json"),
            _link(items, "items", GEOJSON, f"{layer.title} features"),
        ],
    }


@router.get("/collections")
def collections(request: Request, session: SessionDep, scope: ScopeDep) -> dict:
    bbox = city_bbox(session)
    return {
        "links": [_link(str(request.url_for("collections")), "self", "application/json")],
        "collections": [_collection(request, layer, bbox) for layer in catalog.layers().values()],
        "crs": SUPPORTED,
    }


@router.get("/collections/{collection_id}")
def collection(collection_id: str, request: Request, session: SessionDep, scope: ScopeDep) -> dict:
    return _collection(request, catalog.get(collection_id), city_bbox(session))


def _feature_bytes(frame, layer: catalog.Layer, out_crs: str) -> bytes:
    if out_crs == "CRS84":
        frame = to_output_crs(frame, WGS84)
    else:
        frame = to_output_crs(frame, out_crs)
        if north_first(out_crs):
            frame = frame.set_geometry(_swap(np.asarray(frame.geometry.values, dtype=object)), crs=frame.crs)
    precision = 3 if is_projected(out_crs if out_crs != "CRS84" else WGS84) else 7
    return features_json(frame, layer.key, precision)


def _next_href(request: Request, offset: int, limit: int) -> str:
    params = dict(request.query_params)
    params.update({"offset": str(offset), "limit": str(limit)})
    return str(request.url.replace_query_params(**params))


@router.get("/collections/{collection_id}/items")
def items(
    collection_id: str,
    request: Request,
    session: SessionDep,
    scope: ScopeDep,
    limit: Annotated[int, Query(ge=1, le=2**31 - 1)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    bbox: str | None = None,
    bbox_crs: Annotated[str | None, Query(alias="bbox-crs")] = None,
    datetime_: Annotated[str | None, Query(alias="datetime")] = None,
    crs: str | None = None,
    area: str | None = None,
) -> Response:
    """A page of features as GeoJSON, with a ``next`` link while more remain — those of the caller's area."""
    layer = catalog.get(collection_id)
    out_crs = parse_crs(crs)
    limit = min(limit, MAX_LIMIT)
    start, end = parse_datetime(datetime_, layer)
    box = bbox_to_wgs84(bbox, bbox_crs)
    frame = catalog.select(session, layer.name, area=area, start=start, end=end, bbox=box,
                           limit=limit + 1, offset=offset, scope=scope)
    more = len(frame) > limit
    frame = frame.iloc[:limit]
    links = [_link(str(request.url), "self", GEOJSON)]
    if more:
        links.append(_link(_next_href(request, offset + limit, limit), "next", GEOJSON, "next page"))
    if offset:
        links.append(_link(_next_href(request, max(offset - limit, 0), limit), "prev", GEOJSON))
    head = {"type": "FeatureCollection", "numberReturned": len(frame),
            "timeStamp": datetime.now().astimezone().isoformat(timespec="seconds"), "links": links}
    body = _wrap(head, _feature_bytes(frame, layer, out_crs) if len(frame) else b"")
    return Response(body, media_type=GEOJSON, headers={"Content-Crs": f"<{crs_uri(out_crs)}>"})


def _wrap(head: dict, features: bytes) -> bytes:
    text_ = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
    return text_[:-1].encode("utf-8") + b',"features":[' + features + b"]}"


@router.get("/collections/{collection_id}/items/{feature_id}")
def item(collection_id: str, feature_id: str, request: Request, session: SessionDep, scope: ScopeDep,
         crs: str | None = None) -> Response:
    """One feature by its id (grid or area code, ticket or sensor id); another area's: 404."""
    layer = catalog.get(collection_id)
    out_crs = parse_crs(crs)
    for chunk in catalog.select_chunks(session, layer.name, scope=scope):
        hit = chunk[chunk[layer.key].astype(str) == feature_id]
        if len(hit):
            piece = _feature_bytes(hit.iloc[:1], layer, out_crs)
            return Response(piece, media_type=GEOJSON, headers={"Content-Crs": f"<{crs_uri(out_crs)}>"})
    raise NotFound(f"no feature {feature_id!r} in collection {collection_id!r}")

