"""Address → point (``GET /geocode``) and point → grid + nearest standard address (``GET /reverse``).

Statuses and HTTP codes (documented in the OpenAPI description):
- ``exact`` / ``fuzzy``: 200 with the point, matched address, confidence and grid;
- ``ambiguous``: 200 with ``lon``/``lat`` null and the candidates: the caller must choose, the
  server never places it;
- ``unmatched`` (no close standard address, or an address in another city): 404 with the reason in
  ``detail`` and the parse and candidates in ``info``;
- an empty ``q``: 400.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import ScopeDep
from api.deps import SessionDep
from api.routers.resolve import redact
from api.schemas import places as P
from api.schemas.errors import ErrorBody
from gis.coords import normalize_crs
from gis.errors import InvalidInput, NotFound
from gis.geocode import geocode, reverse

router = APIRouter(tags=["geocode"])


@router.get("/geocode", response_model=P.Geocoded, responses={
    400: {"model": ErrorBody, "description": "empty address"},
    404: {"model": ErrorBody, "description": "unmatched: no close standard address, or not in this city "
                                             "(``info`` holds the attempt)"}})
def geocode_address(session: SessionDep, scope: ScopeDep, q: str = "",
                    limit: Annotated[int, Query(ge=1, le=50)] = 5) -> dict:
    """Geocode one Chinese address against the standard-address table (标准地址)."""
    if not q.strip():
        raise InvalidInput("empty address: pass q=, e.g. /geocode?q=圣城街123号")
    result = geocode(session, q, limit=limit)
    if result.status == "unmatched":
        raise NotFound(f"address not matched: {result.reason}", detail=result.as_dict())
    return result.as_dict()


@router.get("/reverse", response_model=P.Reversed)
def reverse_point(session: SessionDep, scope: ScopeDep, lon: Annotated[float, Query(allow_inf_nan=False)],
                  lat: Annotated[float, Query(allow_inf_nan=False)], crs: str = "EPSG:4326") -> dict:
    """Grid, village, town and district of a point given in ``crs`` (EPSG code, ``gcj02``, ``bd09``),
    and the nearest standard address with its distance in metres. Outside the caller's area the grid
    and village/community are withheld (``in_scope`` false), as ``GET /resolve`` does."""
    crs = normalize_crs(crs)
    if crs in ("EPSG:4326", "EPSG:4490", "gcj02", "bd09") and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidInput(f"latitude {lat} / longitude {lon} out of range (±90 / ±180)")
    answer = redact(reverse(session, lon, lat, crs=crs), scope)
    near = answer.get("nearest")
    if near and near.get("grid_code") and not scope.city_wide and not scope.sees({}, grid_code=near["grid_code"]):
        answer["nearest"] = {**near, "grid_code": None}
    return answer
