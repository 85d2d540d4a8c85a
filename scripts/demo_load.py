"""Load the committed demo city (data/grid_boundaries/) into the registry, once, with a week of
tickets, sensors with a few hours of readings, today's worker patrols, street cameras playing
synthetic video (scripts/demo_cameras.py) and the base data of people and places
(scripts/demo_basedata.py), so every layer has data."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
from sqlalchemy import func, select

from gis.db import session_scope
from gis.models import Grid
from gis.registry import current, import_areas, import_grids, validate_registry
from gis.settings import CITY_TZ

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
    """Import the demo areas, grids and standard addresses in the caller's transaction; skip when
    grids exist."""
    count = session.scalar(select(func.count()).select_from(Grid).where(current(Grid)))
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


def load_activity(session, *, now: datetime | None = None) -> list[str]:
    """A week of tickets, sensors with readings, today's patrols and twelve street cameras with
    their videos (each only when absent)."""
    from layers.incidents.models import Ticket
    from layers.incidents.simulate import simulate as simulate_tickets
    from layers.sensors.simulate import simulate as simulate_sensors
    from layers.workers.models import Worker
    from layers.workers.simulate import simulate_day

    now = now or datetime.now(UTC)
    lines = []
    if not session.scalar(select(func.count()).select_from(Ticket)):
        t = time.perf_counter()
        summary = simulate_tickets(session, days=7, end=now)
        lines.append(f"tickets: a simulated week: {summary.text()} ({time.perf_counter() - t:.0f} s)")
    from layers.sensors.models import Sensor

    if not session.scalar(select(func.count()).select_from(Sensor)):
        got = simulate_sensors(session, hours=6, end=now)
        lines.append(f"sensors: {got['sensors']} registered, {got['readings']:,} readings over 6 hours, "
                     f"{got['alarms']} alarms from {len(got.get('episodes') or [])} pollution episodes")
    if not session.scalar(select(func.count()).select_from(Worker)):
        result = simulate_day(session, now.astimezone(CITY_TZ).date(), now=now)
        lines.append(f"workers: {result.workers} on patrol today, {result.fixes:,} GPS fixes ({result.inserted:,} stored, "
                     f"{result.flagged} flagged, {result.rejected} refused), {result.tickets} tickets reported")
    from scripts.demo_cameras import load_cameras

    cameras = load_cameras(session)  # only when no camera exists
    if cameras:
        lines.append(cameras)
    return lines


def load_demo() -> str:
    from gis.settings import database_settings
    from scripts.demo_basedata import load_basedata

    with session_scope() as session:
        message = load_into(session)
    with session_scope() as session:
        for line in load_activity(session):
            message += "\n" + line
    # After the cameras and sensors (key sites list theirs). A set-up step like the migrations: run as
    # the schema's owner, who may drop and rebuild the new tables' indexes around the bulk COPY.
    with session_scope(database_settings().owner_url()) as session:
        message += "\n" + load_basedata(session)
    return message
