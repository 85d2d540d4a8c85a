"""Shared pieces of the response models: an open base (extra keys pass through) and a page."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Open(BaseModel):
    """A documented answer that keeps the keys it does not declare (the routes' services may add)."""

    model_config = ConfigDict(extra="allow")


class Page(Open, Generic[T]):
    """One page of a list (分页): ``total`` matches the filter, ``items`` are ``limit`` from ``offset``."""

    total: int = Field(description="how many match the filter (总数)")
    limit: int
    offset: int
    items: list[T]


class IngestResult(Open):
    """What a batch did (CSV / JSON lines): good rows land, refused rows come back with the reason."""

    received: int = Field(description="rows in the batch (收到)")
    inserted: int = Field(description="rows stored (入库)")
    duplicates: int = Field(description="rows already stored (same id and time): skipped (重复)")
    rejected: list[dict[str, Any]] = Field(description="refused rows: {row, reason} (拒收)")
    flagged: int = Field(0, description="rows stored but flagged (e.g. an impossible GPS speed)")
    alarms_opened: list[int] = Field(default_factory=list, description="alarms the batch opened (告警)")


class RegisterImport(Open):
    """A register import (CSV / JSON lines: workers, sensors): rows stored and rows refused."""

    imported: int = Field(description="rows registered or updated (导入)")
    rejected: list[dict[str, Any]] = Field(description="refused rows: {row, reason} (拒收)")


class Feature(Open):
    """A GeoJSON feature (RFC 7946): a geometry in EPSG:4326 and its properties."""

    type: str = Field(description="Feature")
    id: str | int | None = None
    geometry: dict[str, Any] | None
    properties: dict[str, Any]


class FeatureCollection(Open):
    """A GeoJSON FeatureCollection (application/geo+json)."""

    type: str = Field(description="FeatureCollection")
    features: list[Feature]
