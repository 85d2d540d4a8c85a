"""Base data (基础数据): buildings, households, residents, units, key sites captured per grid."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.schemas.common import Open, Page


class BaseSummary(Open):
    """Counts of a grid's base data (网格基础信息概况)."""

    grid_code: str
    households: int = Field(description="户")
    residents: int = Field(description="人")
    buildings: int = Field(description="楼栋")
    businesses: int = Field(description="商户")
    organisations: int = Field(description="单位")
    key_sites: int = Field(description="重点场所")


class BaseRow(Open):
    """One row of a kind, its personal fields masked unless revealed (and the reveal audited)."""

    id: int


class BasePage(Page[dict[str, Any]]):
    """A page of rows; ``masked`` says whether personal fields are masked (脱敏)."""

    masked: bool


class BaseImport(Open):
    """A CSV import that stored every row."""

    kind: str
    imported: int


class RowErrors(Open):
    """A CSV import refused whole: ``errors`` lists {row, column, reason}."""

    error: str
    detail: str
    errors: list[dict[str, Any]]
