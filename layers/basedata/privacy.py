"""Personal data minimised (个人信息最小化): ID numbers and phones are masked for everyone by default; a
role that needs them may ask for them (``reveal``), and every such read is written to the audit log in
the same transaction as the read.

Who may reveal what, and why:
- ID numbers (身份证号): the community (village role) that keeps the household register, and the city
  administrators; nobody else needs a full ID number to do their work.
- Phones: the roles that call people back (city, district, town, village), as for tickets' reporters
  (``Scope.can_see_phones``) — but departments, though they may see reporters' phones, have no
  business with the residents' register at all (see ``PEOPLE_ROLES``).
Grid workers capture the data but read it back masked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from gis.errors import OneMapError
from layers.accounts import audit
from layers.accounts.scope import Scope
from layers.privacy import mask_phone

# Roles that may read households and residents at all (masked); others are refused.
PEOPLE_ROLES = frozenset({"city", "district", "town", "village", "grid_worker"})
REVEAL_ROLES = {"id_number": frozenset({"city", "village"}), "phone": frozenset({"city", "district", "town",
                                                                                "village"})}
SENSITIVE = {"households": ("phone",), "residents": ("id_number", "phone"), "base_units": ("phone",)}


class NotPermitted(OneMapError):
    """The role may not read this (the API answers 403 with the reason)."""


def mask_id(value: str | None) -> str | None:
    """370783********123X: the region (6) and the last four kept; the birth date hidden."""
    if not value:
        return value
    text = value.strip()
    if len(text) < 10:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10) + text[-4:]


MASKS = {"id_number": mask_id, "phone": mask_phone}


def check_people(scope: Scope, table: str) -> None:
    if table in ("households", "residents") and scope.role not in PEOPLE_ROLES and not _demo(scope):
        raise NotPermitted(f"the {scope.role} role has no access to the residents' register (人口信息)")


def _demo(scope: Scope) -> bool:
    return scope.user == Scope.demo().user


def check_reveal(scope: Scope, table: str) -> tuple[str, ...]:
    """The fields ``scope`` may reveal on ``table``; refuses a role that may reveal none of them."""
    fields = SENSITIVE.get(table, ())
    allowed = tuple(f for f in fields if _demo(scope) or scope.role in REVEAL_ROLES[f])
    if fields and not allowed:
        raise NotPermitted(f"the {scope.role} role may not see unmasked {' or '.join(fields)} (脱敏显示); "
                           f"roles that may: {', '.join(sorted(set().union(*(REVEAL_ROLES[f] for f in fields))))}")
    return allowed


def present(rows: Iterable[dict[str, Any]], table: str, revealed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows with every sensitive field masked except ``revealed`` ones."""
    out = []
    for row in rows:
        row = dict(row)
        for name in SENSITIVE.get(table, ()):
            if name in row and name not in revealed:
                row[name] = MASKS[name](row[name])
        out.append(row)
    return out


def audit_reveal(session: Session, scope: Scope, table: str, ids: list[int], fields: tuple[str, ...], *,
                 path: str) -> None:
    """One audit row for one unmasked read: who, which records, which fields (same transaction)."""
    if not ids or not fields:
        return
    shown = ",".join(str(i) for i in ids[:20]) + (f",…(+{len(ids) - 20})" if len(ids) > 20 else "")
    audit.write(session, [{"at": datetime.now(UTC), "username": scope.user, "role": scope.role, "method": "GET",
                           "path": path, "status": 200, "action": "basedata.reveal",
                           "object": f"{table} id={shown}",
                           "detail": {"table": table, "ids": ids, "fields": list(fields)}}])
