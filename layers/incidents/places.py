"""Where a report is (事件定位): a point or an address resolved to a grid, frozen at intake.

A location that cannot be resolved (outside the city, an address that does not geocode, geocoding
not installed) is not an error here: the :class:`Place` carries the reason and intake keeps the
report as ``unplaced`` until the desk places it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import codes as C
from gis.coords import to_wgs84
from gis.errors import InvalidInput, OneMapError
from gis.locate import locate
from layers.incidents.models import Ticket

MIN_GEOCODE_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Place:
    """Where a report is: a WGS84 point and the codes it resolved to, or why it could not be placed."""

    lon: float | None = None
    lat: float | None = None
    grid_code: str | None = None
    village_code: str | None = None
    town_code: str | None = None
    district_code: str | None = None
    registry_version: int | None = None
    match: str | None = None
    distance_m: float | None = None
    address: str | None = None
    reason: str | None = None

    @property
    def placed(self) -> bool:
        return self.grid_code is not None


def from_point(
    session: Session,
    lon: float,
    lat: float,
    crs: str,
    address: str | None,
    match: str | None = None,
) -> Place:
    """The place of a point given in ``crs`` (a 400 when it is no position at all)."""
    x, y = to_wgs84([lon], [lat], crs)
    wlon, wlat = float(x[0]), float(y[0])
    if not (-180 <= wlon <= 180 and -90 <= wlat <= 90):
        raise InvalidInput(f"point ({lon}, {lat}) in {crs} is not a valid position")
    loc = locate(session, wlon, wlat)
    base = Place(lon=wlon, lat=wlat, address=address, registry_version=loc.registry_version)
    if loc.grid_code is None:
        return replace(
            base,
            match=loc.match,
            reason=f"point ({wlon:.6f}, {wlat:.6f}) is outside every grid ({loc.match})",
        )
    return replace(
        base,
        grid_code=loc.grid_code,
        village_code=loc.village_code,
        town_code=loc.town_code,
        district_code=loc.district_code,
        match=match or loc.match,
        distance_m=loc.distance_m,
    )


def _geocode(session: Session, address: str) -> tuple[Any, str | None]:
    """Call ``gis.geocode.geocode`` when it is installed; (result, None) or (None, reason)."""
    if importlib.util.find_spec("gis.geocode") is None:
        return None, "address geocoding is not available (gis.geocode not installed)"
    from gis import geocode  # noqa: PLC0415 - optional module, written by another layer

    try:
        result = geocode.geocode(session, address)
    except OneMapError as exc:
        return None, f"address not found: {exc.message}"
    if result is None or getattr(result, "lon", None) is None:
        status = getattr(result, "status", "unmatched")
        why = getattr(result, "reason", None) or "no standard address matches"
        return None, f"address {status}: {why} ({address})"
    confidence = getattr(result, "confidence", None)
    if confidence is not None and float(confidence) < MIN_GEOCODE_CONFIDENCE:
        return None, f"address matched with low confidence {float(confidence):.2f}: {address}"
    return result, None


def resolve_place(
    session: Session,
    *,
    lon: float | None = None,
    lat: float | None = None,
    crs: str = "EPSG:4326",
    address: str | None = None,
) -> Place:
    """Coordinates win over an address; an address is geocoded; neither is a 400."""
    address = (address or "").strip() or None
    if (lon is None) != (lat is None):
        raise InvalidInput("give both lon and lat, or neither (and an address)")
    if lon is not None and lat is not None:
        return from_point(session, float(lon), float(lat), crs, address)
    if address is None:
        raise InvalidInput("a ticket needs a location: lon and lat (with crs), or an address")
    result, reason = _geocode(session, address)
    if result is None:
        return Place(address=address, reason=reason)
    matched = next(
        (
            getattr(result, k)
            for k in ("matched", "matched_address", "address")
            if getattr(result, k, None)
        ),
        None,
    )
    place = from_point(
        session, float(result.lon), float(result.lat), "EPSG:4326", address, match="geocoded"
    )
    note = f" (matched {matched})" if matched else ""
    if not place.placed:
        return replace(place, reason=f"geocoded address is outside every grid{note}")
    return place


_VILLAGE_POINT = text(
    "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM areas "
    "WHERE code = :c AND valid_to IS NULL) s"
)


def village_places(session: Session, ticket: Ticket, villages: list[str]) -> list[Place]:
    """One place per target village of a split (分单): the ticket's own point in its village, else
    a point inside the village; a village outside the ticket's town is a 400."""
    places = []
    for code in villages:
        C.validate_area_code(code, C.Level.VILLAGE)
        if ticket.town_code and code[:9] != ticket.town_code[:9]:
            raise InvalidInput(f"village {code} is not in the ticket's town {ticket.town_code}")
        if code == ticket.village_code and ticket.geom is not None:
            p = to_shape(ticket.geom)
            places.append(from_point(session, p.x, p.y, "EPSG:4326", ticket.address))
            continue
        row = session.execute(_VILLAGE_POINT, {"c": code}).first()
        if row is None:
            raise InvalidInput(f"unknown village {code}")
        places.append(from_point(session, row[0], row[1], "EPSG:4326", ticket.address))
    return places
