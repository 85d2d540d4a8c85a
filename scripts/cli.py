"""The `onemap` command line: thin wrappers over the same services the API calls.

Errors are one readable line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

try:  # the settings read at import (the city's time zone): a bad one is a message, not a traceback
    from gis.settings import database_settings
except ValueError as exc:
    sys.exit(f"Error: {exc}")
from gis.errors import OneMapError, TopologyError

app = typer.Typer(help="OneMap: one map governs the city (一张图治理一座城).", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="The project's own PostGIS.", no_args_is_help=True)
grids_app = typer.Typer(help="The grid registry: import, validate, edit.", no_args_is_help=True)
areas_app = typer.Typer(help="Districts, towns/streets, villages/communities.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures against a named baseline.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(grids_app, name="grids")
app.add_typer(areas_app, name="areas")
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def guarded(fn):
    """Turn domain errors into one line and exit 1 (exit 2 for a failed topology check)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TopologyError as exc:
            if exc.detail is not None:
                console.print(exc.detail.to_text(), highlight=False)
            fail(exc.message, 2)
        except OneMapError as exc:
            fail(exc.message)
        except RuntimeError as exc:  # e.g. no database configured, cluster errors
            fail(str(exc))
    return wrapper


def who_default() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli"


# ----------------------------------------------------------------------------- db

@db_app.command("up")
@guarded
def db_up(migrate: bool = typer.Option(True, help="Apply Alembic migrations after start.")) -> None:
    """Create (once) and start the project-local PostGIS; idempotent."""
    from gis import pg

    settings = database_settings()
    if settings.database_url:
        out.print("ONEMAP_DATABASE_URL is set; using it instead of a local cluster")
        if migrate:
            _migrate(settings.owner_url(), settings.app_role(), single_role=settings.single_role)
        return
    state = pg.up(settings.data_dir, bin_dir=settings.pg_bin)
    out.print(f"PostGIS running on 127.0.0.1:{state.port} (data in {settings.data_dir})")
    if migrate:
        _migrate(state.owner_url, state.app_user)


def _migrate(owner_url: str, app_role: str | None, *, single_role: bool = False) -> None:
    """Migrate as the owner, grant the app role; say plainly when the app could rewrite the audit log."""
    from gis.settings import SINGLE_ROLE_WARNING
    from scripts.migrate import RoleError, describe, upgrade

    try:
        done = upgrade(owner_url, app_role=app_role)
    except RoleError as exc:
        fail(str(exc))
    warnings = done.warnings
    out.print(describe(done.applied) + (f"; the application connects as {app_role}" if app_role else ""),
              soft_wrap=True)
    if single_role:
        risks = _rewrite_risks(owner_url)
        warnings = [SINGLE_ROLE_WARNING, *risks, *warnings] if risks else warnings
    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


@db_app.command("down")
@guarded
def db_down() -> None:
    """Stop the project-local PostGIS."""
    from gis import pg

    settings = database_settings()
    stopped = pg.down(settings.data_dir, bin_dir=settings.pg_bin)
    out.print("stopped" if stopped else "was not running")


@db_app.command("status")
@guarded
def db_status() -> None:
    """Say whether the local PostGIS is initialised and running, and where."""
    from gis import pg

    settings = database_settings()
    if settings.database_url:
        out.print("using ONEMAP_DATABASE_URL" + ("" if settings.single_role else " (migrations: ONEMAP_OWNER_DATABASE_URL)"))
        return
    out.print_json(json.dumps(pg.status(settings.data_dir, bin_dir=settings.pg_bin)))


@db_app.command("migrate")
@guarded
def db_migrate() -> None:
    """Apply Alembic migrations as the schema's owner (ONEMAP_OWNER_DATABASE_URL, or the local cluster's
    owner) and grant the application's role (ONEMAP_DATABASE_URL's user) its table privileges."""
    settings = database_settings()
    _migrate(settings.owner_url(), settings.app_role(), single_role=settings.single_role)


# ----------------------------------------------------------------------------- grids and areas

FieldOpt = Annotated[list[str] | None, typer.Option("--field", help="TARGET=SOURCE column mapping, e.g. code=网格编码")]


