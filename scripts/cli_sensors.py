"""`onemap sensors ...`: import, ingest, thresholds, alarms, simulate; and `onemap bench ingest`.

Thin wrappers over layers.sensors (the same functions the API calls); errors are one line and exit 1.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from gis.errors import OneMapError

sensors_app = typer.Typer(help="Pollution sensors (环境监测): registry, readings, thresholds, alarms.",
                          no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def guard(fn):
    """Domain errors (and a missing database) become one line on stderr and exit 1."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OneMapError as exc:
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None
        except RuntimeError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def show(value: Any) -> None:
    out.print_json(json.dumps(value, ensure_ascii=False, default=str))


def _read(path: Path) -> bytes:
    if not path.exists():
        raise OneMapError(f"no such file: {path}")
    return path.read_bytes()


@sensors_app.command("import")
@guard
def import_(path: Path, crs: str = typer.Option("EPSG:4326", help="EPSG code, gcj02 or bd09.")) -> None:
    """Register or update sensors from CSV / JSON lines (id, name, kind, pollutants, lon, lat, owner)."""
    from gis.db import session_scope
    from layers.sensors.registry import import_sensors

    with session_scope() as session:
        show(import_sensors(session, _read(path), crs=crs))


@sensors_app.command("ingest")
@guard
def ingest(path: Path) -> None:
    """Ingest readings (CSV or JSON lines); prints counts and every refused row with its reason."""
    from gis.db import session_scope
    from layers.sensors.ingest import ingest_readings

    with session_scope() as session:
        show(ingest_readings(session, _read(path), fmt="jsonl" if path.suffix in (".jsonl", ".json") else None).as_dict())


@sensors_app.command("thresholds")
@guard
def thresholds_(
    pollutant: str | None = typer.Argument(None, help="pm25, PM2.5, pm10, no2, so2, o3, co"),
    limit: float | None = typer.Option(None, help="New limit (µg/m³; mg/m³ for CO)."),
    consecutive: int | None = typer.Option(None, help="Readings over the limit in a row that raise an alarm."),
    who: str = typer.Option("cli"),
) -> None:
    """List thresholds, or change one pollutant's limit / duration rule."""
    from gis.db import session_scope
    from layers.sensors import thresholds
    from layers.sensors.registry import pollutant_name

    with session_scope() as session:
        if pollutant and (limit is not None or consecutive is not None):
            show(thresholds.set_threshold(session, pollutant_name(pollutant), who=who, limit_value=limit,
                                          consecutive=consecutive))
        else:
            show(thresholds.list_thresholds(session))


@sensors_app.command("alarms")
@guard
def alarms(state: str | None = typer.Option(None, help="open or closed")) -> None:
    """List alarms, newest first."""
    from gis.db import session_scope
    from layers.sensors.thresholds import list_alarms

    with session_scope() as session:
        show(list_alarms(session, state=state))


@sensors_app.command("simulate")
@guard
def simulate(count: int = typer.Option(300, help="Sensors to register."),
             hours: float = typer.Option(6, help="Hours of minute readings, ending now (or --end)."),
             end: str | None = typer.Option(None, help="End time, ISO 8601 with offset."),
             episodes: int = typer.Option(5, help="Enterprise monitors with a PM2.5 episode.")) -> None:
    """Demo sensors in the demo city and their readings (with a few alarms and tickets)."""
    from gis.db import session_scope
    from layers.sensors.simulate import simulate as run

    stop = datetime.fromisoformat(end) if end else None
    if stop is not None and stop.tzinfo is None:
        raise OneMapError("--end needs a timezone, e.g. 2026-05-01T16:00:00+08:00")
    with session_scope() as session:
        show(run(session, count=count, hours=hours, end=stop, episodes=episodes))


def _bench_group(app: typer.Typer) -> typer.Typer | None:
    return next((g.typer_instance for g in app.registered_groups if g.name == "bench"), None)


def register(app: typer.Typer) -> None:
    app.add_typer(sensors_app, name="sensors")
    bench = _bench_group(app)
    if bench is None:
        return

    @bench.command("ingest")
    @guard
    def bench_ingest(points: int = typer.Option(1_000_000, help="GPS points (and sensor readings) per batch."),
                     baseline: int = typer.Option(20_000, help="Rows inserted one by one for the baseline.")) -> None:
        """GPS points and sensor readings ingested per second (COPY) beside row-by-row INSERTs."""
        from scripts.bench_ingest import run

        run(points=points, baseline_rows=baseline, echo=out.print)
