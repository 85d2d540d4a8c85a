"""Cameras analysed continuously (持续分析): every camera sampled at its own rate against the wall
clock, the frames due at the same moment batched into one YOLO call, until told to stop.

:class:`layers.vision.runner.Runner` processes sources as fast as they give frames (a file, a test).
A live service is paced instead: a camera at 0.5 frame/s is looked at every 2 s, however fast the
machine is, so twelve cameras cost six frames a second; if the machine falls behind, frames are
dropped rather than queued (a stale frame is worth nothing to the map). Video files loop in real
time (:class:`LoopingVideo`), which is how the demo city's cameras stand in for live streams.

A failing round (the database restarting, a disk full) is logged, rolled back and retried after a
pause; the loop ends only when ``stop`` is set. At the end the cameras it served are marked offline
("analysis stopped") and their active alarms ended, so the map does not show a dead service's
cameras as online or alarming; alarms an earlier run could not end (it was killed) are ended at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from gis.errors import InvalidInput, NotFound, OneMapError
from layers.cameras import alarms
from layers.cameras.models import Camera, Detection
from layers.vision.runner import Detector, Feed, Runner
from layers.vision.store import DatabaseSink, feed_for

log = logging.getLogger("onemap.vision")
RETRY_S = 5.0
PRUNE_EVERY_S = 600.0


def run_paced(runner: Runner, intervals: dict[str, float], *, stop: threading.Event | None = None,
              max_rounds: int | None = None, clock: Callable[[], float] = time.time,
              sleep: Callable[[float], Any] | None = None,
              on_error: Callable[[Exception], None] | None = None,
              after_round: Callable[[float], None] | None = None) -> list[Feed]:
    """Process each feed every ``intervals[camera_id]`` seconds until ``stop`` is set, every source
    has ended, or ``max_rounds`` batches are done. Feeds due together go in one batch. ``clock`` and
    ``sleep`` default to the wall clock and waiting on ``stop`` (a test passes a simulated pair)."""
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    live = list(runner.feeds)
    due_at = {f.camera_id: clock() for f in live}
    rounds = 0
    while live and not stop.is_set() and (max_rounds is None or rounds < max_rounds):
        now = clock()
        ready = sorted((f for f in live if due_at[f.camera_id] <= now), key=lambda f: due_at[f.camera_id])
        if not ready:
            sleep(max(0.0, min(due_at[f.camera_id] for f in live) - now))
            continue
        batch = []
        for feed in ready[: runner.batch]:
            got = runner._pull(feed)
            step = intervals[feed.camera_id]
            nxt = due_at[feed.camera_id] + step
            due_at[feed.camera_id] = nxt if nxt > now else now + step  # behind: skip the missed frames
            if got is None:
                live.remove(feed)
                runner.retired.append(feed)
                continue
            batch.append((feed, *got))
        if not batch:
            continue
        try:
            runner.process(batch)
        except Exception as exc:  # noqa: BLE001 - one bad round must not end a long-running service
            if on_error is None:
                raise
            on_error(exc)
            sleep(RETRY_S)
        else:
            if after_round is not None:
                after_round(now)
        rounds += 1
    return runner.feeds + [f for f in runner.retired if f not in runner.feeds]


def camera_ids_with_source(session: Session) -> list[str]:
    return list(session.scalars(select(Camera.id).where(Camera.source != "").order_by(Camera.id)))


def serve_cameras(factory: sessionmaker[Session], camera_ids: list[str] | None = None, *,
                  weights: str | Path | None = None, imgsz: int | None = None, fps: float | None = None,
                  batch: int | None = None, keyframe_dir: Path | None = None, stop: threading.Event | None = None,
                  max_rounds: int | None = None, keep_hours: float | None = None,
                  echo: Callable[[str], Any] = print) -> list[Feed]:
    """Analyse cameras (all with a source when ``camera_ids`` is None) in real time, videos looping,
    until ``stop`` is set (or ``max_rounds`` batches). Each camera runs at ``fps`` or its own
    ``sample_fps``. A camera whose source cannot be opened is marked ``error`` and the others run.
    ``keep_hours``: every 10 minutes, delete these cameras' detections older than that (a demo left
    running for days keeps its detections table, and the heat layer over it, small)."""
    detector = Detector(weights, imgsz=imgsz)
    session = factory()
    try:
        ids = camera_ids if camera_ids is not None else camera_ids_with_source(session)
        if not ids:
            raise InvalidInput("no camera has a source to analyse (register cameras with a video, folder or URL)")
        feeds, intervals = [], {}
        for cid in ids:
            cam = session.get(Camera, cid)
            if cam is None:
                raise NotFound(f"no camera {cid}")
            try:
                feed = feed_for(session, cid, loop=True)
            except OneMapError as exc:
                cam.status, cam.status_note = "error", exc.message
                echo(f"{cid}: {exc.message}")
                continue
            feeds.append(feed)
            intervals[cid] = 1.0 / (fps or cam.sample_fps or 1.0)
        ended = alarms.close_stale(session, [f.camera_id for f in feeds], at=datetime.now(UTC))
        session.commit()
        if ended:
            echo(f"ended {ended} alarm(s) left active by an earlier run")
        runner = Runner(detector, feeds, sink=DatabaseSink(session, keyframe_dir=keyframe_dir, commit=True),
                        batch=batch)
        for feed in runner.retired:
            echo(f"{feed.camera_id}: {feed.note}")
        served = [f.camera_id for f in runner.feeds]
        rate = sum(1.0 / intervals[c] for c in served)
        echo(f"analysing {len(served)} camera(s) at {rate:.1f} frames/s in all, model {detector.path.name}")

        def failed(exc: Exception) -> None:
            session.rollback()
            log.warning("vision round failed (%s: %s); retrying", type(exc).__name__, exc)
            echo(f"round failed ({type(exc).__name__}: {exc}); retrying in {RETRY_S:.0f} s")

        last_prune = [0.0]

        def prune(now: float) -> None:
            if keep_hours is None or now - last_prune[0] < PRUNE_EVERY_S:
                return
            last_prune[0] = now
            gone = session.connection().execute(delete(Detection).where(
                Detection.camera_id.in_(served),
                Detection.at < datetime.fromtimestamp(now - keep_hours * 3600.0, UTC))).rowcount
            session.commit()
            if gone:
                echo(f"deleted {gone} detections older than {keep_hours:g} h")

        try:
            return run_paced(runner, intervals, stop=stop, max_rounds=max_rounds, on_error=failed, after_round=prune)
        finally:
            _mark_stopped(session, served)
    finally:
        session.close()


def _mark_stopped(session: Session, camera_ids: list[str]) -> None:
    """Cameras offline ("analysis stopped"); their active alarms end, since nothing watches them now."""
    try:
        session.rollback()
        for cam in session.scalars(select(Camera).where(Camera.id.in_(camera_ids), Camera.status == "online")):
            cam.status, cam.status_note = "offline", "analysis stopped"
        alarms.close_stale(session, camera_ids, at=datetime.now(UTC), note="分析服务停止，告警已结束")
        session.commit()
    except Exception as exc:  # noqa: BLE001 - shutting down: the database may already be gone
        log.warning("could not mark cameras offline: %s", exc)