def parse_fields(fields: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in fields or []:
        if "=" not in item:
            fail(f"--field {item!r} must look like target=source")
        target, source = item.split("=", 1)
        mapping[target.strip()] = source.strip()
    return mapping


def _read(path: Path, crs: str | None, fields: list[str] | None, encoding: str | None, layer: str | None,
          detect: str | None = None):
    from gis.readers import read_features

    result = read_features(path, crs=crs, fields=parse_fields(fields), encoding=encoding, layer=layer,
                           detect=detect)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.columns is not None:
        out.print(f"columns of {path.name} ({', '.join(result.columns.columns)}):", highlight=False)
        for line in result.columns.lines():
            out.print(f"  {line}", highlight=False)
    return result


def _write_problems(target: Path | None, report, read) -> None:
    from gis.grid_import import problems_geojson

    if target is None:
        return
    collection = problems_geojson(report, read.fixes, read.source_crs, read.name)
    target.write_text(json.dumps(collection, ensure_ascii=False), encoding="utf-8")
    out.print(f"wrote {len(collection['features'])} problems to {target}", highlight=False)


@grids_app.command("import")
@guarded
def grids_import(
    path: Path,
    crs: str | None = typer.Option(None, help="Source CRS when the file has none (EPSG code, gcj02, bd09)."),
    field: FieldOpt = None,
    encoding: str | None = typer.Option(None, help="DBF encoding when .cpg is missing and detection fails."),
    layer: str | None = typer.Option(None, help="Layer name in a GeoPackage or multi-layer zip."),
    replace: bool = typer.Option(False, help="Redraw the file's villages: close their current grids."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
    assign_codes: bool = typer.Option(
        False, "--assign-codes",
        help="Issue new grid codes in reading order, ignoring any code column (codes are never reissued)."),
    derive_areas: bool | None = typer.Option(
        None, "--derive-areas/--no-derive-areas",
        help="Build villages, towns and the district from the 15-digit codes and the 镇街/村社区 columns "
             "(default: when none of them is registered)."),
    district_name: str | None = typer.Option(None, help="Name of the derived district (else its column)."),
    problems: Path | None = typer.Option(None, help="Write problems and cleaned artefacts as GeoJSON here."),
    who: str = typer.Option(None, help="Who makes this edit (default: login name)."),
    why: str = typer.Option("import", help="Why (recorded with the edit)."),
) -> None:
    """Import grids from a shapefile (.shp/.zip), GeoPackage or GeoJSON in one transaction.

    Columns are recognised by name and content (网格编码/网格代码/GRIDCODE/BM, 网格名称/MC, 户数,
    镇街, 村社区 ...); the mapping is printed and --field TARGET=COLUMN overrides it."""
    from gis.db import session_scope
    from gis.grid_import import import_grid_file
    from layers import follow

    follow.install()  # what hangs off the redrawn grids follows them in the same transaction
    result = _read(path, crs, field, encoding, layer, detect="grids")
    try:
        with session_scope() as session:
            done = import_grid_file(session, result, who=who or who_default(), why=why, replace=replace,
                                    dry_run=dry_run, assign_codes=assign_codes, derive=derive_areas,
                                    district_name=district_name)
            if dry_run:
                session.rollback()
    except TopologyError as exc:
        _write_problems(problems, exc.detail, result)
        raise
    for note in done.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    verb = "would import" if dry_run else "imported"
    if done.derived is not None:
        counts = done.derived.counts
        out.print(f"{verb} areas derived from the grid codes: {counts['district']} district, {counts['town']} "
                  f"towns/streets, {counts['village']} villages/communities", highlight=False)
    warnings = len(done.edit.report.warnings) if done.edit.report else 0
    out.print(f"{verb} {len(done.edit.opened)} grids, closed {len(done.edit.closed)} (source CRS "
              f"{result.source_crs}, encoding {result.detected_encoding or 'n/a'}); validation clean"
              + (f" ({warnings} warnings)" if warnings else ""), highlight=False)
    for problem in (done.edit.report.warnings if done.edit.report else [])[:10]:
        console.print(f"warning: {problem.kind}: {problem.message}{problem.where()}", highlight=False, markup=False)
    _write_problems(problems, done.edit.report, result)
    for line in follow.describe(done.edit.followed):
        out.print(f"  {line}", highlight=False)


@areas_app.command("import")
@guarded
def areas_import(
    path: Path,
    crs: str | None = typer.Option(None), field: FieldOpt = None, encoding: str | None = typer.Option(None),
    layer: str | None = typer.Option(None), replace: bool = typer.Option(False),
    dry_run: bool = typer.Option(False, "--dry-run"), who: str = typer.Option(None),
    why: str = typer.Option("import"),
) -> None:
    """Import districts, towns/streets and villages/communities (12-digit codes)."""
    from gis.db import session_scope
    from gis.registry import import_areas

    result = _read(path, crs, field, encoding, layer, detect="areas")
    with session_scope() as session:
        done = import_areas(session, result.frame, who=who or who_default(), why=why, replace=replace,
                            dry_run=dry_run)
        if dry_run:
            session.rollback()
    out.print(f"{'would import' if dry_run else 'imported'} {len(done.opened)} areas; validation clean")


@grids_app.command("validate")
@guarded
def grids_validate(
    town: str | None = typer.Option(None, help="Only this town's grids (12-digit code)."),
    geojson: Path | None = typer.Option(None, help="Also write the problems as GeoJSON here."),
) -> None:
    """Check the current grids: validity, overlaps, gaps, parents, slivers, codes. Exit 2 on problems."""
    from gis.db import session_scope
    from gis.registry import validate_registry

    with session_scope() as session:
        report = validate_registry(session, town=town)
    out.print(report.to_text(), highlight=False)
    if geojson:
        geojson.write_text(json.dumps(report.to_geojson(), ensure_ascii=False), encoding="utf-8")
    if not report.ok:
        raise typer.Exit(2)


# ----------------------------------------------------------------------------- demo and serve

demo_app = typer.Typer(help="The demo city: load, serve, and keep it live.", invoke_without_command=True)
app.add_typer(demo_app, name="demo")


@demo_app.callback()
@guarded
def demo(ctx: typer.Context, serve_after: bool = typer.Option(True, "--serve/--no-serve"),
         port: int = typer.Option(8000), host: str = typer.Option("127.0.0.1"),
         workers: int = typer.Option(1, min=1, max=64, envvar="ONEMAP_WORKERS", help="server processes"),
         live: bool = typer.Option(True, "--live/--no-live", envvar="ONEMAP_DEMO_LIVE",
                                   help="keep the demo live while serving: workers walk, sensors report, "
                                        "alarms and tickets arrive (`onemap demo live` runs it alone)")) -> None:
    """Start PostGIS, load the demo city (once) and serve the map at http://HOST:PORT, live."""
    if ctx.invoked_subcommand:
        return
    import os

    from scripts.demo_load import load_demo

    os.environ["ONEMAP_AUTH"] = "off"  # the local demo only: pages show a demo-mode banner
    db_up.__wrapped__(migrate=True)
    summary = load_demo()
    out.print(summary)
    if serve_after:
        from contextlib import nullcontext

        from scripts.cli_vision import demo_analysis
        from scripts.demo_live import background

        with demo_analysis(console) as vision:  # YOLO on the demo cameras while the map is served
            # the live stream raises camera alarms itself only when YOLO is not watching the cameras
            with background(console, cameras=vision is None) if live else nullcontext():
                serve.__wrapped__(host=host, port=port, workers=workers)


@demo_app.command("live")
@guarded
def demo_live(seconds: float | None = typer.Option(None, help="stop after this many seconds (default: run until Ctrl-C)"),
              cameras: bool = typer.Option(True, "--cameras/--no-cameras",
                                           help="simulated camera alarms (off when YOLO analyses the cameras)"),
              stop_with_parent: bool = typer.Option(False, hidden=True)) -> None:
    """The live demo stream alone: workers on patrol (GPS ingest), sensor readings and pollution
    episodes (sensor ingest), camera alarms, tickets reported and moving through the workflow."""
    from scripts.demo_live import run_live

    counts = run_live(seconds=seconds, cameras=cameras, stop_with_parent=stop_with_parent,
                      echo=lambda line: out.print(line, highlight=False))
    out.print("live demo: " + counts.text(), highlight=False)


@app.command("serve")
@guarded
def serve(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000),
          workers: int = typer.Option(1, min=1, max=64, envvar="ONEMAP_WORKERS",
                                      help="server processes (one per core; live updates reach all of them "
                                           "through PostgreSQL LISTEN/NOTIFY)")) -> None:
    """Serve the API and the map."""
    import uvicorn

    out.print(f"OneMap at http://{host}:{port}" + (f" ({workers} processes)" if workers > 1 else ""))
    _warn_if_audit_rewritable()
    # X-Forwarded-For is read by the app itself, only from ONEMAP_TRUSTED_PROXIES (api/client_ip.py)
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info", workers=workers,
                proxy_headers=False)


