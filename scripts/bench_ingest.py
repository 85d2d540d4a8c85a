"""Benchmark: bulk ingest of GPS points and sensor readings, end to end, beside row-by-row INSERTs, and
the cost of the small batches phones and stations post many times a second.

`onemap bench ingest` calls :func:`run`. It works in a scratch database beside the configured one
(migrated, the demo city loaded, dropped afterwards), so nothing of the run is left behind.

What is timed, per kind:
- **OneMap** (``ingest_positions`` / ``ingest_readings``): a batch of ``points`` rows as a DataFrame →
  validation, bad-fix flags, resolution to grids (``gis.locate.locate_many``, vectorised), monthly
  partitions, COPY into a temporary table, ``INSERT ... ON CONFLICT DO NOTHING`` into the partitioned
  table, last positions / threshold evaluation, and the COMMIT.
- **Resend**: the same batch again (idempotence: nothing inserted), timed too.
- **Baseline**: the same work row by row — resolve one point (``gis.locate.locate``), one
  ``INSERT ... ON CONFLICT DO NOTHING`` per row — for ``baseline_rows`` rows, extrapolated linearly.
- **Small batches**: ``small_batches`` bodies of 1, 10 and 100 rows each, as the API receives them (GPS as
  CSV like ``scripts/bench_load.py`` posts, readings as JSON lines), each committed: CPU time of this
  process (what the API server would spend) and wall time per batch. These go in with one ``INSERT``
  over ``unnest`` of arrays instead of COPY (``gis.bulk.UNNEST_MAX_ROWS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from gis.locate import locate
from gis.registry import load_grids

START = datetime(2026, 4, 30, 12, tzinfo=UTC)  # the batch crosses a month: two partitions are created


def gps_batch(session: Session, workers: list[str], n: int, seed: int = 3) -> pd.DataFrame:
    """Random walks (about 1.2 m/s, a fix every 30 s) from each worker's first grid, ``n`` fixes in all."""
    rng = np.random.default_rng(seed)
    grids = load_grids(session)
    starts = grids.geometry.representative_point().to_numpy()[rng.integers(0, len(grids), len(workers))]
    per = -(-n // len(workers))
    step = rng.normal(0, 0.0003, size=(len(workers), per, 2)).cumsum(axis=1)
    lon = (np.array([p.x for p in starts])[:, None] + step[:, :, 0]).ravel()[:n]
    lat = (np.array([p.y for p in starts])[:, None] + step[:, :, 1]).ravel()[:n]
    ts = pd.to_datetime(START) + pd.to_timedelta(np.tile(np.arange(per) * 30, len(workers))[:n], unit="s")
    return pd.DataFrame({"worker_id": np.repeat(np.asarray(workers, dtype=object), per)[:n], "ts": ts,
                         "lon": lon, "lat": lat, "accuracy": rng.uniform(3, 20, n).round(1)})


def _timed(fn: Callable, session: Session) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    session.commit()
    return time.perf_counter() - start, result


def _shifted_partitions(session: Session, table: str, frame: pd.DataFrame) -> None:
    """The baseline writes 400 days later (fresh keys, no conflicts); its months exist before the clock starts."""
    from gis.bulk import ensure_month_partitions

    ensure_month_partitions(session, table, frame["ts"] + pd.Timedelta(days=400))
    session.commit()


def _baseline_gps(session: Session, frame: pd.DataFrame) -> float:
    _shifted_partitions(session, "worker_positions", frame)
    start = time.perf_counter()
    for r in frame.itertuples(index=False):
        where = locate(session, r.lon, r.lat)
        session.execute(text(
            "INSERT INTO worker_positions (worker_id, ts, geom, accuracy_m, grid_code, town_code, match) VALUES "
            "(:w, :t, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :a, :g, :tc, :m) ON CONFLICT DO NOTHING"),
            {"w": r.worker_id, "t": r.ts.to_pydatetime() + timedelta(days=400), "x": r.lon, "y": r.lat,
             "a": r.accuracy, "g": where.grid_code, "tc": where.town_code, "m": where.match})
    session.commit()
    return time.perf_counter() - start


def _baseline_readings(session: Session, frame: pd.DataFrame) -> float:
    _shifted_partitions(session, "sensor_readings", frame)
    start = time.perf_counter()
    for r in frame.itertuples(index=False):
        session.execute(text(
            "INSERT INTO sensor_readings (sensor_id, ts, pm25, pm10, no2, so2, o3, co) VALUES "
            "(:s, :t, :a, :b, :c, :d, :e, :f) ON CONFLICT DO NOTHING"),
            {"s": r.sensor_id, "t": r.ts.to_pydatetime() + timedelta(days=400), "a": r.pm25, "b": r.pm10,
             "c": r.no2, "d": r.so2, "e": r.o3, "f": r.co})
    session.commit()
    return time.perf_counter() - start


def _prepare(session: Session) -> tuple[list[str], list[str]]:
    from layers.sensors.simulate import demo_sensors
    from layers.workers.simulate import demo_workers
    from scripts.demo_load import load_into

    load_into(session, validate=False)
    workers = list(demo_workers(session)["id"])
    sensors = list(demo_sensors(session, count=300)["id"])
    session.commit()
    return workers, sensors


def _gps(session: Session, workers: list[str], points: int, baseline_rows: int) -> dict:
    from layers.workers.ingest import ingest_positions

    batch = gps_batch(session, workers, points)
    now = batch["ts"].max().to_pydatetime() + timedelta(minutes=1)
    secs, result = _timed(lambda: ingest_positions(session, batch, now=now, publish=True), session)
    resend_s, again = _timed(lambda: ingest_positions(session, batch, now=now), session)
    base_s = _baseline_gps(session, batch.iloc[:baseline_rows])
    return {"rows": points, "seconds": secs, "inserted": result.inserted, "flagged": result.flagged,
            "resend_seconds": resend_s, "resend_inserted": again.inserted,
            "baseline_rows": baseline_rows, "baseline_seconds": base_s}


def _readings(session: Session, sensors: list[str], points: int, baseline_rows: int) -> dict:
    from layers.sensors.ingest import ingest_readings
    from layers.sensors.simulate import readings_frame

    hours = points / len(sensors) / 60
    batch = readings_frame(sensors, START, hours=hours, episodes=sensors[:3])
    now = batch["ts"].max().to_pydatetime() + timedelta(minutes=1)
    secs, result = _timed(lambda: ingest_readings(session, batch, now=now), session)
    resend_s, again = _timed(lambda: ingest_readings(session, batch, now=now), session)
    base_s = _baseline_readings(session, batch.iloc[:baseline_rows])
    return {"rows": len(batch), "seconds": secs, "inserted": result.inserted, "alarms": len(result.alarms_opened),
            "resend_seconds": resend_s, "resend_inserted": again.inserted,
            "baseline_rows": baseline_rows, "baseline_seconds": base_s}


SMALL_SIZES = (1, 10, 100)


def _small(session: Session, kind: str, ids: list[str], batches: int) -> dict:
    """Per-batch CPU (this process) and wall time of small committed batches, a month after START."""
    from layers.sensors.ingest import ingest_readings
    from layers.workers.ingest import ingest_positions

    start = START + timedelta(days=31)
    figures = {}
    for size in SMALL_SIZES:
        bodies = []
        for k in range(batches + 1):  # the first is a warm-up (it may create the month's partition)
            t0 = start + timedelta(hours=size, seconds=k * size)  # each size in its own hours
            if kind == "gps":
                rows = [f"{ids[k % len(ids)]},{(t0 + timedelta(seconds=i)).isoformat()},"
                        f"{118.73 + 1e-5 * i:.6f},{36.87 + 1e-5 * i:.6f},8" for i in range(size)]
                bodies.append(("worker_id,ts,lon,lat,accuracy\n" + "\n".join(rows) + "\n").encode())
            else:
                bodies.append("\n".join(
                    f'{{"sensor_id": "{ids[(k + i) % len(ids)]}", "ts": "{(t0 + timedelta(seconds=i)).isoformat()}", '
                    f'"pm25": {20 + i % 30}, "pm10": 45}}' for i in range(size)).encode())
        cpu = wall = 0.0
        for k, body in enumerate(bodies):
            c, w = time.process_time(), time.perf_counter()
            if kind == "gps":
                result = ingest_positions(session, body, fmt="csv", now=start + timedelta(days=10))
            else:
                result = ingest_readings(session, body, fmt="jsonl", now=start + timedelta(days=10))
            session.commit()
            if k:
                cpu += time.process_time() - c
                wall += time.perf_counter() - w
            if result.inserted != size:
                raise RuntimeError(f"small {kind} batch {k}: {result.inserted} of {size} inserted, "
                                   f"{result.rejected[:3]}")
        figures[size] = {"cpu_ms": 1000 * cpu / batches, "wall_ms": 1000 * wall / batches}
    return figures


def _small_lines(kind: str, f: dict, batches: int) -> list[str]:
    return [f"{kind}, small batches ({batches} each, committed): " + "; ".join(
        f"{size} row{'s' if size > 1 else ''} {v['cpu_ms']:.1f} ms CPU / {v['wall_ms']:.1f} ms wall"
        for size, v in f.items()) + " per batch"]


def _lines(kind: str, f: dict) -> list[str]:
    rate = f["rows"] / f["seconds"]
    base = f["baseline_rows"] / f["baseline_seconds"]
    return [
        f"{kind}: {f['rows']:,} rows in {f['seconds']:.2f} s = {rate:,.0f} rows/s end to end (COPY), "
        f"{f['inserted']:,} inserted",
        f"{kind}: resend of the same batch {f['resend_seconds']:.2f} s, {f['resend_inserted']} inserted (idempotent)",
        f"{kind}: baseline row-by-row INSERT {f['baseline_rows']:,} rows in {f['baseline_seconds']:.2f} s = "
        f"{base:,.0f} rows/s → {f['rows'] / base:,.0f} s extrapolated for {f['rows']:,}; COPY is {rate / base:.0f}x",
    ]


def run(points: int = 1_000_000, baseline_rows: int = 20_000, *, small_batches: int = 200, url: str | None = None,
        echo: Callable[[str], None] = print) -> dict:
    """Run both benchmarks in a scratch database (or ``url``, which must be migrated) and print them."""
    from scripts.bench import peak_rss_mb, scratch_database

    def body(db_url: str) -> dict:
        engine = create_engine(db_url)
        with Session(engine) as session:
            workers, sensors = _prepare(session)
            figures = {"gps": _gps(session, workers, points, baseline_rows),
                       "readings": _readings(session, sensors, points, baseline_rows)}
            if small_batches:
                figures["small_gps"] = _small(session, "gps", workers, small_batches)
                figures["small_readings"] = _small(session, "readings", sensors, small_batches)
        engine.dispose()
        return figures

    if url:
        figures = body(url)
    else:
        with scratch_database("onemap_bench_ingest") as scratch:
            figures = body(scratch)
    figures["peak_rss_mb"] = round(peak_rss_mb())
    lines = _lines("GPS points", figures["gps"]) + _lines("sensor readings", figures["readings"])
    if small_batches:
        lines += _small_lines("GPS points", figures["small_gps"], small_batches)
        lines += _small_lines("sensor readings", figures["small_readings"], small_batches)
    for line in lines:
        echo(line)
    echo(f"peak RSS {figures['peak_rss_mb']} MB")
    return figures


if __name__ == "__main__":
    run()
