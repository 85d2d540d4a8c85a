"""`onemap bench api`: latency of GET /resolve under a fixed request rate on loopback.

A real uvicorn process serves the configured database; an asyncio client sends requests at a fixed
rate (open loop, so a slow server cannot slow the clock down) for a bounded time, and reports p50,
p99 and errors for /resolve beside /health (the baseline: the same stack with no resolver work).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import httpx
import numpy as np

from gis.pg import free_port


def start_server(port: int, workers: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--workers", str(workers), "--no-proxy-headers"]
    proc = subprocess.Popen(cmd, env=os.environ.copy())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the API did not start within 30 s")


def wait_warm(base: str, path: str, *, quick_ms: float = 50, in_a_row: int = 20, timeout: float = 180,
              token: str | None = None) -> None:
    """Until every server process has its resolver index: ``in_a_row`` answers under ``quick_ms``
    (each process builds it at start-up; a request reaching a process still building waits for it).
    ``token``: a bearer token when sign-in is on."""
    deadline = time.monotonic() + timeout
    streak = 0
    # a new connection each time (no keep-alive), so the requests reach every server process
    headers = {"Connection": "close", **({"Authorization": f"Bearer {token}"} if token else {})}
    with httpx.Client(base_url=base, timeout=timeout, headers=headers) as client:
        while streak < in_a_row:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server's resolver did not warm up within {timeout:.0f} s")
            t = time.perf_counter()
            answer = client.get(path)
            if answer.status_code in (401, 403):
                raise RuntimeError(f"the server refused the warm-up request ({answer.status_code}): sign-in is on, "
                                   "so pass a current token with --token (or ONEMAP_BENCH_TOKEN)")
            answer.raise_for_status()
            streak = streak + 1 if (time.perf_counter() - t) * 1000 < quick_ms else 0


async def _load(base: str, paths: list[str], rate: float, seconds: float) -> tuple[np.ndarray, int]:
    """Open loop on aiohttp (its client costs ~0.2 ms CPU a request here, httpx's ~2 ms: on 2 cores the
    load generator must not take the server's CPU)."""
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=5)) as client:
        async def one(path: str) -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                async with client.get(path) as res:
                    await res.read()
                    if res.status != 200:
                        errors += 1
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
            latencies.append(time.perf_counter() - t)

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % len(paths)])))
        await asyncio.gather(*tasks)
    return np.array(latencies) * 1000, errors


def run(rate: float = 200, seconds: float = 10, echo=print, workers: int = 1) -> dict:
    from gis.db import session_scope
    from gis.registry import load_grids

    with session_scope() as session:
        grids = load_grids(session)
    points = grids.geometry.representative_point()
    paths = [f"/resolve?lon={p.x:.7f}&lat={p.y:.7f}" for p in points]
    port = free_port()
    proc = start_server(port, workers)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_warm(base, paths[0])
        asyncio.run(_load(base, paths[:50], rate, 1))  # warm-up: connections pooled
        report = {}
        for name, batch in (("health (baseline)", ["/health"]), ("resolve", paths)):
            ms, errors = asyncio.run(_load(base, batch, rate, seconds))
            report[name] = {"requests": len(ms), "errors": errors, "p50_ms": round(float(np.percentile(ms, 50)), 2),
                            "p99_ms": round(float(np.percentile(ms, 99)), 2)}
            echo(f"{name:18} {rate:.0f} req/s × {seconds:.0f} s, {workers} server process(es): {report[name]}")
    finally:
        proc.terminate()
        proc.wait(10)
    return report
