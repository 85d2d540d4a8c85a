"""The vision runner (视频分析): frames → YOLO (batched across cameras) → ByteTrack → rules → sink.

Why this shape:
- One model serves every camera: frames due from all cameras are stacked into one ``predict`` batch,
  which is where a CPU gets its throughput (see ``onemap bench vision``).
- One ByteTrack per camera (ultralytics' tracker API): ``model.track(persist=True)`` keeps a single
  tracker for a list of images, which would mix up cameras in one batch. Every detection is kept (and
  drawn, and stored); the track id is attached where a track holds it, which rules need for dwell.
- Each camera fails alone: an unreadable image is skipped and counted, a video that ends retires its
  camera, a stream that refuses is retried with exponential back-off and marked offline after
  ``reconnect_tries``, a rule naming a class the model lacks stops that camera at start; the others
  keep running. Errors are domain errors (``InvalidInput``) with a readable message.
- Offline: :func:`layers.vision.offline` runs before ultralytics is imported; boxes are drawn with
  OpenCV's built-in Hershey font, so ultralytics' plotting (and its Arial download) is never used.
- :meth:`Runner.run` reads sources as fast as they give frames (files, tests); a live service paces
  each camera against the clock instead (:mod:`layers.vision.live`).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from gis.errors import InvalidInput, OneMapError
from layers.cameras.calibration import Calibration
from layers.cameras.frames import camera_folder
from layers.cameras.rules import AlarmEvent, Rule, RuleEngine, Seen
from layers.vision import offline, vision_settings

MAX_BAD_FRAMES = 20  # unreadable frames in a row before a camera is marked error
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class SourceEnded(OneMapError):
    """A video file or image folder has no more frames (not an error for the other cameras)."""


class CameraOffline(OneMapError):
    """A stream kept refusing after every reconnect attempt."""


# ----------------------------------------------------------------------------- model


class Detector:
    """A YOLO detection model loaded from a local file, predicting on batches of BGR frames."""

    def __init__(self, weights: str | Path | None = None, *, conf: float | None = None,
                 imgsz: int | None = None, device: str = "cpu") -> None:
        settings = vision_settings()
        path = Path(weights or settings.yolo_weights)
        if not path.is_file():
            raise InvalidInput(f"YOLO weights {path} not found: set ONEMAP_YOLO_WEIGHTS to a local .pt file "
                               f"(nothing is downloaded)")
        offline()
        from ultralytics import YOLO

        try:
            self.model = YOLO(str(path), task="detect")
            task = self.model.task
            names = self.model.names
        except Exception as exc:  # noqa: BLE001 - any failure to load means "not usable weights"
            raise InvalidInput(f"{path} is not a YOLO weights file ({type(exc).__name__})") from exc
        if task != "detect":
            raise InvalidInput(f"{path} is a {task} model; OneMap needs a detection model")
        self.path, self.names = path, {int(k): str(v) for k, v in names.items()}
        self.conf = conf if conf is not None else settings.yolo_conf
        self.imgsz = imgsz or settings.yolo_imgsz
        self.device = device

    def predict(self, frames: list[np.ndarray]) -> list[Any]:
        """ultralytics Results, one per frame, in one forward pass over the batch."""
        kwargs: dict[str, Any] = {"conf": self.conf, "device": self.device, "verbose": False, "batch": max(1, len(frames))}
        if self.imgsz:
            kwargs["imgsz"] = self.imgsz
        return list(self.model.predict(frames, **kwargs))

    def detect(self, frames: list[np.ndarray]) -> list[list[Seen]]:
        """Plain detections (no tracking), as :class:`Seen` lists."""
        return [to_seen(self.names, r.boxes.xyxy.cpu().numpy(), r.boxes.conf.cpu().numpy(),
                        r.boxes.cls.cpu().numpy(), None) for r in self.predict(frames)]


def to_seen(names: dict[int, str], xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray,
            ids: np.ndarray | None) -> list[Seen]:
    return [Seen(names[int(c)], round(float(p), 4), tuple(float(v) for v in box),  # type: ignore[arg-type]
                 None if ids is None else int(i))
            for box, p, c, i in zip(xyxy, conf, cls, ids if ids is not None else [None] * len(cls), strict=True)]


def new_tracker() -> Any:
    """A ByteTrack instance with ultralytics' bundled bytetrack.yaml settings."""
    offline()
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    return BYTETracker(args=IterableSimpleNamespace(**YAML.load(check_yaml("bytetrack.yaml"))))


