"""`onemap calls ...` and `onemap basedata ...`: the lapse sweep, the time limits, base-data import and
the demo base data — thin wrappers over layers.calls and layers.basedata, run as the city-wide admin
(the command line is the operator's, like `onemap users`)."""

from __future__ import annotations

from pathlib import Path

import typer

from scripts.cli_sensors import _read, guard, show

calls_app = typer.Typer(help="Grid calls, departments report (网格呼叫、部门报到).", no_args_is_help=True)
basedata_app = typer.Typer(help="Base data of people and places (人、地、事、物、组织).", no_args_is_help=True)


@calls_app.command("sweep")
@guard
def sweep() -> None:
    """Escalate or flag every open call whose time ran out (run it every minute from cron)."""
    from gis.db import session_scope
    from layers.calls.service import sweep as run

    with session_scope() as session:
        show(run(session))


@calls_app.command("limits")
@guard
def limits(stage: str | None = typer.Option(None, help="set: grid_chief, community, town, sign, onsite"),
           key: str = typer.Option("*", help="a department code, or * for every other"),
           minutes: int | None = typer.Option(None), clock: str = typer.Option("calendar")) -> None:
    """Show each stage's time limit, or set one with --stage and --minutes."""
    from gis.db import session_scope
    from layers.calls import service as S

    with session_scope() as session:
        if stage and minutes:
            S.set_limit(session, stage=stage, key=key, minutes=minutes, clock=clock)
        show(S.limits(session))


@basedata_app.command("import")
@guard
def import_(kind: str, path: Path) -> None:
    """Import a CSV of one kind (buildings, households, residents, units, key_sites): all rows or none."""
    from gis.db import session_scope
    from layers.accounts.scope import Scope
    from layers.basedata.importer import RowErrors, import_csv

    try:
        with session_scope() as session:
            show(import_csv(session, Scope.for_role("city", user="cli"), kind, _read(path)))
    except RowErrors as exc:
        for e in exc.detail["errors"]:
            typer.echo(f"row {e['row']} {e['column'] or ''}: {e['reason']}", err=True)
        raise


@basedata_app.command("demo")
@guard
def demo() -> None:
    """Generate the demo city's base data (skipped when households exist)."""
    from gis.db import session_scope
    from scripts.demo_basedata import load_basedata

    with session_scope() as session:
        typer.echo(load_basedata(session))


def register(app: typer.Typer) -> None:
    app.add_typer(calls_app, name="calls")
    app.add_typer(basedata_app, name="basedata")
