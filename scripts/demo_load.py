"""Load the committed demo city (data/grid_boundaries/) into the registry, once."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from sqlalchemy import func, select

from gis.db import session_scope
from gis.models import Grid
from gis.registry import import_areas, import_grids, validate_registry

DATA = Path(__file__).resolve().parent.parent / "data" / "grid_boundaries"


def read_demo() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    areas = gpd.read_file(DATA / "areas.geojson", engine="pyogrio")
    grids = gpd.read_file(DATA / "grids.geojson", engine="pyogrio")
    for frame in (areas, grids):
        for col in ("code", "village_code", "parent_code"):
            if col in frame:
                frame[col] = frame[col].astype("string").astype(object).where(frame[col].notna(), None)
    return areas, grids


def load_into(session, *, who: str = "demo", validate: bool = True) -> str:
    """Import the demo areas and grids in the caller's transaction; skip when grids exist."""
    count = session.scalar(select(func.count()).select_from(Grid).where(Grid.valid_to.is_(None)))
    if count:
        return f"demo city already loaded: {count} current grids"
    areas, grids = read_demo()
    import_areas(session, areas, who=who, why="demo city (Shouguang-like)")
    done = import_grids(session, grids, who=who, why="demo city (Shouguang-like)")
    message = f"loaded {len(areas)} areas and {len(done.opened)} grids"
    addresses = DATA / "addresses.csv"
    if addresses.exists():
        from gis.geocode import import_addresses

        message += f"; {import_addresses(session, addresses, replace=True)} standard addresses"
    if validate:
        report = validate_registry(session)
        message += f"; validation: {'clean' if report.ok else report.to_text()}"
    return message


def load_demo() -> str:
    with session_scope() as session:
        return load_into(session)