def _rewrite_risks(url: str | None = None) -> list[str]:
    """Why the role ``url`` (default: the app's) connects as could rewrite the audit log; [] if it cannot."""
    from gis.db import session_scope
    from layers.accounts.audit import rewrite_risks

    try:
        with session_scope(url) as session:
            return rewrite_risks(session)
    except Exception:  # noqa: BLE001 - the database may be away at start; the server says so per request
        return []


def _warn_if_audit_rewritable() -> None:
    """One line per reason the role the server connects as could rewrite the audit log (superuser, owner)."""
    for risk in _rewrite_risks():
        console.print(f"[bold yellow]warning:[/] {risk}", highlight=False)


# ----------------------------------------------------------------------------- benchmarks

@bench_app.command("import")
@guarded
def bench_import() -> None:
    """Time importing and validating the demo city into a fresh schema, against reading alone."""
    from scripts.bench import bench_import as run

    run(out)


# Sub-commands that live beside their layer: each module exposes `register(app)`.
COMMAND_MODULES = [
    "scripts.cli_resolve",
    "scripts.cli_geocode",
    "scripts.cli_tickets",
    "scripts.cli_sensors",
    "scripts.cli_workers",
    "scripts.cli_calls",
    "scripts.cli_vision",
    "scripts.cli_export",
    "scripts.cli_users",
    "scripts.cli_scale",
    "scripts.cli_holidays",
]



