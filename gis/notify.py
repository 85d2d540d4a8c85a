"""PostgreSQL LISTEN/NOTIFY fanned out in one process: the feed behind the big screen's live updates.

Why the database and not an in-process bus: the API runs as several processes, and a ticket created
through one must reach screens connected to another. Any writer (a route, the CLI, a worker job, a
trigger) calls ``pg_notify('onemap_tickets', '{"id": 42, ...}')``; each process holds ONE listening
connection (:class:`Hub`, a background task started with the first subscriber) and fans every
notification out to its subscribers' queues as a server-sent-event message. A slow subscriber loses its
oldest events, never blocks the others. The listener reconnects after a database restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import psycopg
from sqlalchemy import make_url

log = logging.getLogger("onemap.live")

CHANNELS = {"tickets": "onemap_tickets", "registry": "onemap_registry", "alarms": "onemap_alarms",
            "workers": "onemap_workers", "sensors": "onemap_sensors", "cameras": "onemap_cameras"}
QUEUE_SIZE = 1000
RETRY_S = 2.0

def event_text(name: str, payload: str) -> str:
    """One SSE message; the payload is passed on as JSON (plain text is wrapped as {"payload": ...})."""
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        data = {"payload": payload}
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def libpq_dsn(sqlalchemy_url: str) -> str:
    """psycopg's connection string for the API's SQLAlchemy URL (driver suffix dropped)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Hub:
    """One LISTEN connection per process, fanned out to every subscriber's queue."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.task: asyncio.Task | None = None
        self.listening = asyncio.Event()

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.subscribers.discard(queue)

    def publish(self, channel: str, payload: str) -> None:
        name = next((k for k, v in CHANNELS.items() if v == channel), channel)
        message = event_text(name, payload)
        for queue in list(self.subscribers):
            if queue.full():  # a stalled screen drops its oldest event
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - database gone: retry, screens keep their stream
                self.listening.clear()
                log.warning("live listener lost its connection (%s); retrying", type(exc).__name__)
                await asyncio.sleep(RETRY_S)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            for channel in CHANNELS.values():
                await conn.execute(f"LISTEN {channel}")
            self.listening.set()
            async for note in conn.notifies():
                self.publish(note.channel, note.payload)
