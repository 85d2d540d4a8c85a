"""`onemap archive`, `onemap archive-reresolve`, `onemap archive-report`, `onemap resolve-dask` and
`onemap bench scale`: history in GeoParquet and the resolver on a Dask cluster.

Each archive day is its own transaction, so an interrupted run keeps what it finished and a re-run
picks up the rest (see layers.archive for why that loses and doubles nothing).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gis.errors import InvalidInput, OneMapError

console = Console(stderr=True)
out = Console()
REPORTS = ("patrol", "exceedance", "detections")
RootOpt = Annotated[Path | None, typer.Option("--out", help="Archive root (default: <data dir>/archive).")]
SchedulerOpt = Annotated[str | None, typer.Option(help="Dask scheduler address; none starts a local cluster.")]
WorkersOpt = Annotated[int, typer.Option(help="Local cluster worker processes.")]


def _default_root() -> Path:
    from gis.settings import database_settings

    return database_settings().data_dir / "archive"


@contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A client on ``scheduler``, or on a LocalCluster of ``workers`` processes started (and closed) here."""
    from gis import scale

    if scheduler:
        from distributed import Client

        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    client = scale.local_cluster(workers)
    try:
        yield client
    finally:
        scale.close_cluster(client)


def _fail(exc: OneMapError) -> None:
    console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
    raise typer.Exit(1) from None


def run_archive(root: Path, before: date, tables: list[str] | None) -> list:
    """Archive day by day, one transaction per (table, day)."""
    from gis.db import session_scope
    from layers import archive as A

    results = []
    with session_scope() as session:
        todo = [(t, d) for t in (tables or list(A.SPECS)) if A.exists(session, t)
                for d in A.pending_days(session, t, before)]
    for table, day in todo:
        with session_scope() as session:
            result = A.archive_day(session, root, table, day)
        if result.rows:
            out.print(f"{table} {day}: {result.rows:,} rows → {result.partitions} partitions "
                      f"({result.written:,} written, {result.already:,} already archived)")
            results.append(result)
    return results


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2026-11-01, got {value!r}") from None


def _report(kind: str, root: Path, start: date, end: date, thresholds: dict[str, float]):
    from gis import scale

    a, _ = scale.day_bounds(start)
    b, _ = scale.day_bounds(end)
    if kind == "patrol":
        return scale.time_in_grid(root, a, b)
    if kind == "exceedance":
        return scale.exceedance_hours(root, thresholds, a, b)
    return scale.detection_counts(root, a, b)


def _thresholds() -> dict[str, float]:
    from sqlalchemy import text

    from gis.db import session_scope

    with session_scope() as session:
        if session.scalar(text("SELECT to_regclass('sensor_thresholds')")) is None:
            return {}
        return {p: float(v) for p, v in session.execute(
            text("SELECT pollutant, limit_value FROM sensor_thresholds")).all()}