def _register_modules() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_modules()


@bench_app.command("resolve")
@guarded
def bench_resolve(points: int = typer.Option(1_000_000, help="Random points over the city."),
                  postgis: bool = typer.Option(True, help="Also time the PostGIS GiST join.")) -> None:
    """OneMap's resolver vs geopandas.sjoin and the PostGIS join, on the registry's grids."""
    from gis.db import session_scope
    from gis.locate import postgis_resolve
    from gis.registry import load_grids
    from scripts.bench_resolve import run

    with session_scope() as session:
        grids = load_grids(session)
        if grids.empty:
            fail("the registry has no grids: run `onemap demo --no-serve` first")
        join = (lambda lon, lat: postgis_resolve(session, lon, lat)) if postgis else None
        run(points, grids, postgis_join=join, echo=out.print)


@bench_app.command("api")
@guarded
def bench_api(rate: float = typer.Option(200.0), seconds: float = typer.Option(10.0),
              workers: int = typer.Option(1, min=1, help="server processes")) -> None:
    """GET /resolve p50/p99 at a fixed rate on loopback, beside GET /health."""
    from scripts.bench_http import run

    run(rate, seconds, echo=out.print, workers=workers)


@bench_app.command("tickets")
@guarded
def bench_tickets(tickets: int = typer.Option(10_000)) -> None:
    """Load simulated tickets into a scratch database and time the monthly ranking (SQL vs pandas)."""
    from scripts.bench_tickets import bench_tickets as run

    run(out, tickets=tickets)


@bench_app.command("map")
@guarded
def bench_map(tickets: int = typer.Option(100_000), workers: int = typer.Option(2_000),
              rounds: int = typer.Option(3)) -> None:
    """First full render of the big-screen map in headless Chromium vs a naive Leaflet page."""
    from scripts.bench_map import run

    run(out, tickets=tickets, workers=workers, rounds=rounds)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
