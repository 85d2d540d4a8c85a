"""`onemap bench export`: time and peak memory to export 100,000 tickets to each format.

The tickets are synthetic but shaped like the tickets layer (the same columns, Chinese categories
and descriptions, points inside the demo city, timestamps over a year) and arrive in chunks of
10,000 as the database cursor delivers them. Baseline, named in the table: build the whole frame,
then ``geopandas.GeoDataFrame.to_file`` (pyogrio) — or ``pandas.to_csv`` with a WKT column for CSV —
which is what an export without chunking does. Every case runs in a fresh process, so its peak
RSS is its own; the idle figure (interpreter + imports) is shown for subtraction.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

N_TICKETS = 100_000
CHUNK = 10_000
BOUNDS = (118.55, 36.65, 119.10, 37.10)  # the demo city's neighbourhood
CATEGORIES = [("0102", "暴露垃圾"), ("0101", "私搭乱建"), ("0301", "井盖缺失"), ("0505", "噪声扰民")]
STATES = ["received", "dispatched", "handling", "completed", "closed"]


def ticket_chunk(start: int, size: int, seed: int = 0):
    """``size`` ticket-shaped rows starting at id ``start`` (deterministic)."""
    import geopandas as gpd
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + start)
    ids = np.arange(start + 1, start + size + 1)
    cat = rng.integers(0, len(CATEGORIES), size)
    created = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 365 * 86400, size), unit="s")
    frame = pd.DataFrame({
        "id": ids, "channel": rng.choice(["hotline", "app", "wechat", "patrol"], size),
        "category": [CATEGORIES[c][0] for c in cat], "category_name": [CATEGORIES[c][1] for c in cat],
        "severity": rng.choice(["general", "important", "urgent"], size),
        "state": rng.choice(STATES, size), "card": rng.choice(["ok", "ok", "ok", "yellow", "red"], size),
        "description": [f"{CATEGORIES[c][1]}，位于第{i % 97}号楼附近，请尽快处理" for c, i in zip(cat, ids, strict=True)],
        "address": [f"寿光市圣城街道{i % 500}号" for i in ids],
        "grid_code": [f"370783001{(i % 30) + 1:03d}{(i % 9) + 1:03d}" for i in ids],
        "town_code": "370783001000", "department": "sanitation", "match": "inside",
        "created_at": created, "closed_at": created + pd.Timedelta(days=2),
    })
    lon = rng.uniform(BOUNDS[0], BOUNDS[2], size)
    lat = rng.uniform(BOUNDS[1], BOUNDS[3], size)
    return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(lon, lat), crs=4326)


def chunks(n: int = N_TICKETS) -> Iterator:
    for start in range(0, n, CHUNK):
        yield ticket_chunk(start, min(CHUNK, n - start))


def _onemap(fmt: str, out: Path, n: int) -> None:
    from gis import export as X
    from gis.export_source import Source

    X.export(Source("tickets", chunks(n), key="id", geometry_type="Point"), fmt, out)


def _baseline(fmt: str, out: Path, n: int) -> None:
    import pandas as pd

    frame = pd.concat(list(chunks(n)), ignore_index=True)
    if fmt == "csv":
        table = pd.DataFrame(frame.drop(columns="geometry"))
        table["wkt"] = frame.geometry.to_wkt()
        table.to_csv(out, index=False, encoding="utf-8-sig")
        return
    driver = {"shp": "ESRI Shapefile", "gpkg": "GPKG", "geojson": "GeoJSON"}[fmt]
    target = out.with_suffix(".shp") if fmt == "shp" else out
    frame.to_file(target, driver=driver, engine="pyogrio")


def _case(kind: str, fmt: str, n: int, queue) -> None:
    import geopandas  # noqa: F401 - imports count as idle memory, not the export's

    import gis.export  # noqa: F401

    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"tickets.{'zip' if fmt == 'shp' else fmt}"
        t = time.perf_counter()
        if kind != "idle":
            (_onemap if kind == "onemap" else _baseline)(fmt, out, n)
        seconds = time.perf_counter() - t
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, idle, size))


def measure(kind: str, fmt: str, n: int = N_TICKETS) -> dict:
    """Run one case in a fresh process: seconds, peak RSS (MB), idle RSS (MB), bytes written."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_case, args=(kind, fmt, n, queue))
    proc.start()
    seconds, peak, idle, size = queue.get()
    proc.join()
    return {"kind": kind, "format": fmt, "seconds": seconds, "peak_mb": peak, "idle_mb": idle, "bytes": size}


def run(console=None, n: int = N_TICKETS, formats: tuple[str, ...] = ("shp", "gpkg", "geojson", "csv")) -> list[dict]:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    results = [measure(kind, fmt, n) for fmt in formats for kind in ("onemap", "baseline")]
    idle = measure("idle", "csv", n)["peak_mb"]
    table = Table(title=f"onemap bench export — {n:,} synthetic tickets, chunks of {CHUNK:,}")
    for column in ("format", "writer", "seconds", "peak RSS MB", "above idle MB", "file MB"):
        table.add_column(column, justify="right" if column != "writer" else "left")
    for r in results:
        writer = "onemap (chunked)" if r["kind"] == "onemap" else "baseline: whole frame + to_file"
        if r["kind"] == "baseline" and r["format"] == "csv":
            writer = "baseline: whole frame + pandas.to_csv"
        table.add_row(r["format"], writer, f"{r['seconds']:.2f}", f"{r['peak_mb']:.0f}",
                      f"{r['peak_mb'] - idle:.0f}", f"{r['bytes'] / 1e6:.1f}")
    console.print(table)
    console.print(f"idle process (interpreter + geopandas imports): {idle:.0f} MB peak RSS")
    return results


if __name__ == "__main__":  # pragma: no cover
    run()
