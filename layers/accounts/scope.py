"""Who may see and do what (按辖区授权): THE one place where area scoping is defined.

A :class:`Scope` is the caller's role and jurisdiction. Layers never test roles themselves: they pass
their query through ``scope.filter(stmt, Model)`` and a loaded row through ``scope.sees(row)``,
which read the same columns the same way:

- city-wide roles (city, and planner/analyst/viewer without an area) see everything;
- district, town/street and village/community roles see rows whose area code is theirs. A model is
  matched on its column of the area's level (``district_code``, ``town_code``, ``village_code``)
  or, when it lacks that one, on a finer code column by prefix (codes nest: county 6 digits, town 9,
  village 12, grid 15), so a town scope works on a table that only stores ``grid_code``;
- a grid worker (网格员) sees rows in the grids it patrols (``grid_code``);
- a department (职能部门) sees rows routed to it (``department``, ``assignee`` or ``co_units``); on a
  table without those columns it falls back to its area (the whole city if it has none);
- a row whose codes are NULL (e.g. an unplaced ticket) is visible city-wide only;
- a model with no usable column is closed to scoped roles (``false()``), never open.

Asking for an object outside the scope is answered like asking for one that does not exist (404):
the caller learns nothing about other areas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, and_, any_, false, inspect, literal, or_, select, true

from gis import codes as C
from gis.errors import InvalidInput, NotFound
from layers.privacy import mask_phone

ROLES = ("city", "district", "town", "village", "grid_worker", "department", "planner", "analyst", "viewer")
ROLE_NAMES = {"city": "市级", "district": "区县", "town": "镇街", "village": "村社区", "grid_worker": "网格员",
              "department": "职能部门", "planner": "规划员", "analyst": "分析员", "viewer": "只读"}

# Permissions per role. Phones: the roles that call citizens back or dispatch workers.
PERMISSIONS: dict[str, frozenset[str]] = {
    "city": frozenset({"read", "write", "see_phones", "export", "admin"}),
    "district": frozenset({"read", "write", "see_phones"}),
    "town": frozenset({"read", "write", "see_phones"}),
    "village": frozenset({"read", "write", "see_phones"}),
    "grid_worker": frozenset({"read", "write"}),
    "department": frozenset({"read", "write", "see_phones"}),
    "planner": frozenset({"read", "edit_grids"}),
    "analyst": frozenset({"read", "export"}),
    "viewer": frozenset({"read"}),
}
ALL_PERMISSIONS = frozenset().union(*PERMISSIONS.values())

# The area level a role's area_code must have (None: any level, or none at all).
ROLE_LEVEL: dict[str, C.Level | None] = {"district": C.Level.DISTRICT, "town": C.Level.TOWN,
                                         "village": C.Level.VILLAGE}
PREFIX = {C.Level.DISTRICT: 6, C.Level.TOWN: 9, C.Level.VILLAGE: 12}
EXACT = {C.Level.DISTRICT: "district_code", C.Level.TOWN: "town_code", C.Level.VILLAGE: "village_code"}
FINER = {C.Level.DISTRICT: ("town_code", "village_code", "grid_code"),
         C.Level.TOWN: ("village_code", "grid_code"), C.Level.VILLAGE: ("grid_code",)}
DEPARTMENT_COLUMNS = ("department", "assignee")


def validate_assignment(role: str, area_code: str | None, department: str | None,
                        grid_codes: tuple[str, ...] | list[str]) -> None:
    """Check that a role carries what it is scoped by: the right area level, a department, grids."""
    if role not in PERMISSIONS:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if role == "city" and area_code:
        raise InvalidInput("a city role covers the whole city: give no area")
    if area_code:
        level = C.level_of(area_code)
        need = ROLE_LEVEL.get(role)
        C.validate_area_code(area_code, need or level)
    elif (level_needed := ROLE_LEVEL.get(role)) is not None:
        raise InvalidInput(f"a {role} role needs --area, a {level_needed.value} code (12 digits)")
    if role == "department" and not department:
        raise InvalidInput("a department role needs --department, e.g. 水务")
    if role == "grid_worker":
        if not grid_codes:
            raise InvalidInput("a grid_worker role needs --grids, the 15-digit codes it patrols")
        for code in grid_codes:
            C.validate_grid_code(code)
            if area_code and not code.startswith(area_code[:PREFIX[C.level_of(area_code)]]):
                raise InvalidInput(f"grid {code} is outside the worker's area {area_code}")


@dataclass(frozen=True)
class Scope:
    """The caller's role and jurisdiction; build it with :meth:`for_role`."""

    role: str
    user: str = "anonymous-demo"
    area_code: str | None = None
    department: str | None = None
    grid_codes: tuple[str, ...] = ()
    can_see_phones: bool = False
    may_edit_grids: bool = False
    may_export: bool = False
    permissions: frozenset[str] = field(default_factory=frozenset)
    demo_mode: bool = False  # auth off: the local demo, where the body may choose a workflow role

    @classmethod
    def for_role(cls, role: str, *, user: str, area_code: str | None = None, department: str | None = None,
                 grid_codes: tuple[str, ...] | list[str] = ()) -> Scope:
        perms = PERMISSIONS.get(role)
        if perms is None:
            raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        return cls(role=role, user=user, area_code=area_code or None, department=department or None,
                   grid_codes=tuple(grid_codes or ()), can_see_phones="see_phones" in perms,
                   may_edit_grids="edit_grids" in perms, may_export="export" in perms, permissions=perms)

    @classmethod
    def demo(cls) -> Scope:
        """Auth off (the local demo only): city-wide, every permission."""
        return replace(cls.for_role("city", user="anonymous-demo"), can_see_phones=True, may_edit_grids=True,
                       may_export=True, permissions=ALL_PERMISSIONS, demo_mode=True)

    # ------------------------------------------------------------------ permissions

    def allows(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def city_wide(self) -> bool:
        """True when no row is hidden from this caller."""
        return self.role != "grid_worker" and self.area_code is None and self.department is None

    def phone(self, value: str | None) -> str | None:
        """A phone number as this caller may see it."""
        return value if self.can_see_phones else mask_phone(value)

    # ------------------------------------------------------------------ SQL

    def clause(self, model: Any, **columns: Any) -> ColumnElement[bool]:
        """The WHERE clause for ``model``'s rows this caller may see. ``columns`` overrides or adds
        columns by name, e.g. ``grid_code=Grid.code`` for the registry's own table."""
        if self.city_wide:
            return true()
        cols = _columns(model, columns)
        parts: list[ColumnElement[bool]] = []
        if self.role == "grid_worker":
            parts.append(cols["grid_code"].in_(self.grid_codes) if "grid_code" in cols else false())
        if self.department:
            parts.append(_department_clause(self.department, cols))
        if self.area_code:
            parts.append(_area_clause(self.area_code, cols))
        return and_(*parts) if len(parts) > 1 else parts[0]

    def filter(self, stmt: Select, model: Any, *, via: tuple[Any, Any] | None = None, **columns: Any) -> Select:
        """``stmt`` narrowed to the rows this caller may see.

        ``via=(Model.key, Link.key)`` also admits rows linked through another table that has the codes,
        e.g. ``scope.filter(stmt, Worker, via=(Worker.id, Assignment.worker_id))``: a worker is seen by
        the town it belongs to and by the areas of the grids it is assigned to."""
        if self.city_wide:
            return stmt
        own = self.clause(model, **columns)
        if via is not None:
            key, link_key = via
            linked = select(link_key).where(self.clause(link_key.class_))
            own = or_(own, key.in_(linked))
        return stmt.where(own)

    # ------------------------------------------------------------------ Python (one loaded row)

    def sees(self, row: Any, **values: Any) -> bool:
        """Whether one loaded row (an ORM object, a dict or anything with the attributes) is visible;
        the same rules as :meth:`clause`. ``values`` overrides attributes, as ``columns`` does there."""
        if self.city_wide:
            return True
        get = _getter(row, values)
        checks: list[bool] = []
        if self.role == "grid_worker":
            checks.append(get("grid_code") in self.grid_codes)
        if self.department:
            checks.append(_department_sees(self.department, get))
        if self.area_code:
            checks.append(_area_sees(self.area_code, get))
        return all(checks)

    def mask(self, frame: pd.DataFrame, **columns: str) -> pd.Series:
        """Which rows of a (Geo)DataFrame are visible; the same rules again, vectorised. ``columns``
        renames, e.g. ``scope.mask(grids, grid_code="code")`` for the registry's frames."""
        if self.city_wide:
            return pd.Series(True, index=frame.index)
        cols = {name: frame[name] for name in frame.columns if isinstance(name, str)}
        cols.update({name: frame[source] for name, source in columns.items()})
        mask = pd.Series(True, index=frame.index)
        if self.role == "grid_worker":
            mask &= cols["grid_code"].isin(self.grid_codes) if "grid_code" in cols else False
        if self.department:
            mask &= _department_mask(self.department, cols, frame.index)
        if self.area_code:
            mask &= _area_mask(self.area_code, cols, frame.index)
        return mask

    def check(self, row: Any, what: str, **values: Any) -> Any:
        """Return ``row`` if visible, else raise NotFound exactly as for a missing object."""
        if row is None or not self.sees(row, **values):
            raise NotFound(f"no {what}")
        return row


_MISSING = object()


def _columns(model: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    names = {attr.key for attr in inspect(model).column_attrs}
    cols = {name: getattr(model, name) for name in names}
    cols.update(extra)
    return cols


def _area_clause(area: str, cols: Mapping[str, Any]) -> ColumnElement[bool]:
    level = C.level_of(area)
    if EXACT[level] in cols:
        return cols[EXACT[level]] == area
    prefix = area[: PREFIX[level]]
    for name in FINER[level]:
        if name in cols:
            return cols[name].startswith(prefix, autoescape=True)
    return false()


def _department_clause(department: str, cols: Mapping[str, Any]) -> ColumnElement[bool]:
    parts = [cols[name] == department for name in DEPARTMENT_COLUMNS if name in cols]
    if "co_units" in cols:
        parts.append(literal(department) == any_(cols["co_units"]))
    return or_(*parts) if parts else true()  # no department columns: the area decides


def _getter(row: Any, values: Mapping[str, Any]) -> Callable[[str], Any]:
    def get(name: str) -> Any:
        if name in values:
            return values[name]
        if isinstance(row, Mapping):
            return row.get(name, _MISSING)
        return getattr(row, name, _MISSING)
    return get


def _area_sees(area: str, get: Callable[[str], Any]) -> bool:
    level = C.level_of(area)
    value = get(EXACT[level])
    if value is not _MISSING:
        return value == area
    prefix = area[: PREFIX[level]]
    for name in FINER[level]:
        value = get(name)
        if value is not _MISSING:
            return isinstance(value, str) and value.startswith(prefix)
    return False


def _area_mask(area: str, cols: Mapping[str, pd.Series], index: pd.Index) -> pd.Series:
    level = C.level_of(area)
    if EXACT[level] in cols:
        return cols[EXACT[level]].eq(area).fillna(False).astype(bool)
    prefix = area[: PREFIX[level]]
    for name in FINER[level]:
        if name in cols:
            return cols[name].astype("string").str.startswith(prefix).fillna(False).astype(bool)
    return pd.Series(False, index=index)


def _department_mask(department: str, cols: Mapping[str, pd.Series], index: pd.Index) -> pd.Series:
    names = [n for n in DEPARTMENT_COLUMNS if n in cols]
    if not names and "co_units" not in cols:
        return pd.Series(True, index=index)
    mask = pd.Series(False, index=index)
    for name in names:
        mask |= cols[name].eq(department).fillna(False).astype(bool)
    if "co_units" in cols:
        mask |= cols["co_units"].map(lambda units: department in (units or ())).astype(bool)
    return mask


def _department_sees(department: str, get: Callable[[str], Any]) -> bool:
    found = [get(name) for name in (*DEPARTMENT_COLUMNS, "co_units")]
    if all(v is _MISSING for v in found):
        return True
    *plain, co_units = found
    return department in plain or (co_units is not _MISSING and department in (co_units or ()))
