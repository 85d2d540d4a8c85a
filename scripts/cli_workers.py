"""`onemap workers ...`: import, ingest GPS, track, report, nearest, simulate.

Thin wrappers over layers.workers (the same functions the API calls); errors are one line and exit 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scripts.cli_sensors import guard, out, show

CsvOpt = Annotated[Path | None, typer.Option(help="Write the CSV (UTF-8 with BOM) here.")]
workers_app = typer.Typer(help="Field workers (网格员): people, GPS, tracks, patrol reports.", no_args_is_help=True)


def _day(value: str | None):
    from gis.errors import InvalidInput
    from layers.workers.simulate import day_of

    try:
        return day_of(value)
    except ValueError as exc:
        raise InvalidInput(f"--date/--day must look like 2026-05-01, got {value!r}") from exc


@workers_app.command("import")
@guard
def import_(path: Path) -> None:
    """Register or update workers from CSV / JSON lines: id, name, role, phone, grids ("code;code")."""
    from gis.db import session_scope
    from layers.workers.registry import import_workers

    with session_scope() as session:
        show(import_workers(session, path.read_bytes()))


@workers_app.command("ingest")
@guard
def ingest(path: Path, crs: str = typer.Option("EPSG:4326", help="EPSG code, gcj02 (phones) or bd09.")) -> None:
    """Ingest GPS fixes (CSV or JSON lines): counts, flagged fixes and refused rows with reasons."""
    from gis.db import session_scope
    from layers.workers.ingest import ingest_positions

    with session_scope() as session:
        show(ingest_positions(session, path.read_bytes(), crs=crs).as_dict())


@workers_app.command("track")
@guard
def track(worker_id: str, date: str | None = typer.Option(None, help="YYYY-MM-DD (default today).")) -> None:
    """A worker's day: distance, time in/out of the grids, coverage, last position, tickets reported."""
    from gis.db import session_scope
    from layers.workers.tracks import day_track

    with session_scope() as session:
        t = day_track(session, worker_id, _day(date))
        show({**t.summary(), "tickets": t.tickets})


@workers_app.command("report")
@guard
def report(town: str, date: str | None = typer.Option(None, help="YYYY-MM-DD (default today)."),
           csv: CsvOpt = None) -> None:
    """The daily patrol report of a town."""
    from gis.db import session_scope
    from layers.workers.report import patrol_report, report_csv

    with session_scope() as session:
        frame = patrol_report(session, town, _day(date))
    if csv:
        csv.write_bytes(report_csv(frame))
        out.print(f"wrote {len(frame)} workers to {csv}")
    else:
        out.print(frame.to_string(index=False))


@workers_app.command("nearest")
@guard
def nearest(ticket_id: int, k: int = typer.Option(5)) -> None:
    """The nearest on-duty workers to a ticket."""
    from gis.db import session_scope
    from layers.workers.live import nearest_workers

    with session_scope() as session:
        show(nearest_workers(session, ticket_id=ticket_id, k=k))


@workers_app.command("simulate")
@guard
def simulate(day: str | None = typer.Option(None, "--day", help="YYYY-MM-DD (default today: fixes up to now)."),
             tickets: int = typer.Option(30, help="Patrol reports to file along the walks."),
             seed: int = typer.Option(7)) -> None:
    """A demo day: the demo city's workers (created once), their walks, a few reports."""
    from gis.db import session_scope
    from layers.workers.simulate import simulate_day

    with session_scope() as session:
        show(simulate_day(session, _day(day), tickets=tickets, seed=seed).__dict__)


def register(app: typer.Typer) -> None:
    app.add_typer(workers_app, name="workers")
