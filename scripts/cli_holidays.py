"""`onemap holidays load FILE | list`: next year's official schedule until chinese-calendar knows it.

The file format is documented in ``layers/incidents/holidays.py`` (JSON or CSV of dates: holidays and
make-up working days). Deadlines in a year no calendar covers are refused, never guessed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gis.errors import OneMapError

console = Console(stderr=True)
out = Console()
holidays_app = typer.Typer(help="The holiday calendar beyond chinese-calendar's years (节假日安排).",
                           no_args_is_help=True)


@holidays_app.command("load")
def load(path: Path, dry_run: Annotated[bool, typer.Option("--dry-run", help="check only")] = False) -> None:
    """Load a year's schedule (State Council notice) from JSON or CSV."""
    from layers.incidents import holidays, sla

    try:
        years = holidays.read_file(path)
    except OneMapError as exc:
        console.print(f"[bold red]error:[/] {path}: {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    until = sla.covered_until()
    for ys in years:
        note = f" (chinese-calendar already knows {ys.year}: its data is used)" if ys.year <= until else ""
        out.print(f"{ys.year}: {len(ys.holidays)} holidays, {len(ys.workdays)} make-up working days{note}",
                  highlight=False)
    if dry_run:
        out.print("dry run: nothing stored")
        return
    stored = holidays.store(years)
    out.print(f"stored in {stored}", highlight=False)


@holidays_app.command("list")
def list_() -> None:
    """The years known: the package's range and the loaded ones."""
    from layers.incidents import holidays, sla

    out.print(f"chinese-calendar: up to {sla.covered_until()}")
    for year, ys in sorted(holidays.loaded_years().items()):
        out.print(f"{year}: loaded, {len(ys.holidays)} holidays, {len(ys.workdays)} make-up days "
                  f"({ys.source or 'no source named'})", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(holidays_app, name="holidays")
