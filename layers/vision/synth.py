"""Deterministic synthetic street scenes (合成街景) with YOLO labels, and synthetic video.

Why: no weights can be downloaded here, so the project trains its own small detector on scenes it
draws itself, and the demo city's cameras play videos drawn the same way. A scene is a road with lane
marks between a building band and a pavement; people are a head over a coloured torso and legs,
vehicles a coloured body with windows and two wheels. Everything is drawn from a seeded
``numpy.random.Generator``, so the same seed gives the same pixels on every machine.

Classes follow COCO's names (``person``, ``car``) so rules written for the demo model also work with a
user's COCO-trained yolo11n.pt.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLASSES = ("person", "car")
PERSON, CAR = 0, 1


@dataclass(frozen=True)
class Thing:
    """One drawn object: class index and its box in pixels (x1, y1, x2, y2)."""

    cls: int
    box: tuple[float, float, float, float]


def _colour(rng: np.random.Generator, low: int = 40, high: int = 255) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rng.integers(low, high, 3))
    return r, g, b


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Buildings, road with dashed lane marks, pavement; lightly noisy so the model cannot cheat."""
    img = np.empty((height, width, 3), np.uint8)
    top, bottom = int(height * rng.uniform(0.2, 0.35)), int(height * rng.uniform(0.8, 0.9))
    img[:top] = _colour(rng, 90, 200)
    for x in range(0, width, int(rng.integers(30, 60))):  # building facades
        cv2.rectangle(img, (x, int(rng.integers(0, top // 2 + 1))), (x + int(rng.integers(20, 50)), top),
                      _colour(rng, 80, 220), -1)
    img[top:bottom] = int(rng.integers(60, 100))
    img[bottom:] = int(rng.integers(150, 190))
    mid = (top + bottom) // 2
    for x in range(int(rng.integers(0, 20)), width, 40):
        cv2.rectangle(img, (x, mid - 1), (x + 20, mid + 1), (235, 235, 235), -1)
    noise = rng.normal(0.0, 6.0, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def draw_person(img: np.ndarray, x: float, foot_y: float, h: float, rng: np.random.Generator) -> Thing:
    """A standing figure of height ``h`` with its feet at (x, foot_y)."""
    w = h * 0.36
    x1, y1, x2 = int(x - w / 2), int(foot_y - h), int(x + w / 2)
    r = max(2, int(w * 0.32))
    skin = (int(rng.integers(120, 200)), int(rng.integers(150, 210)), int(rng.integers(190, 240)))
    cv2.circle(img, (int(x), y1 + r), r, skin, -1)
    torso_bottom = int(foot_y - h * 0.45)
    cv2.rectangle(img, (x1, y1 + 2 * r), (x2, torso_bottom), _colour(rng), -1)
    legs = _colour(rng, 20, 120)
    cv2.rectangle(img, (x1 + 1, torso_bottom), (int(x) - 1, int(foot_y)), legs, -1)
    cv2.rectangle(img, (int(x) + 1, torso_bottom), (x2 - 1, int(foot_y)), legs, -1)
    return Thing(PERSON, (float(x1), float(y1), float(x2), float(foot_y)))


def draw_car(img: np.ndarray, x: float, bottom_y: float, w: float, rng: np.random.Generator) -> Thing:
    """A side-on vehicle of width ``w``, wheels resting on ``bottom_y``."""
    h = w * 0.45
    x1, x2, y1 = int(x - w / 2), int(x + w / 2), int(bottom_y - h)
    wheel = max(3, int(h * 0.22))
    body_bottom = int(bottom_y - wheel)
    cv2.rectangle(img, (x1, int(y1 + h * 0.35)), (x2, body_bottom), _colour(rng), -1)
    cabin = _colour(rng)
    cv2.rectangle(img, (int(x1 + w * 0.2), y1), (int(x2 - w * 0.2), int(y1 + h * 0.4)), cabin, -1)
    glass = (int(rng.integers(180, 230)), int(rng.integers(150, 200)), int(rng.integers(90, 140)))
    cv2.rectangle(img, (int(x1 + w * 0.25), y1 + 3), (int(x2 - w * 0.25), int(y1 + h * 0.35)), glass, -1)
    for cx in (int(x1 + w * 0.22), int(x2 - w * 0.22)):
        cv2.circle(img, (cx, body_bottom), wheel, (25, 25, 25), -1)
    return Thing(CAR, (float(x1), float(y1), float(x2), float(bottom_y)))


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def scene(rng: np.random.Generator, width: int = 320, height: int = 320,
          max_people: int = 6, max_cars: int = 3) -> tuple[np.ndarray, list[Thing]]:
    """One random street scene and its objects (boxes overlap by at most IoU 0.15)."""
    img = background(rng, width, height)
    scale = min(width, height) / 320.0
    things: list[Thing] = []
    wanted = [CAR] * int(rng.integers(0, max_cars + 1)) + [PERSON] * int(rng.integers(0, max_people + 1))
    for cls in wanted:
        for _ in range(20):  # rejection sampling for a free spot
            trial = img.copy()
            if cls == CAR:
                w = rng.uniform(50, 110) * scale
                thing = draw_car(trial, rng.uniform(w / 2, width - w / 2), rng.uniform(0.5, 0.92) * height,
                                 w, rng)
            else:
                h = rng.uniform(28, 70) * scale
                thing = draw_person(trial, rng.uniform(h * 0.2, width - h * 0.2),
                                    rng.uniform(max(h, 0.45 * height), 0.98 * height), h, rng)
            if thing.box[1] >= 0 and all(_iou(thing.box, t.box) < 0.15 for t in things):
                img = trial
                things.append(thing)
                break
    return img, things


def yolo_labels(things: list[Thing], width: int, height: int) -> str:
    """YOLO txt: one ``cls cx cy w h`` line per object, normalised to the image size."""
    lines = []
    for t in things:
        x1, y1, x2, y2 = t.box
        lines.append(f"{t.cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                     f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def write_split(folder: Path, n: int, seed: int, size: int = 320) -> None:
    """``n`` scenes as ``folder/images/*.png`` + ``folder/labels/*.txt``."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, things = scene(rng, size, size)
        cv2.imwrite(str(folder / "images" / f"{i:05d}.png"), img)
        (folder / "labels" / f"{i:05d}.txt").write_text(yolo_labels(things, size, size))


def write_dataset(out: Path, *, n_train: int = 200, n_val: int = 40, size: int = 320, seed: int = 0) -> Path:
    """A YOLO dataset (train and held-out val) and its data.yaml; returns the yaml path."""
    out = Path(out).resolve()
    write_split(out / "train", n_train, seed, size)
    write_split(out / "val", n_val, seed + 1_000_003, size)
    yaml = out / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    yaml.write_text(f"path: {out}\ntrain: train/images\nval: val/images\nnames:\n{names}\n")
    return yaml


# ----------------------------------------------------------------------------- video

@dataclass(frozen=True)
class Actor:
    """A moving or parked object in a synthetic video: position at time t is start + velocity * t,
    clipped to ``stop_at`` seconds (after which it stands still: a car that parks)."""

    cls: int
    x: float
    y: float
    size: float
    vx: float = 0.0
    vy: float = 0.0
    stop_at: float | None = None
    appear_at: float = 0.0
    seed: int = 0

    def where(self, t: float) -> tuple[float, float] | None:
        if t < self.appear_at:
            return None
        moving = t - self.appear_at if self.stop_at is None else min(t, self.stop_at) - self.appear_at
        return self.x + self.vx * moving, self.y + self.vy * moving


def street_actors(width: int, height: int, seed: int = 0) -> list[Actor]:
    """The demo street: a car parked from the start, one that arrives and parks at t=4 s, a group
    of people gathering in the middle, and walkers passing through."""
    s = min(width, height) / 320.0
    rng = np.random.default_rng(seed)
    actors = [Actor(CAR, 0.18 * width, 0.62 * height, 80 * s, seed=1),
              Actor(CAR, -40 * s, 0.78 * height, 90 * s, vx=0.25 * width, stop_at=3.5, seed=2)]
    for i in range(5):  # a crowd that gathers in the middle of the frame
        tx, ty = (0.5 + 0.07 * (i - 2)) * width, (0.93 - 0.02 * (i % 2)) * height
        sx = tx + rng.uniform(-0.3, 0.3) * width
        actors.append(Actor(PERSON, sx, ty, 55 * s, vx=(tx - sx) / 3.0, stop_at=3.0, seed=10 + i))
    actors.append(Actor(PERSON, width * 1.05, 0.55 * height, 45 * s, vx=-0.12 * width, seed=20))
    return actors


def render(actors: list[Actor], t: float, width: int, height: int, seed: int = 0) -> tuple[np.ndarray, list[Thing]]:
    """One video frame at time ``t``: a fixed background (the same seed) and the actors on it."""
    img = background(np.random.default_rng(seed), width, height)
    things = []
    for actor in sorted(actors, key=lambda a: a.y):  # far first
        pos = actor.where(t)
        if pos is None:
            continue
        rng = np.random.default_rng(actor.seed)  # stable colours frame to frame
        if actor.cls == CAR:
            thing = draw_car(img, pos[0], pos[1], actor.size, rng)
        else:
            thing = draw_person(img, pos[0], pos[1], actor.size, rng)
        x1, y1, x2, y2 = thing.box
        if x2 > 0 and x1 < width:
            things.append(Thing(thing.cls, (max(x1, 0.0), y1, min(x2, float(width)), y2)))
    return img, things


def frames(seconds: float, fps: float, width: int = 480, height: int = 320,
           seed: int = 0) -> Iterator[tuple[float, np.ndarray, list[Thing]]]:
    """(t, frame, ground truth) of the demo street video, without touching the disk."""
    actors = street_actors(width, height, seed)
    for i in range(int(round(seconds * fps))):
        t = i / fps
        img, things = render(actors, t, width, height, seed)
        yield t, img, things


def write_video(path: Path, *, seconds: float = 12.0, fps: float = 5.0, width: int = 480, height: int = 320,
                seed: int = 0) -> Path:
    """The demo street as a video file (MJPG in .avi: OpenCV writes it without any codec download)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    for _, img, _ in frames(seconds, fps, width, height, seed):
        writer.write(img)
    writer.release()
    return path