def register(app: typer.Typer) -> None:
    @app.command("archive")
    def archive_cmd(
        before: Annotated[str | None, typer.Option(
            help="Archive whole local days before this date (default: 30 days ago).")] = None,
        out_dir: RootOpt = None,
        table: Annotated[list[str] | None, typer.Option("--table", help="Only these tables (repeatable).")] = None,
    ) -> None:
        """Move history out of PostGIS into GeoParquet partitioned by day and town; safe to re-run."""
        try:
            cut = _day(before, "--before") if before else date.today() - timedelta(days=30)
            results = run_archive(out_dir or _default_root(), cut, table or None)
        except OneMapError as exc:
            _fail(exc)
        total = sum(r.rows for r in results)
        out.print(f"archived {total:,} rows from {len(results)} table-days before {cut}")

    @app.command("archive-reresolve")
    def reresolve_cmd(
        out_dir: RootOpt = None,
        table: Annotated[str, typer.Option("--table")] = "worker_positions",
        since: Annotated[int | None, typer.Option(help="Registry edit id the archive was resolved against "
                                                      "(default: remembered from the last run, else 0).")] = None,
        scheduler: SchedulerOpt = None,
        workers: WorkersOpt = 2,
    ) -> None:
        """Re-resolve the archive after grid redraws, reading only the redrawn towns' partitions."""
        from gis.db import session_scope
        from layers.archive import reresolve_after_edits

        try:
            with dask_client(scheduler, workers) as client, session_scope() as session:
                done, towns = reresolve_after_edits(session, out_dir or _default_root(), table,
                                                    since_edit=since, client=client)
        except OneMapError as exc:
            _fail(exc)
        out.print(f"towns redrawn: {', '.join(sorted(towns)) or 'none'}; partitions read {done.partitions_read} "
                  f"({done.files_read} files, {done.rows:,} rows, {done.changed:,} changed grid); "
                  f"partitions written {done.partitions_written}")

    @app.command("archive-report")
    def report_cmd(
        kind: Annotated[str, typer.Argument(help="patrol | exceedance | detections")],
        start: Annotated[str, typer.Option(help="First local day, e.g. 2026-11-01.")],
        end: Annotated[str, typer.Option(help="Day after the last, e.g. 2026-12-01.")],
        target: Annotated[Path, typer.Option("--to", help="Parquet file to write.")],
        out_dir: RootOpt = None,
        scheduler: SchedulerOpt = None,
        workers: WorkersOpt = 2,
    ) -> None:
        """Per-grid patrol hours, sensor exceedance hours, or detections per camera/class/day → Parquet."""
        from gis import scale

        try:
            if kind not in REPORTS:
                raise InvalidInput(f"report must be one of {', '.join(REPORTS)}, got {kind!r}")
            limits = _thresholds() if kind == "exceedance" else {}
            with dask_client(scheduler, workers) as client, client.as_current():
                frame = _report(kind, out_dir or _default_root(), _day(start, "--start"), _day(end, "--end"), limits)
        except OneMapError as exc:
            _fail(exc)
        scale.write_result(frame, target)
        out.print(f"wrote {target}: {len(frame):,} rows")

    @app.command("resolve-dask")
    def resolve_dask(
        source: Annotated[str, typer.Argument(help="Parquet file, folder or glob with lon/lat columns.")],
        target: Annotated[Path, typer.Argument(help="Folder to write resolved Parquet into.")],
        scheduler: SchedulerOpt = None,
        workers: WorkersOpt = 2,
        lon_col: Annotated[str, typer.Option("--lon-col")] = "lon",
        lat_col: Annotated[str, typer.Option("--lat-col")] = "lat",
        crs: Annotated[str, typer.Option(help="EPSG code, gcj02 or bd09.")] = "EPSG:4326",
        as_of: Annotated[str | None, typer.Option(
            help="Resolve against the grids valid then (ISO time with offset).")] = None,
    ) -> None:
        """Resolve partitioned point data on Dask, the grid index built once per worker."""
        import time

        from gis import scale
        from gis.db import session_scope
        from gis.registry import load_grids, registry_version

        try:
            when = datetime.fromisoformat(as_of) if as_of else None
            with session_scope() as session:
                grids, version = load_grids(session, as_of=when), registry_version(session)
            if grids.empty:
                raise InvalidInput("no grids in the registry for that time: import grids first")
            start = time.perf_counter()
            with dask_client(scheduler, workers) as client:
                ddf = scale.resolve_partitions(source, grids, lon_col=lon_col, lat_col=lat_col, crs=crs,
                                               client=client, version=version)
                ddf.to_parquet(target, write_index=False)
        except OneMapError as exc:
            _fail(exc)
        except ValueError as exc:  # e.g. as_of not ISO
            _fail(InvalidInput(str(exc)))
        out.print(f"wrote {target} in {time.perf_counter() - start:.1f} s (registry version {version})")

    bench = next((g.typer_instance for g in app.registered_groups if g.name == "bench"), None)
    if bench is not None:
        @bench.command("scale")
        def bench_scale(
            points: Annotated[int, typer.Option(help="Synthetic GPS points.")] = 50_000_000,
            folder: Annotated[Path | None, typer.Option(help="Where to write the points (default: a temp dir).")] = None,
            keep: Annotated[bool, typer.Option(help="Keep the generated Parquet.")] = False,
            repeats: Annotated[int, typer.Option(help="Timed passes per engine (the best is kept).")] = 3,
        ) -> None:
            """Resolve synthetic points on 1 and 2 Dask workers beside the single-process resolver."""
            from scripts.bench_scale import run

            run(points, folder=folder, keep=keep, repeats=repeats, echo=out.print)
