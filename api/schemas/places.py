"""Point → grid (落格) and addresses (标准地址): what /resolve, /reverse and /geocode answer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.schemas.common import Open


class Resolved(Open):
    """Where a point is: its grid (网格), village/community (村/社区), town/street (镇/街道) and district
    (区县). Outside the caller's area the grid and village are null and ``in_scope`` is false."""

    grid_code: str | None = Field(description="15-digit grid code (null: outside every grid, or not yours)")
    grid_name: str | None
    village_code: str | None
    village_name: str | None
    town_code: str | None
    town_name: str | None
    district_code: str | None
    district_name: str | None
    match: str = Field(description="inside, boundary (on a shared edge), snapped (within the tolerance) or outside")
    distance_m: float | None = Field(description="metres to the grid when snapped")
    registry_version: int = Field(description="the grid registry version answered from (newest edit id)")
    in_scope: bool = Field(description="whether the point is in the caller's area")


class NearestAddress(Open):
    """The nearest standard address (最近标准地址)."""

    id: int
    address: str | None
    town: str | None
    road: str | None
    number: str | int | None
    building: str | int | None
    unit: str | int | None
    lon: float
    lat: float
    grid_code: str | None
    distance_m: float


class Reversed(Resolved):
    """A point (in its own CRS), the WGS84 point, its grid and areas and the nearest standard address."""

    lon: float
    lat: float
    crs: str
    wgs84: list[float] = Field(description="[lon, lat] in EPSG:4326")
    nearest: NearestAddress | None


class Geocoded(Open):
    """One address matched against the standard-address table (地址匹配)."""

    query: str
    status: str = Field(description="exact, fuzzy, ambiguous or unmatched")
    confidence: float = Field(description="0-1 (置信度)")
    reason: str | None
    lon: float | None
    lat: float | None
    address: str | None = Field(description="the matched standard address")
    town: str | None
    parsed: dict[str, Any] = Field(description="the parsed parts: road, number, building, unit ... (解析)")
    candidates: list[dict[str, Any]]
    grid: dict[str, Any] | None = Field(description="the matched point's grid and areas")
