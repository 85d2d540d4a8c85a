"""``onemap geocode IN.csv OUT.csv --col address`` and ``onemap addresses import FILE.csv``.

The geocoder streams the input in chunks (bounded memory for any file size) and writes every input
row, in order, with its status, point, matched address, confidence, grid and reason; a bad row
(empty address) is written with its error, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from gis import csvsafe
from gis.errors import InvalidInput, OneMapError

CHUNK = 5_000
console = Console(stderr=True)
addresses_app = typer.Typer(help="The standard-address table (标准地址) used for geocoding.",
                            no_args_is_help=True)


@contextmanager
def _session() -> Iterator[Session]:
    """The unit of work (a seam: tests bind it to their rolled-back session)."""
    from gis.db import session_scope

    with session_scope() as session:
        yield session


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


def _rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def geocode_file(session: Session, src: Path, dst: Path, *, col: str = "address", chunk: int = CHUNK,
                 encoding: str = "utf-8-sig", progress: Progress | None = None) -> dict[str, int]:
    """Geocode column ``col`` of ``src`` into ``dst`` chunk by chunk; returns counts per status."""
    from gis.geocode import geocode_many

    if not src.is_file():
        raise InvalidInput(f"input file {src} not found")
    task = progress.add_task("geocoding", total=_rows(src)) if progress else None
    counts: dict[str, int] = {}
    reader = pd.read_csv(src, dtype=str, keep_default_na=False, chunksize=chunk, encoding=encoding)
    first = True
    for part in reader:
        if col not in part.columns:
            raise InvalidInput(f"column {col!r} not found in {src.name}; columns are: {', '.join(part.columns)}")
        result = geocode_many(session, part[col].tolist())
        out = pd.concat([part.reset_index(drop=True), result], axis=1)
        csvsafe.frame(out).to_csv(dst, mode="w" if first else "a", header=first, index=False, encoding="utf-8")
        first = False
        for status, n in result["geocode_status"].value_counts().items():
            counts[str(status)] = counts.get(str(status), 0) + int(n)
        if progress and task is not None:
            progress.advance(task, len(part))
    if first:  # header only: still write the header with the result columns
        from gis.geocode import GEOCODE_COLUMNS

        header = pd.read_csv(src, dtype=str, nrows=0, encoding=encoding)
        if col not in header.columns:
            raise InvalidInput(f"column {col!r} not found in {src.name}; columns are: {', '.join(header.columns)}")
        pd.DataFrame(columns=[*header.columns, *GEOCODE_COLUMNS]).to_csv(dst, index=False)
    return counts


def geocode_command(
    src: Annotated[Path, typer.Argument(help="CSV with an address column.")],
    dst: Annotated[Path, typer.Argument(help="Output CSV: every input row plus the geocode columns.")],
    col: Annotated[str, typer.Option("--col", help="Name of the address column.")] = "address",
    chunk: Annotated[int, typer.Option(help="Rows per chunk (bounded memory).")] = CHUNK,
    encoding: Annotated[str, typer.Option(help="Input encoding (e.g. gbk for Excel exports).")] = "utf-8-sig",
) -> None:
    """Geocode a CSV of Chinese addresses against the standard-address table."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with _session() as session, Progress(*columns, console=console, transient=False) as progress:
            counts = geocode_file(session, src, dst, col=col, chunk=chunk, encoding=encoding, progress=progress)
    except OneMapError as exc:
        _fail(exc.message)
    except UnicodeDecodeError:
        _fail(f"{src} is not {encoding}: pass --encoding gbk (or the file's encoding)")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no rows"
    Console().print(f"geocoded {sum(counts.values())} rows → {dst} ({summary})", highlight=False)


@addresses_app.command("import")
def addresses_import(
    path: Annotated[Path, typer.Argument(help="CSV: road, number, lon, lat (+ district, town, building, unit).")],
    crs: Annotated[str, typer.Option(help="CRS of lon/lat (EPSG code, gcj02, bd09).")] = "EPSG:4326",
    replace: Annotated[bool, typer.Option(help="Delete the current table first.")] = False,
) -> None:
    """Import a standard-address table (all or nothing; a bad row is named)."""
    from gis.geocode import import_addresses

    try:
        with _session() as session:
            count = import_addresses(session, path, crs=crs, replace=replace)
    except OneMapError as exc:
        _fail(exc.message)
    Console().print(f"imported {count} standard addresses from {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("geocode")(geocode_command)
    app.add_typer(addresses_app, name="addresses")
