"""Benchmark: the resolver on a Dask LocalCluster (1 and 2 worker processes) beside the single process.

`onemap bench scale` calls :func:`run`. Synthetic GPS points over the demo city (data/grid_boundaries,
else bench_resolve's synthetic city) are written in chunks to partitioned Parquet (bounded memory),
then resolved three ways on the same files, each doing the same work per file (read lon/lat,
:func:`gis.scale.resolve_frame`, count matches): in this process; on 1 worker; on 2 workers. The
index build is timed apart (once per process) so the rates are steady-state resolution. The machine
is shared, so the load average and the system CPU use during each phase are printed with the rates.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from gis import scale
from scripts.bench_resolve import DEMO_GRIDS, synthetic_grids

YEAR_POINTS = 7_000_000_000  # Foshan: 18,794 workers, a fix every 30 s, a year
CHUNK = 1_000_000


def demo_grids() -> gpd.GeoDataFrame:
    return gpd.read_file(DEMO_GRIDS) if DEMO_GRIDS.exists() else synthetic_grids()


def generate(folder: Path, grids: gpd.GeoDataFrame, points: int, *, chunk: int = CHUNK, seed: int = 0) -> list[Path]:
    """``points`` fixes in files of ``chunk`` rows under ``day=YYYY-MM-DD/`` folders (20 M per day, as
    Foshan's workers make): each a uniform point in the bounding box of a random grid, so most fall
    inside that grid, some in its neighbours and a few (at the county edge) outside."""
    rng = np.random.default_rng(seed)
    bounds = grids.to_crs(4326).geometry.bounds.to_numpy()
    files = []
    for i, start in enumerate(range(0, points, chunk)):
        n = min(chunk, points - start)
        b = bounds[rng.integers(0, len(bounds), n)]
        day = f"2026-01-{1 + start // 20_000_000:02d}"
        table = pa.table({"worker_id": rng.integers(0, 18_794, n, dtype=np.int32),
                          "ts": pa.array(rng.integers(0, 86_400_000_000, n), pa.int64()),
                          "lon": rng.uniform(b[:, 0], b[:, 2]), "lat": rng.uniform(b[:, 1], b[:, 3])})
        path = folder / f"day={day}" / f"part-{i:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd")
        files.append(path)
    return files


def _count(path: Path, grids, key: str) -> pd.Series:
    """The unit of work both engines do: one file read, resolved, its matches counted."""
    frame = pd.read_parquet(path, columns=["lon", "lat"], use_threads=False)  # one core per process
    return scale.resolve_frame(frame, grids, key)["match"].value_counts()


def _total(parts) -> pd.Series:
    return pd.concat(list(parts)).groupby(level=0).sum().sort_index()


class _Load:
    """Load average and system-wide CPU use over a phase (other developers share the machine)."""

    def __enter__(self):
        psutil.cpu_percent(None)
        self.load0 = os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        self.cpu = psutil.cpu_percent(None)
        self.load1 = os.getloadavg()[0]

    def text(self) -> str:
        return f"load {self.load0:.1f}→{self.load1:.1f}, machine CPU {self.cpu:.0f}%"


@dataclass
class Phase:
    """The best of ``repeats`` timed passes over all files: wall seconds, CPU seconds of the
    resolving processes in that pass, and the machine's load then."""

    wall: float
    cpu: float
    load: _Load
    counts: pd.Series

    def text(self, points: int) -> str:
        return (f"{points / self.wall:,.0f} points/s wall ({self.wall:.1f} s), {points / self.cpu:,.0f} points "
                f"per CPU-second; {self.load.text()}")


def _best(passes: list[Phase]) -> Phase:
    return min(passes, key=lambda p: p.wall)


def single(files: list[Path], grids, key: str, repeats: int) -> tuple[float, Phase]:
    start = time.perf_counter()
    scale.worker_index(grids, key)
    build = time.perf_counter() - start
    passes = []
    for _ in range(repeats):
        with _Load() as load:
            start, cpu = time.perf_counter(), time.process_time()
            counts = _total(_count(f, grids, key) for f in files)
            passes.append(Phase(time.perf_counter() - start, time.process_time() - cpu, load, counts))
    return build, _best(passes)


def _cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def on_cluster(files: list[Path], grids, key: str, workers: int, repeats: int) -> tuple[float, float, Phase]:
    """Start a cluster, build the index on every worker (timed), then resolve every file there."""
    start = time.perf_counter()
    client = scale.local_cluster(workers)
    boot = time.perf_counter() - start
    try:
        shared = scale.broadcast_grids(grids, client)
        start = time.perf_counter()
        client.run(_warm, grids, key)
        build = time.perf_counter() - start
        passes = []
        for _ in range(repeats):
            with _Load() as load:
                cpu0 = sum(client.run(_cpu_seconds).values())
                start = time.perf_counter()
                parts = client.gather(client.map(_count_task, files, grids=shared, index_key=key, pure=False))
                wall = time.perf_counter() - start
                cpu = sum(client.run(_cpu_seconds).values()) - cpu0
            passes.append(Phase(wall, cpu, load, _total(parts)))
    finally:
        scale.close_cluster(client)
    return boot, build, _best(passes)


def _warm(grids, key: str) -> None:
    scale.worker_index(grids, key)


def _count_task(path: Path, grids, index_key: str) -> pd.Series:
    return _count(path, grids, index_key)


def run(points: int = 50_000_000, *, folder: Path | None = None, keep: bool = False, repeats: int = 3,
        echo: Callable[[str], None] = print) -> dict:
    """Generate, resolve three ways, print points/s, the scaling ratio and a cluster-size projection."""
    grids = demo_grids()
    key = scale.grid_key(grids, 0)
    own = folder is None
    folder = Path(tempfile.mkdtemp(prefix="onemap-scale-")) if folder is None else Path(folder)
    echo(f"{len(grids):,} grids; {os.cpu_count()} CPUs; load average now {os.getloadavg()[0]:.1f} "
         "(other developers share this machine)")
    try:
        start = time.perf_counter()
        files = generate(folder, grids, points)
        size = sum(f.stat().st_size for f in files) / 1e6
        echo(f"generated {points:,} points in {len(files)} Parquet files ({size:,.0f} MB) in "
             f"{time.perf_counter() - start:.1f} s")
        build, one = single(files, grids, key, repeats)
        echo(f"single process: index build {build:.1f} s; {one.text(points)}")
        figures: dict[str | int, float] = {"single": points / one.wall, "single_cpu": points / one.cpu}
        for workers in (1, 2):
            boot, wbuild, phase = on_cluster(files, grids, key, workers, repeats)
            if not phase.counts.equals(one.counts):
                raise RuntimeError(f"{workers}-worker counts differ from the single process")
            figures[workers], figures[f"{workers}_cpu"] = points / phase.wall, points / phase.cpu
            echo(f"dask, {workers} worker(s): cluster start {boot:.1f} s, index build on every worker "
                 f"{wbuild:.1f} s; {phase.text(points)}")
        ratio = figures[2] / figures[1]
        echo(f"scaling 1 → 2 workers (wall, best of {repeats}): x{ratio:.2f}; "
             f"matches {({k: int(v) for k, v in one.counts.items()})}")
        _project(figures, echo)
        return {"points": points, **{str(k): v for k, v in figures.items()}, "ratio": ratio}
    finally:
        if own and not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _project(figures: dict, echo: Callable[[str], None]) -> None:
    """Cores for a year of Foshan's fixes from the measured per-core rate: points per CPU-second of
    the 2-worker run (the wall rate on a shared 2-core machine understates a dedicated core)."""
    per_core = figures["2_cpu"]
    core_hours = YEAR_POINTS / per_core / 3600
    echo(f"per core (2-worker points per CPU-second): {per_core:,.0f} points/s → a year of {YEAR_POINTS:,} "
         f"points is {core_hours:,.2f} core-hours of resolving (read lon/lat + resolve + count; writing "
         f"results back is extra I/O): {_cores(core_hours):,} core(s) re-resolve a year in 1 h, "
         f"{_cores(core_hours * 60 / 10):,} in 10 min; intake (~{YEAR_POINTS / 3.156e7:,.0f} points/s on "
         "average) needs a small fraction of one core")


def _cores(core_hours: float) -> int:
    return max(1, math.ceil(core_hours))
