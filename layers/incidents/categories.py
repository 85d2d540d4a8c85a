"""Event categories (事件分类) and the departments (职能部门) that take them, as data.

Categories follow the two-level classification of GB/T 30428.2 (数字化城市管理信息系统 第2部分：
管理部件和事件): a 2-digit 大类 (01 市容环境, 02 宣传广告, 03 施工管理, 04 突发事件, 05 街面秩序,
06 其他) and a 4-digit 小类. The social-governance kinds the seeds name are further 大类 (07 矛盾纠纷,
08 安全隐患, 09 公共服务, 10 信访诉求, 11 环境污染 for sensor alarms, 12 视频告警 for camera alarms).
The ``source`` column tells a standard code from a OneMap extension.

Deadlines are data, not branches (as in Signalen): each category has a clock (``limit_type``) and a
completion limit per severity (一般/重要/重要紧急), taken from the seeds (Zhucheng: general matters 1-3
working days, complex ones 5; utilities on site within 1 hour). ``layers.incidents.sla`` turns them into
datetimes. Planners change the CSV (later a table); the loader validates it so a bad edit fails loudly.

Routing: ``department`` is the functional department answerable for the category; ``needs_town`` says
whether the town (属地, where the event is) handles it with that department behind it, or whether it goes
straight to the department (utilities, fire, police...).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from rapidfuzz import fuzz, process

from gis.errors import InvalidInput

DATA_DIR = Path(__file__).resolve().parent / "data"


class Severity(StrEnum):
    GENERAL = "general"  # 一般
    IMPORTANT = "important"  # 重要
    URGENT = "urgent"  # 重要紧急


class LimitType(StrEnum):
    URGENT_HOURS = "urgent_hours"  # calendar hours, 24/7
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


class Complexity(StrEnum):
    SIMPLE = "simple"  # 简易事项: on site within 2 hours
    GENERAL = "general"  # 一般事项: 1-3 working days
    COMPLEX = "complex"  # 复杂事项: up to 5 working days


class DepartmentKind(StrEnum):
    UTILITY = "utility"  # 公用事业企业 (water, power, gas, heating, buses, telecom...)
    DEPARTMENT = "department"  # 市直部门


@dataclass(frozen=True)
class Department:
    """A city department or utility (职能部门/公用企业) that takes calls ("部门报到")."""

    code: str
    name: str
    kind: DepartmentKind


@dataclass(frozen=True)
class Category:
    """One 小类 of events (事件小类) with its routing, conditions and completion limits."""

    code: str
    major_code: str
    major_name: str
    name: str
    department: str
    needs_town: bool
    acceptance_condition: str  # 立案条件
    closure_condition: str  # 结案条件
    limit_type: LimitType
    limit_general: float
    limit_important: float
    limit_urgent: float
    complexity: Complexity
    source: str

    def limit(self, severity: Severity | str) -> float:
        """The completion limit for a severity, in units of ``limit_type``."""
        return float(getattr(self, f"limit_{parse_severity(severity).value}"))


def parse_severity(value: Severity | str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise InvalidInput(f"unknown severity {value!r}; use one of {allowed}") from None


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def _bool(text: str, where: str) -> bool:
    lowered = text.lower()
    if lowered in {"true", "1", "yes"}:
        return True
    if lowered in {"false", "0", "no"}:
        return False
    raise InvalidInput(f"{where}: expected true/false, got {text!r}")


def _enum(kind: type[StrEnum], text: str, where: str) -> StrEnum:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidInput(f"{where}: {text!r} is not one of {allowed}") from None


@lru_cache
def load_departments(path: Path | None = None) -> Mapping[str, Department]:
    """Departments by code, read once from ``data/departments.csv`` (or ``path``)."""
    path = path or DATA_DIR / "departments.csv"
    out: dict[str, Department] = {}
    for i, row in enumerate(_read_rows(path), start=2):
        where = f"{path.name} line {i}"
        code = row["code"]
        if not code.isascii() or not code.isidentifier():
            raise InvalidInput(f"{where}: department code {code!r} must be short ascii")
        if code in out:
            raise InvalidInput(f"{where}: duplicate department code {code!r}")
        kind = _enum(DepartmentKind, row["kind"], where)
        out[code] = Department(code=code, name=row["name"], kind=DepartmentKind(kind))
    return MappingProxyType(out)


def _category(row: dict[str, str], where: str, departments: Mapping[str, Department]) -> Category:
    code = row["code"]
    if len(code) != 4 or not code.isdigit() or row["major_code"] != code[:2]:
        raise InvalidInput(f"{where}: code {code!r} must be 4 digits starting with its major_code")
    if row["department"] not in departments:
        raise InvalidInput(f"{where}: unknown department {row['department']!r} for {code}")
    limits = [float(row[f"limit_{s.value}"]) for s in Severity]
    if not all(x > 0 for x in limits) or limits != sorted(limits, reverse=True):
        raise InvalidInput(f"{where}: limits {limits} must be positive and not grow with severity")
    return Category(
        code=code,
        major_code=row["major_code"],
        major_name=row["major_name"],
        name=row["name"],
        department=row["department"],
        needs_town=_bool(row["needs_town"], where),
        acceptance_condition=row["acceptance_condition"],
        closure_condition=row["closure_condition"],
        limit_type=LimitType(_enum(LimitType, row["limit_type"], where)),
        limit_general=limits[0],
        limit_important=limits[1],
        limit_urgent=limits[2],
        complexity=Complexity(_enum(Complexity, row["complexity"], where)),
        source=row.get("source", ""),
    )


@lru_cache
def load_categories(path: Path | None = None) -> Mapping[str, Category]:
    """Categories by 4-digit code, read once from ``data/categories.csv`` (or ``path``), validated."""
    path = path or DATA_DIR / "categories.csv"
    departments = load_departments()
    out: dict[str, Category] = {}
    for i, row in enumerate(_read_rows(path), start=2):
        category = _category(row, f"{path.name} line {i}", departments)
        if category.code in out:
            raise InvalidInput(f"{path.name} line {i}: duplicate category code {category.code}")
        out[category.code] = category
    return MappingProxyType(out)


def close_matches(text: str, limit: int = 3) -> list[str]:
    """The categories nearest to ``text`` (a mistyped code or a name), as "code name" strings."""
    categories = load_categories()
    text = str(text).strip()
    if text.isdigit():  # a mistyped code: most similar digits first, then the nearest number
        ranked = sorted(categories, key=lambda c: (-fuzz.ratio(text, c), abs(int(c) - int(text))))
        return [f"{c} {categories[c].name}" for c in ranked[:limit]]
    choices = {code: f"{code} {c.name}" for code, c in categories.items()}
    found = process.extract(text, choices, scorer=fuzz.WRatio, limit=limit)
    return [label for label, _score, _code in found]


def get_category(code: str) -> Category:
    """The category with this 4-digit code; an unknown code names the closest ones."""
    category = load_categories().get(str(code).strip())
    if category is None:
        near = close_matches(code)
        raise InvalidInput(
            f"unknown event category {code!r}; close matches: {'; '.join(near)}",
            detail={"code": code, "close_matches": near},
        )
    return category


def get_department(code: str) -> Department:
    department = load_departments().get(code)
    if department is None:
        known = ", ".join(load_departments())
        raise InvalidInput(f"unknown department {code!r}; known: {known}")
    return department


@dataclass(frozen=True)
class Route:
    """Where a category goes: the department answerable, and whether the town handles it first."""

    category: str
    department: str
    needs_town: bool


class Routing:
    """The category → department table planners edit (分流规则); defaults come from the CSV.

    Overrides are validated when the table is built, so a routing table that points at an unknown
    category or department can never be saved.
    """

    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = dict(routes)

    def route(self, category: str) -> Route:
        return self._routes.get(category) or self._routes[get_category(category).code]

    def rows(self) -> list[Route]:
        """Every route in code order, e.g. to seed the routing table."""
        return [self._routes[code] for code in sorted(self._routes)]


def routing(overrides: Mapping[str, Mapping[str, object]] | None = None) -> Routing:
    """The routing table: CSV defaults with ``overrides`` applied.

    ``overrides`` maps a category code to the fields to change, e.g.
    ``{"0102": {"department": "urban", "needs_town": False}}``.
    """
    routes = {
        code: Route(code, c.department, c.needs_town) for code, c in load_categories().items()
    }
    for code, fields in (overrides or {}).items():
        unknown = set(fields) - {"department", "needs_town"}
        if unknown:
            raise InvalidInput(f"routing override for {code}: unknown fields {sorted(unknown)}")
        base = routes[get_category(code).code]
        department = str(fields.get("department", base.department))
        get_department(department)
        needs_town = fields.get("needs_town", base.needs_town)
        if not isinstance(needs_town, bool):
            raise InvalidInput(f"routing override for {code}: needs_town must be true or false")
        routes[code] = replace(base, department=department, needs_town=needs_town)
    return Routing(routes)
