"""`onemap export`, `onemap report` and `onemap bench export`: thin wrappers over layers.catalog,
gis.export and layers.report, the same services GET /export and the OGC API use."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gis.errors import OneMapError

console = Console(stderr=True)
out = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _when(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        _fail(f"{option} {text!r} is not a date or time, e.g. 2026-11-01 or 2026-11-01T08:00:00+08:00")
    return None


def export_command(
    layer: str = typer.Argument(..., help="Layer name, or several comma-separated (gpkg, shp): grids,tickets"),
    format: str = typer.Option("shp", "--format", "-f", help="shp (zipped), gpkg, geojson or csv"),
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="Output file (default: LAYER[_AREA].EXT)")] = None,
    area: str | None = typer.Option(None, help="12-digit district, town or village code"),
    start: str | None = typer.Option(None, "--from", help="Start, inclusive (Asia/Shanghai if no offset)"),
    end: str | None = typer.Option(None, "--to", help="End, exclusive"),
    crs: str | None = typer.Option(None, help="EPSG:4326 (default), EPSG:4490, EPSG:4513-4554 or gcj02"),
    encoding: str | None = typer.Option(None, help="Shapefile text: utf-8 (default) or gbk"),
    names: str = typer.Option("en", help="Field and layer names: en, or zh for the Chinese labels"),
    geometry: str = typer.Option("wkt", help="CSV geometry: wkt or lonlat"),
) -> None:
    """Export layers to a file ArcGIS, QGIS or Excel opens."""
    from gis import export as X
    from gis.db import session_scope
    from layers import catalog

    try:
        fmt = X.check_format(format)
        wanted = [n.strip() for n in layer.split(",") if n.strip()]
        target = out_path or Path("+".join(wanted) + (f"_{area}" if area else "") + X.SUFFIXES[fmt])
        with session_scope() as session:
            sources = catalog.export_sources(session, wanted, area=area, start=_when(start, "--from"),
                                             end=_when(end, "--to"), zh=names == "zh")
            summary = X.export(sources, fmt, target, crs=crs, encoding=encoding, geometry=geometry)
    except OneMapError as exc:
        _fail(exc.message)
    rows = ", ".join(f"{k}: {v:,}" for k, v in summary.rows.items())
    note = f"; {summary.truncated} long values cut (see truncated.csv)" if summary.truncated else ""
    out.print(f"wrote {target} ({rows}; {summary.crs}){note}", highlight=False)


def report_command(
    area: str = typer.Option(..., help="12-digit town (or village/district) code"),
    start: str | None = typer.Option(None, "--from", help="Start, inclusive"),
    end: str | None = typer.Option(None, "--to", help="End, exclusive"),
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained map report (grids, tickets, sensors, legend, KPIs) that works offline."""
    from gis.db import session_scope
    from layers.report import write_report

    try:
        with session_scope() as session:
            report = write_report(session, out_path, area=area, start=_when(start, "--from"),
                                  end=_when(end, "--to"))
    except OneMapError as exc:
        _fail(exc.message)
    figures = ", ".join(f"{k} {v}" for k, v in report.kpis.items())
    out.print(f"wrote {out_path}: {figures}", highlight=False)


def bench_command(n: int = typer.Option(100_000, help="How many tickets")) -> None:
    """Time and peak memory to export tickets to each format, against geopandas.to_file."""
    from scripts.bench_export import run

    run(out, n=n)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("report")(report_command)
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            group.typer_instance.command("export")(bench_command)
