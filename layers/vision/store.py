"""Where the runner's output goes: detections into PostGIS, each camera's latest annotated frame and
alarm key frames onto disk, events into alarms.

Kept apart from the runner so the loop can be tested without a database (``NullSink``) and the
database side without a model. Detections go in with one multi-row INSERT per frame; their map points
are resolved to grids in one vectorised call. The latest frame is replaced after the commit, stamped
with the detections' exact time (:mod:`layers.cameras.frames`), for ``GET /cameras/{id}/frame``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from gis.errors import NotFound
from gis.locate import locate_many
from layers.cameras import alarms, frames
from layers.cameras.calibration import Calibration
from layers.cameras.models import Camera, CameraRule, Detection, KeyFrame
from layers.cameras.service import rule_of
from layers.vision import vision_settings
from layers.vision.runner import (
    Feed,
    Frame,
    LoopingVideo,
    annotate,
    offset_for,
    open_source,
    write_key_frame,
)


def feed_for(session: Session, camera_id: str, *, source: str | None = None, start: float | None = None,
             loop: bool = False, clock: Callable[[], float] = time.time) -> Feed:
    """A runner feed for a registered camera: its source (or ``source``), rules and calibration.
    ``loop``: a video plays in a loop against ``clock`` (see :class:`LoopingVideo`)."""
    cam = session.get(Camera, camera_id)
    if cam is None:
        raise NotFound(f"no camera {camera_id}")
    rows = session.scalars(select(CameraRule).where(CameraRule.camera_id == camera_id,
                                                    CameraRule.enabled.is_(True)).order_by(CameraRule.id)).all()
    src = open_source(source or cam.source, None if source else cam.source_kind, cam.sample_fps, loop=loop,
                      offset_s=offset_for(camera_id), clock=clock)
    calib = Calibration.from_dict(cam.calibration) if cam.calibration else None
    feed = Feed(camera_id, src, [rule_of(r) for r in rows], calib)
    if isinstance(src, LoopingVideo):
        feed.start = src.start  # its t is wall-clock seconds since then
    if start is not None:
        feed.start = start
    return feed


class DatabaseSink:
    """Writes each processed frame: its detections, the camera's status and latest annotated frame
    (``latest.jpg``, see :mod:`layers.cameras.frames`), alarms with their key frames.

    ``keep_every_s``: also keep a key frame (file + row) this often without an alarm; None keeps
    alarm frames only, which is what a long-running camera wants (no file per frame piling up).
    ``commit=True`` commits per frame (long runs), else only flushes (the caller's transaction)."""

    def __init__(self, session: Session, *, keyframe_dir: Path | None = None, keep_every_s: float | None = None,
                 latest: bool = True, commit: bool = False) -> None:
        self.session, self.commit, self.latest = session, commit, latest
        self.folder = Path(keyframe_dir or vision_settings().keyframe_dir)
        self.keep_every_s = keep_every_s
        self.last_key: dict[str, float] = {}

    def _camera(self, camera_id: str) -> Camera:
        cam = self.session.get(Camera, camera_id)
        if cam is None:
            raise NotFound(f"no camera {camera_id}")
        return cam

    def _detections(self, fr: Frame, when: datetime) -> None:
        if not fr.seen:
            return
        grids: list[str | None] = [None] * len(fr.seen)
        points: list[str | None] = [None] * len(fr.seen)
        if fr.lonlat is not None:
            ok = np.all(np.isfinite(fr.lonlat), axis=1)
            if ok.any():
                found = locate_many(self.session, fr.lonlat[ok, 0], fr.lonlat[ok, 1])["grid_code"].tolist()
                for j, i in enumerate(np.flatnonzero(ok)):
                    grids[i] = found[j]
                    points[i] = f"SRID=4326;POINT({fr.lonlat[i, 0]:.7f} {fr.lonlat[i, 1]:.7f})"
        rows = [{"camera_id": fr.feed.camera_id, "at": when, "class_name": s.cls, "confidence": s.conf,
                 "x1": s.box[0], "y1": s.box[1], "x2": s.box[2], "y2": s.box[3], "track_id": s.track_id,
                 "geom": points[i], "grid_code": grids[i]} for i, s in enumerate(fr.seen)]
        self.session.execute(insert(Detection), rows)

    def _key_frame(self, fr: Frame, image: np.ndarray) -> str | None:
        due = (self.keep_every_s is not None
               and fr.at - self.last_key.get(fr.feed.camera_id, -1e18) >= self.keep_every_s)
        if not (fr.events or due):
            return None
        self.last_key[fr.feed.camera_id] = fr.at
        return str(write_key_frame(self.folder, fr.feed.camera_id, fr.at, image))

    def frame(self, fr: Frame) -> None:
        cam = self._camera(fr.feed.camera_id)
        when = datetime.fromtimestamp(fr.at, UTC)
        self._detections(fr, when)
        cam.last_frame_at, cam.status, cam.status_note, cam.updated_at = when, "online", None, when
        image = annotate(fr.image, fr.seen, fr.feed.rules)
        key = self._key_frame(fr, image)
        for ev in fr.events:
            alarms.handle(self.session, cam, ev, at=when, calibration=fr.feed.calibration, key_frame=key)
        if key and not fr.events:
            self.session.add(KeyFrame(camera_id=cam.id, at=when, path=key, detections=len(fr.seen)))
        self._done()
        if self.latest:  # after the commit: whoever sees this frame finds its detections stored
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                frames.write_latest(self.folder, cam.id, jpeg.tobytes(), when)

    def status(self, feed: Feed) -> None:
        cam = self.session.get(Camera, feed.camera_id)
        if cam is not None:
            cam.status, cam.status_note = feed.status, feed.note
            self._done()

    def _done(self) -> None:
        if self.commit:
            self.session.commit()
        else:
            self.session.flush()
