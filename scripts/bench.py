"""Benchmarks: each prints its figures beside a named baseline measured in the same run."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

from gis.settings import database_settings
from scripts.migrate import upgrade


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def scratch_database(name: str = "onemap_bench", *, owner: bool = False):
    """A fresh database beside the configured one, migrated as the owner, dropped afterwards. Yields
    the application role's URL (what the server would connect as), or the owner's with ``owner``."""
    settings = database_settings()
    admin = make_url(settings.owner_url())
    dsn = f"host={admin.host} port={admin.port} user={admin.username} dbname=postgres"
    if admin.password:
        dsn += f" password={admin.password}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    scratch = make_url(settings.url()).set(database=name).render_as_string(hide_password=False)
    scratch_owner = admin.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(scratch_owner, app_role=settings.app_role())
        yield scratch_owner if owner else scratch
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def analyze(url: str, *tables: str, vacuum: bool = False) -> None:
    """(VACUUM) ANALYZE as the owner of ``url``'s database: the app role owns no table, and PostgreSQL
    skips (with a warning) tables the caller does not own."""
    from scripts.migrate import libpq

    owner = make_url(database_settings().owner_url()).set(database=make_url(url).database)
    with psycopg.connect(libpq(owner.render_as_string(hide_password=False)), autocommit=True) as conn:
        verb = "VACUUM ANALYZE" if vacuum else "ANALYZE"
        for table in tables or [""]:
            conn.execute(f"{verb} {table}".strip())


def bench_import(console: Console) -> dict:
    """Import + validate the demo city vs. the baseline geopandas.to_postgis of the same rows."""
    from gis.registry import import_areas, import_grids, validate_registry
    from scripts.demo_load import read_demo

    t = time.perf_counter()
    areas, grids = read_demo()
    read_s = time.perf_counter() - t
    with scratch_database(owner=True) as url:  # the baseline creates its own table
        engine = create_engine(url)
        t = time.perf_counter()
        grids.rename_geometry("geom").to_postgis("baseline_grids", engine)
        baseline_s = time.perf_counter() - t
        with Session(engine) as session:
            t = time.perf_counter()
            import_areas(session, areas, who="bench", why="bench")
            import_grids(session, grids, who="bench", why="bench")
            session.commit()
            import_s = time.perf_counter() - t
            t = time.perf_counter()
            report = validate_registry(session)
            validate_s = time.perf_counter() - t
            n = session.scalar(text("SELECT count(*) FROM grids WHERE valid_to IS NULL"))
        engine.dispose()
    figures = {"grids": n, "read_s": read_s, "baseline_to_postgis_s": baseline_s, "import_s": import_s,
               "validate_s": validate_s, "clean": report.ok, "peak_rss_mb": peak_rss_mb()}
    table = Table(title=f"onemap bench import — demo city, {n} grids")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_row("read GeoJSON (areas + grids)", f"{read_s:.2f}", "")
    table.add_row("baseline: geopandas.to_postgis, no checks", f"{baseline_s:.2f}", "1.0x")
    table.add_row("onemap import (codes, topology, versioned insert)", f"{import_s:.2f}",
                  f"{import_s / baseline_s:.1f}x")
    table.add_row("onemap grids validate (whole city)", f"{validate_s:.2f}", f"{validate_s / baseline_s:.1f}x")
    console.print(table)
    console.print(f"validation clean: {report.ok}; peak RSS {figures['peak_rss_mb']:.0f} MB")
    return figures
