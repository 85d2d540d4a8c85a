"""Scheduled jobs inside the server process: today the yellow/red card refresh (黄牌警示、红牌督办).

Why in the server: cards must advance with the clock whether or not anyone asks, and no client may
choose the clock. Each server process runs the same timer; the ``job_runs`` row decides which one does
the work (:func:`layers.incidents.cards.run_cards_job`), so N processes still refresh once a period.
The work runs in the thread pool, never on the event loop; a failed run is logged and retried next
period.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from layers.incidents.cards import run_cards_job

log = logging.getLogger("onemap.jobs")
FIRST_DELAY_S = 20.0  # let the resolver and the pool warm first


def cards_once(app: FastAPI, every: timedelta) -> dict[str, int] | None:
    """One tick: claim and run the card refresh, commit; None when another process had it."""
    with app.state.sessions() as session:
        counts = run_cards_job(session, every=every)
        session.commit()
    if counts is not None:
        log.info("cards refreshed: %s", counts)
    return counts


async def cards_loop(app: FastAPI, every_s: float) -> None:
    every = timedelta(seconds=every_s)
    await asyncio.sleep(min(FIRST_DELAY_S, every_s))
    while True:
        try:
            await run_in_threadpool(cards_once, app, every)
        except Exception:  # noqa: BLE001 - a failed run (database away) must not end the schedule
            log.warning("card refresh failed; retrying in %.0f s", every_s, exc_info=True)
        await asyncio.sleep(every_s)


def start(app: FastAPI) -> list[asyncio.Task[None]]:
    """The jobs this server runs (none when ``ONEMAP_CARDS_EVERY_S=0``)."""
    every_s = app.state.settings.cards_every_s
    if not every_s:
        return []
    return [asyncio.create_task(cards_loop(app, float(every_s)), name="onemap-cards")]


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
