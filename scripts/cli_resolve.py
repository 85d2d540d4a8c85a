"""`onemap resolve IN.csv OUT.csv`: millions of rows in bounded memory, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from gis import csvsafe
from gis.errors import OneMapError

console = Console(stderr=True)


def _count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1, 0)


def resolve_file(source: Path, target: Path, *, lon_col: str, lat_col: str, crs: str, chunk: int,
                 encoding: str = "utf-8-sig", progress: bool = True, snap_m: float | None = None) -> dict:
    """Stream ``source`` through the resolver into ``target``; returns counts by match kind."""
    from gis.db import session_scope
    from gis.locate import locate_table

    if not source.exists():
        raise OneMapError(f"{source} does not exist")
    counts: dict[str, int] = {}
    total = _count_rows(source)
    with session_scope() as session, Progress(
        TextColumn("resolving"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} rows"),
        TimeRemainingColumn(), console=console, disable=not progress,
    ) as bar:
        task = bar.add_task("resolve", total=total)
        done = 0
        try:
            reader = pd.read_csv(source, dtype=str, keep_default_na=False, chunksize=chunk, encoding=encoding)
            for i, frame in enumerate(reader):
                out = locate_table(session, frame, lon_col=lon_col, lat_col=lat_col, crs=crs, row_offset=done,
                                   snap_m=snap_m)
                csvsafe.frame(out).to_csv(target, mode="w" if i == 0 else "a", header=i == 0, index=False,
                           encoding="utf-8-sig" if i == 0 else "utf-8")
                for kind, n in out["match"].fillna("error").value_counts().items():
                    counts[kind] = counts.get(kind, 0) + int(n)
                done += len(frame)
                bar.update(task, completed=done)
        except UnicodeDecodeError as exc:
            raise OneMapError(f"{source} is not {encoding}: pass --encoding gb18030 for GBK files") from exc
        except pd.errors.ParserError as exc:
            raise OneMapError(f"{source} is not a readable CSV: {exc}") from exc
        except pd.errors.EmptyDataError as exc:
            raise OneMapError(f"{source} is empty") from exc
    return counts


def register(app: typer.Typer) -> None:
    @app.command("resolve")
    def resolve(
        source: Path = typer.Argument(..., help="CSV with a longitude and a latitude column."),
        target: Path = typer.Argument(..., help="CSV to write: every input row, resolved or with its error."),
        lon_col: str = typer.Option("lon", "--lon-col"),
        lat_col: str = typer.Option("lat", "--lat-col"),
        crs: str = typer.Option("EPSG:4326", help="EPSG code, gcj02 or bd09."),
        chunk: int = typer.Option(200_000, help="Rows per chunk (bounds memory)."),
        encoding: str = typer.Option("utf-8-sig", help="Input encoding (gb18030 for GBK files)."),
        snap_m: float | None = typer.Option(
            None, "--snap-m", min=0,
            help="A point outside every grid but within this many metres of one is given the nearest grid "
                 "(match 'snapped', with its distance); 0 = no snapping. Default 50 (ONEMAP_SNAP_M)."),
    ) -> None:
        """Resolve every row of a CSV to grid, village, town and district.

        Each row's match says how: inside, boundary (on a shared edge: the lowest code), snapped (outside
        every grid but within --snap-m metres of one, 50 by default) or outside."""
        try:
            counts = resolve_file(source, target, lon_col=lon_col, lat_col=lat_col, crs=crs, chunk=chunk,
                                  encoding=encoding, snap_m=snap_m)
        except OneMapError as exc:
            console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None
        summary = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
        console.print(f"wrote {target}: {summary}")