def track(tracker: Any, names: dict[int, str], result: Any) -> list[Seen]:
    """Update one camera's tracker with its frame's result. Every detection comes back with its
    box as detected; those a confirmed track holds carry the track id, the others (a new object,
    or one that moved too far between sparse samples to be matched yet) carry none. Storing only
    tracked boxes would leave objects in the frame without a box and off the map."""
    boxes = result.boxes.cpu().numpy()
    out = tracker.update(boxes, result.orig_img)
    ids = np.full(len(boxes), -1, dtype=np.int64)
    for row in out:  # [x1, y1, x2, y2, track_id, score, cls, idx]
        if 0 <= int(row[-1]) < len(ids):
            ids[int(row[-1])] = int(row[4])
    return [Seen(s.cls, s.conf, s.box, s.track_id if s.track_id is not None and s.track_id >= 0 else None)
            for s in to_seen(names, boxes.xyxy, boxes.conf, boxes.cls, ids)]


# ----------------------------------------------------------------------------- sources


class Source(Protocol):
    def next(self) -> tuple[float, np.ndarray]:
        """(seconds since the source started, BGR frame); raises SourceEnded / CameraOffline / InvalidInput."""


class ImageFolder:
    """Images in name order; an unreadable one raises InvalidInput for that frame and is skipped."""

    def __init__(self, folder: str | Path, sample_fps: float = 1.0) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidInput(f"image folder {folder} does not exist")
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.step, self.i = 1.0 / sample_fps, 0

    def next(self) -> tuple[float, np.ndarray]:
        if self.i >= len(self.files):
            raise SourceEnded(f"no more images ({len(self.files)} read)")
        path, t = self.files[self.i], self.i * self.step
        self.i += 1
        frame = cv2.imread(str(path))
        if frame is None:
            raise InvalidInput(f"unreadable image {path.name}")
        return t, frame


