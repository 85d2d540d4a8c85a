"""Where a category of ticket goes (派单路由): the CSV defaults with the planners' overrides.

The defaults are :mod:`layers.incidents.categories` (pure, no database); a planner's change is a
``routing_overrides`` row, validated before it is saved and read by every intake.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from layers.incidents.categories import Route, Routing, get_category, get_department, routing
from layers.incidents.models import RoutingOverride
from layers.incidents.store import now_utc

OVERRIDE_SQL = text("SELECT department, needs_town FROM routing_overrides WHERE category = :cat")


def routing_table(session: Session) -> Routing:
    """CSV defaults with the planners' overrides from ``routing_overrides`` applied."""
    rows = session.scalars(select(RoutingOverride)).all()
    return routing(
        {r.category: {"department": r.department, "needs_town": r.needs_town} for r in rows}
    )


def set_route(
    session: Session, category: str, *, department: str, needs_town: bool, who: str, why: str = ""
) -> RoutingOverride:
    """A planner changes where a category goes; validated before it is saved."""
    code = get_category(category).code
    routing({code: {"department": department, "needs_town": needs_town}})  # validates
    row = session.get(RoutingOverride, code) or RoutingOverride(category=code)
    row.department, row.needs_town, row.who, row.why, row.at = (
        department,
        needs_town,
        who,
        why,
        now_utc(),
    )
    session.add(row)
    session.flush()
    return row


def route_of(category: str, override: Any) -> Route:
    """The CSV default, or the planners' override row ``(department, needs_town)`` (its department
    checked, as when it was saved)."""
    if override is None or override[0] is None:
        cat = get_category(category)
        return Route(cat.code, cat.department, cat.needs_town)
    get_department(override[0])
    return Route(category, override[0], bool(override[1]))
