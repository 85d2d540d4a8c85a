"""What the command map draws for tickets: grids coloured by open work and cards, and ticket points.

Why per grid in SQL: the big screen colours 1,347 grids every few seconds; one GROUP BY over the open
tickets (indexed by state) is cheaper than shipping every ticket to the browser. Both queries pass
through the caller's :class:`Scope` so a town's map counts only its own tickets (a department's only
the tickets routed to it).
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from layers.accounts.scope import Scope
from layers.incidents.categories import load_categories
from layers.incidents.models import Ticket
from layers.incidents.workflow import TERMINAL

_CLOSED = [s.value for s in TERMINAL]

GRID_COLUMNS = ["grid_code", "open_count", "yellow", "red", "worst_card"]


def _open(stmt: Select, town: str | None, scope: Scope | None) -> Select:
    stmt = stmt.where(Ticket.state.not_in(_CLOSED), Ticket.duplicate_of.is_(None))
    if town:
        stmt = stmt.where(Ticket.town_code == town)
    return stmt if scope is None else scope.filter(stmt, Ticket)


def grid_counts(session: Session, *, town: str | None = None, scope: Scope | None = None) -> pd.DataFrame:
    """Per grid: open tickets, yellow and red cards, and the worst card (ok < yellow < red)."""
    yellow = func.count().filter(Ticket.card == "yellow")
    red = func.count().filter(Ticket.card == "red")
    worst = case((func.bool_or(Ticket.card == "red"), "red"), (func.bool_or(Ticket.card == "yellow"), "yellow"),
                 else_="ok")
    stmt = select(Ticket.grid_code, func.count(), yellow, red, worst).where(Ticket.grid_code.is_not(None))
    stmt = _open(stmt, town, scope).group_by(Ticket.grid_code).order_by(Ticket.grid_code)
    frame = pd.DataFrame(session.execute(stmt).all(), columns=GRID_COLUMNS)
    for col in ("open_count", "yellow", "red"):
        frame[col] = frame[col].astype(int)
    return frame


def open_points(
    session: Session, *, town: str | None = None, limit: int = 5000, scope: Scope | None = None
) -> gpd.GeoDataFrame:
    """Open, placed tickets as points (id, category, state, card, grid) for the map's ticket layer."""
    cols = ["id", "category", "severity", "state", "card", "grid_code", "town_code"]
    stmt = select(*(getattr(Ticket, c) for c in cols), func.ST_AsBinary(Ticket.geom)).where(Ticket.geom.is_not(None))
    stmt = _open(stmt, town, scope).order_by(Ticket.created_at.desc()).limit(limit)
    rows = session.execute(stmt).all()
    frame = pd.DataFrame([r[:-1] for r in rows], columns=cols)
    names = {c: cat.name for c, cat in load_categories().items()}
    frame["category_name"] = frame.category.map(names)
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=4326))
