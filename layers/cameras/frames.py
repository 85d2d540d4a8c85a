"""Each camera's latest analysed frame (最新画面) on disk: written by the runner, served by the API.

One file per camera, ``<root>/<camera folder>/latest.jpg``, replaced atomically on every processed
frame (written beside it, then renamed), so a reader gets a whole frame, never half of one. The
frame's time travels with the file as its modification time, set to the exact microsecond the
detections were stored with: the reader takes bytes and time from the same open file, so the pair
cannot come from two different frames, and ``GET /detections?since=<that time>`` starts exactly at
that frame. No database row per frame: at one frame a second per camera that would be a write per
second per camera for nothing.

Pure standard library (no OpenCV): the API reads these files without the vision extra.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

LATEST = "latest.jpg"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAFE = re.compile(r"[A-Za-z0-9_-]{1,40}")


def camera_folder(root: str | Path, camera_id: str) -> Path:
    """The camera's folder under ``root``. Ids that are not plain ``[A-Za-z0-9_-]`` (Chinese, dots,
    slashes) get a readable, collision-free name instead, so no id can point outside ``root``."""
    if _SAFE.fullmatch(camera_id):
        return Path(root) / camera_id
    digest = hashlib.sha1(camera_id.encode("utf-8")).hexdigest()[:10]
    plain = re.sub(r"[^A-Za-z0-9_-]+", "_", camera_id).strip("_")[:24]
    return Path(root) / f"{plain or 'camera'}~{digest}"


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("frame time must be timezone-aware")
    return (at - EPOCH) // timedelta(microseconds=1)


def write_latest(root: str | Path, camera_id: str, jpeg: bytes, at: datetime) -> Path:
    """Replace the camera's latest frame with ``jpeg`` taken at ``at``; returns its path."""
    folder = camera_folder(root, camera_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LATEST
    tmp = folder / f".{LATEST}.{os.getpid()}.tmp"
    tmp.write_bytes(jpeg)
    ns = _micros(at) * 1000
    os.utime(tmp, ns=(ns, ns))
    os.replace(tmp, path)
    return path


def read_latest(root: str | Path, camera_id: str) -> tuple[bytes, datetime] | None:
    """(JPEG bytes, frame time) of the camera's latest frame, or None when there is none yet."""
    path = camera_folder(root, camera_id) / LATEST
    try:
        with open(path, "rb") as fh:
            ns = os.fstat(fh.fileno()).st_mtime_ns
            data = fh.read()
    except FileNotFoundError:
        return None
    return data, EPOCH + timedelta(microseconds=ns // 1000)


def time_text(at: datetime) -> str:
    """ISO 8601 in UTC with microseconds and ``Z`` (no ``+`` to escape when put back in a URL)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def drop_latest(root: str | Path, camera_id: str) -> None:
    """Forget a camera's latest frame (the camera was deleted: a new one with its id starts blank)."""
    (camera_folder(root, camera_id) / LATEST).unlink(missing_ok=True)
