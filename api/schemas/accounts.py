"""Accounts, sign-in and the audit log (账号、登录、审计)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas.common import Open


class TokenOut(Open):
    """A bearer token (OAuth2 password flow); the same token also comes back as an HttpOnly cookie."""

    access_token: str
    token_type: str = Field(description="bearer")
    expires_at: str = Field(description="ISO 8601 time the token expires")
    expires_in: int = Field(description="seconds until it expires")


class Status(Open):
    status: str


class Me(Open):
    """Who the caller is and what the role covers (``auth`` false in demo mode)."""

    auth: bool
    username: str
    display_name: str
    role: str = Field(description="city, district, town, village, department, grid_worker, planner, analyst, viewer")
    role_name: str = Field(description="the role in Chinese (角色)")
    area_code: str | None = Field(description="the area the account covers (辖区)")
    department: str | None
    grid_codes: list[str]
    permissions: list[str]
    can_see_phones: bool
    may_edit_grids: bool
    may_export: bool


class AuditEntry(Open):
    """One audited request (审计记录): who, role, what, status, client address."""

    id: int
    at: datetime
    username: str | None
    role: str | None
    method: str
    path: str
    status: int
    ip: str | None = Field(description="the client's address (trusted proxies only through X-Forwarded-For)")
    action: str | None = Field(description="the route's name")
    object: str | None = Field(description="what was acted on, e.g. ticket 17, edit=3")
    detail: dict[str, Any] | None


class AuditPage(Open):
    total: int
    limit: int
    offset: int
    entries: list[AuditEntry]