def _open_video(path: str | Path) -> tuple[Path, Any, float]:
    """(path, an opened cv2 capture, its frame rate), or a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"video file {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InvalidInput(f"video file {path.name} cannot be opened (not a video?)")
    return path, cap, cap.get(cv2.CAP_PROP_FPS) or 25.0


class VideoFile:
    """A video file sampled at ``sample_fps`` (frames in between are grabbed and dropped)."""

    def __init__(self, path: str | Path, sample_fps: float = 1.0) -> None:
        self.path, self.cap, self.fps = _open_video(path)
        self.every = max(1, int(round(self.fps / sample_fps)))
        self.index = 0

    def next(self) -> tuple[float, np.ndarray]:
        for _ in range(self.every - 1 if self.index else 0):
            if not self.cap.grab():
                return self._ended()
            self.index += 1
        ok, frame = self.cap.read()
        if not ok:
            return self._ended()
        t = self.index / self.fps
        self.index += 1
        return t, frame

    def _ended(self) -> tuple[float, np.ndarray]:
        self.cap.release()
        raise SourceEnded(f"video {self.path.name} ended after {self.index} frames")


class LoopingVideo:
    """A video file played in a loop against the wall clock (how the demo's cameras stand in for live
    streams): ``next()`` gives the frame on screen now, whenever it is asked. ``offset_s`` starts it
    part-way, so cameras playing similar videos are not in step."""

    def __init__(self, path: str | Path, *, offset_s: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.path, self.cap, self.fps = _open_video(path)
        self.count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if self.count <= 0:
            raise InvalidInput(f"video file {self.path.name} has no frames")
        self.duration = self.count / self.fps
        self.offset = offset_s % self.duration
        self.clock = clock
        self.start = clock()
        self.pos = 0  # the frame the capture reads next

    def next(self) -> tuple[float, np.ndarray]:
        elapsed = self.clock() - self.start
        index = int((elapsed + self.offset) * self.fps) % self.count
        if index != self.pos:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = self.cap.read()
        self.pos = index + 1
        if not ok or frame is None:
            self.pos = -1  # seek next time
            raise InvalidInput(f"video {self.path.name}: frame {index} unreadable")
        return elapsed, frame


class Stream:
    """An RTSP/HTTP stream with reconnect: waits base, 2×base, 4×base... then gives up (offline)."""

    def __init__(self, url: str, sample_fps: float = 1.0, *, tries: int | None = None,
                 base_s: float | None = None, sleep: Callable[[float], None] = time.sleep,
                 opener: Callable[[str], Any] = cv2.VideoCapture, clock: Callable[[], float] = time.monotonic) -> None:
        settings = vision_settings()
        self.url, self.sample_fps = url, sample_fps
        self.tries = settings.reconnect_tries if tries is None else tries
        self.base_s = settings.reconnect_base_s if base_s is None else base_s
        self.sleep, self.opener, self.clock = sleep, opener, clock
        self.cap: Any = None
        self.start = clock()
        self.waits: list[float] = []

    def _connect(self) -> None:
        for attempt in range(self.tries + 1):
            if attempt:
                wait = self.base_s * 2 ** (attempt - 1)
                self.waits.append(wait)
                self.sleep(wait)
            cap = self.opener(self.url)
            if cap is not None and cap.isOpened():
                self.cap = cap
                return
        raise CameraOffline(f"stream {self.url} refused {self.tries + 1} times; camera marked offline")

    def next(self) -> tuple[float, np.ndarray]:
        for _ in range(2):  # a dropped connection gets one full reconnect cycle
            if self.cap is None:
                self._connect()
            ok, frame = self.cap.read()
            if ok and frame is not None:
                return self.clock() - self.start, frame
            self.cap.release()
            self.cap = None
        raise CameraOffline(f"stream {self.url} stopped sending frames; camera marked offline")


def open_source(source: str, kind: str | None = None, sample_fps: float = 1.0, *, loop: bool = False,
                offset_s: float = 0.0, clock: Callable[[], float] = time.time) -> Source:
    """Pick the source type from ``kind`` or the text: URL → stream, folder → images, else video
    (with ``loop``, a video plays in a loop against the wall clock)."""
    if not source:
        raise InvalidInput("the camera has no source: give a video file, an image folder or a stream URL")
    if kind == "stream" or (kind is None and "://" in source):
        return Stream(source, sample_fps)
    if kind == "images" or (kind is None and Path(source).is_dir()):
        return ImageFolder(source, sample_fps)
    if loop:
        return LoopingVideo(source, offset_s=offset_s, clock=clock)
    return VideoFile(source, sample_fps)


def offset_for(camera_id: str) -> float:
    """A start offset in [0, 3600) s that is stable per camera (the same on every run)."""
    return zlib.crc32(camera_id.encode("utf-8")) % 3_600_000 / 1000.0


# ----------------------------------------------------------------------------- the loop


@dataclass
class Feed:
    """One camera as the runner sees it."""

    camera_id: str
    source: Source
    rules: list[Rule] = field(default_factory=list)
    calibration: Calibration | None = None
    start: float = field(default_factory=time.time)  # POSIX time of the source's t = 0
    engines: list[RuleEngine] = field(default_factory=list)
    tracker: Any = None
    frames: int = 0
    detections: int = 0
    skipped: int = 0
    status: str = "online"
    note: str | None = None
    events: list[AlarmEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Frame:
    """What the sink receives for one processed frame."""

    feed: Feed
    at: float  # POSIX seconds
    image: np.ndarray
    seen: list[Seen]
    lonlat: np.ndarray | None  # (n, 2) map points of the feet, NaN where not on the ground
    events: list[AlarmEvent]


class Sink(Protocol):
    def frame(self, frame: Frame) -> None: ...
    def status(self, feed: Feed) -> None: ...


class NullSink:
    def frame(self, frame: Frame) -> None:
        pass

    def status(self, feed: Feed) -> None:
        pass


class Runner:
    """Round-robin over cameras; each round takes up to ``batch`` due frames into one predict call."""

    def __init__(self, detector: Detector, feeds: list[Feed], *, sink: Sink | None = None,
                 batch: int | None = None) -> None:
        self.detector, self.sink = detector, sink or NullSink()
        self.batch = batch or vision_settings().batch
        self.feeds: list[Feed] = []
        for feed in feeds:
            try:
                for rule in feed.rules:
                    rule.check_classes(detector.names.values())
            except InvalidInput as exc:
                self._retire(feed, "error", exc.message)
                continue
            feed.engines = [RuleEngine(rule) for rule in feed.rules]
            feed.tracker = new_tracker()
            self.feeds.append(feed)
        self.retired: list[Feed] = [f for f in feeds if f not in self.feeds]

    def _retire(self, feed: Feed, status: str, note: str) -> None:
        feed.status, feed.note = status, note
        self.sink.status(feed)

    def _pull(self, feed: Feed) -> tuple[float, np.ndarray] | None:
        """The feed's next frame; None when its source ended or failed (the feed is retired).
        An unreadable frame is counted and skipped; ``MAX_BAD_FRAMES`` in a row retire the camera."""
        for _ in range(MAX_BAD_FRAMES):
            try:
                t, image = feed.source.next()
            except SourceEnded as exc:
                self._retire(feed, "offline" if isinstance(feed.source, Stream) else "online", exc.message)
                return None
            except CameraOffline as exc:
                self._retire(feed, "offline", exc.message)
                return None
            except InvalidInput as exc:  # one bad frame: count it, keep the camera
                feed.skipped, feed.note = feed.skipped + 1, exc.message
                continue
            return feed.start + t, image
        self._retire(feed, "error", f"{MAX_BAD_FRAMES} unreadable frames in a row; last: {feed.note}")
        return None

    def rounds(self) -> Iterator[list[tuple[Feed, float, np.ndarray]]]:
        """Batches of (feed, POSIX time, frame) until every source has ended or failed."""
        live = list(self.feeds)
        while live:
            due: list[tuple[Feed, float, np.ndarray]] = []
            for feed in list(live):
                got = self._pull(feed)
                if got is None:
                    live.remove(feed)
                    self.retired.append(feed)
                    continue
                due.append((feed, *got))
                if len(due) == self.batch:
                    yield due
                    due = []
            if due:
                yield due

    def process(self, due: list[tuple[Feed, float, np.ndarray]]) -> list[Frame]:
        results = self.detector.predict([image for _, _, image in due])
        out = []
        for (feed, at, image), result in zip(due, results, strict=True):
            seen = track(feed.tracker, self.detector.names, result)
            lonlat = None
            if feed.calibration is not None and seen:
                from layers.cameras.rules import feet

                pts = feet(seen)
                lonlat = np.column_stack(feed.calibration.project(pts[:, 0], pts[:, 1]))
            events = [ev for ev in (engine.step(at, seen) for engine in feed.engines) if ev is not None]
            feed.frames, feed.detections = feed.frames + 1, feed.detections + len(seen)
            feed.events.extend(events)
            frame = Frame(feed, at, image, seen, lonlat, events)
            self.sink.frame(frame)
            out.append(frame)
        return out

    def run(self, *, max_rounds: int | None = None) -> list[Feed]:
        """Process until the sources end (or ``max_rounds``); returns every feed with its counters."""
        for n, due in enumerate(self.rounds()):
            if max_rounds is not None and n >= max_rounds:
                break
            self.process(due)
        return self.feeds + [f for f in self.retired if f not in self.feeds]


# ----------------------------------------------------------------------------- key frames


def annotate(image: np.ndarray, seen: list[Seen], rules: list[Rule] | None = None) -> np.ndarray:
    """Boxes, class, confidence and track id, and the rules' regions, drawn with OpenCV's own font."""
    out = image.copy()
    for rule in rules or []:
        if rule.roi:
            cv2.polylines(out, [np.asarray(rule.roi, np.int32)], True, (0, 200, 255), 2)
    for s in seen:
        x1, y1, x2, y2 = (int(v) for v in s.box)
        colour = (0, 0, 255) if s.cls == "person" else (255, 128, 0)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{s.cls} {s.conf:.2f}" + (f" #{s.track_id}" if s.track_id is not None else "")
        cv2.putText(out, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1, cv2.LINE_AA)
    return out


def write_key_frame(folder: Path, camera_id: str, at: float, image: np.ndarray) -> Path:
    """Save a JPEG under ``folder/<camera>/<UTC time>.jpg``; returns its path."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(at)) + f"_{int(at * 1000) % 1000:03d}"
    path = camera_folder(folder, camera_id) / f"{stamp}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 85]):
        raise InvalidInput(f"cannot write key frame {path}")
    return path
