"""What the command map draws for tickets: grids coloured by open work and cards, and ticket points.

Why per grid in SQL: the big screen colours 1,347 grids every few seconds; one GROUP BY over the open
tickets (indexed by state) is cheaper than shipping every ticket to the browser.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from layers.incidents.categories import load_categories

_OPEN = "('closed', 'signed_off')"

_GRID_COUNTS = f"""
SELECT grid_code, count(*) AS open_count,
       count(*) FILTER (WHERE card = 'yellow') AS yellow,
       count(*) FILTER (WHERE card = 'red') AS red,
       CASE WHEN bool_or(card = 'red') THEN 'red'
            WHEN bool_or(card = 'yellow') THEN 'yellow' ELSE 'ok' END AS worst_card
FROM tickets
WHERE state NOT IN {_OPEN} AND duplicate_of IS NULL AND grid_code IS NOT NULL {{town}}
GROUP BY grid_code ORDER BY grid_code
"""

GRID_COLUMNS = ["grid_code", "open_count", "yellow", "red", "worst_card"]


def grid_counts(session: Session, *, town: str | None = None) -> pd.DataFrame:
    """Per grid: open tickets, yellow and red cards, and the worst card (ok < yellow < red)."""
    sql = _GRID_COUNTS.format(town="AND town_code = :town" if town else "")
    rows = session.execute(text(sql), {"town": town}).all()
    frame = pd.DataFrame(rows, columns=GRID_COLUMNS)
    for col in ("open_count", "yellow", "red"):
        frame[col] = frame[col].astype(int)
    return frame


def open_points(
    session: Session, *, town: str | None = None, limit: int = 5000
) -> gpd.GeoDataFrame:
    """Open, placed tickets as points (id, category, state, card, grid) for the map's ticket layer."""
    sql = f"""
        SELECT id, category, severity, state, card, grid_code, town_code, ST_AsBinary(geom)
        FROM tickets
        WHERE state NOT IN {_OPEN} AND duplicate_of IS NULL AND geom IS NOT NULL
              {"AND town_code = :town" if town else ""}
        ORDER BY created_at DESC LIMIT :limit"""
    rows = session.execute(text(sql), {"town": town, "limit": limit}).all()
    cols = ["id", "category", "severity", "state", "card", "grid_code", "town_code"]
    frame = pd.DataFrame([r[:-1] for r in rows], columns=cols)
    names = {c: cat.name for c, cat in load_categories().items()}
    frame["category_name"] = frame.category.map(names)
    geoms = shapely.from_wkb([bytes(r[-1]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=4326))
