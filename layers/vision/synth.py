"""Deterministic synthetic street scenes (合成街景) with YOLO labels, and synthetic video.

Why: no weights can be downloaded here, so the project trains its own small detector on scenes it
draws itself, and the demo city's cameras play videos drawn the same way. A scene is a road with lane
marks between a building band and a pavement; people are a head over a coloured torso and legs,
vehicles a coloured body with windows and two wheels. Everything is drawn from a seeded
``numpy.random.Generator``, so the same seed gives the same pixels on every machine.

OpenCV is imported only where pixels are drawn or written, so the demo loader can lay out the
demo cameras' rule regions (:func:`demo_scene`) on an install without the vision extra.

Classes follow COCO's names (``person``, ``car``) so rules written for the demo model also work with a
user's COCO-trained yolo11n.pt.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    import cv2  # lazy: the scenes' geometry (demo_scene) needs no OpenCV
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
    import cv2  # lazy: the scenes' geometry (demo_scene) needs no OpenCV
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
    import cv2  # lazy: the scenes' geometry (demo_scene) needs no OpenCV
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
    import cv2  # lazy: the scenes' geometry (demo_scene) needs no OpenCV
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


def render(actors: list, t: float, width: int, height: int, seed: int = 0,
           base: np.ndarray | None = None) -> tuple[np.ndarray, list[Thing]]:
    """One video frame at time ``t``: a fixed background (the same seed, or ``base``) and the actors
    (anything with ``cls``, ``size``, ``seed`` and ``where(t)``) on it."""
    img = background(np.random.default_rng(seed), width, height) if base is None else base.copy()
    things = []
    placed = [(actor, actor.where(t)) for actor in actors]
    for actor, pos in sorted(((a, p) for a, p in placed if p is not None), key=lambda ap: ap[1][1]):  # far first
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
    import cv2  # lazy: the scenes' geometry (demo_scene) needs no OpenCV
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    for _, img, _ in frames(seconds, fps, width, height, seed):
        writer.write(img)
    writer.release()
    return path


# ----------------------------------------------------------------------------- the demo city's cameras

DEMO_PERIOD_S = 30.0  # the demo cameras' videos loop seamlessly after this many seconds


@dataclass(frozen=True)
class Route:
    """An actor following waypoints ``(t, x, y)``, straight lines in between; not in view before the
    first waypoint or after the last."""

    cls: int
    size: float
    keys: tuple[tuple[float, float, float], ...]
    seed: int = 0

    def where(self, t: float) -> tuple[float, float] | None:
        ts = [k[0] for k in self.keys]
        if t < ts[0] or t > ts[-1]:
            return None
        return (float(np.interp(t, ts, [k[1] for k in self.keys])),
                float(np.interp(t, ts, [k[2] for k in self.keys])))


@dataclass(frozen=True)
class DemoScene:
    """One demo camera's loop: who moves where, and the rule regions (image pixels) that fit it."""

    width: int
    height: int
    seed: int
    period_s: float
    actors: tuple[Route, ...]
    crowd_roi: tuple[tuple[float, float], ...]  # where the group gathers
    parking_roi: tuple[tuple[float, float], ...]  # the no-parking kerb where a car stops
    zone_roi: tuple[tuple[float, float], ...]  # a closed work zone someone walks into


def _box(x1: float, y1: float, x2: float, y2: float) -> tuple[tuple[float, float], ...]:
    return ((x1, y1), (x2, y1), (x2, y2), (x1, y2))


def demo_scene(width: int = 480, height: int = 320, seed: int = 0, period_s: float = DEMO_PERIOD_S) -> DemoScene:
    """A street loop in which, every ``period_s`` seconds: a group of five gathers in the middle of
    the pavement and disperses (crowd), a car pulls into the no-parking kerb, stays about 16 s and
    leaves (parking), cars pass on the far lane without stopping (dwell keeps them out), a walker
    crosses, someone steps into a closed work zone (object present) — and one car stays legally
    parked all along. Every route is periodic, so the loop has no jump. Odd seeds mirror the street,
    seeds move people and colours, so no two cameras look alike."""
    rng = np.random.default_rng(seed)
    W, H, P = float(width), float(height), float(period_s)
    s = min(W, H) / 320.0
    k = P / 30.0  # the script below is written for 30 s
    mirror = seed % 2 == 1

    def X(x: float) -> float:
        return W - x if mirror else x

    def route(cls: int, size: float, keys, tag: int) -> Route:
        return Route(cls, size * s, tuple((t * k, X(x), y) for t, x, y in keys), seed=seed * 100 + tag)

    actors = [route(CAR, 80, [(0, 0.14 * W, 0.64 * H), (30, 0.14 * W, 0.64 * H)], 1)]  # parked legally
    kerb_x = rng.uniform(0.6, 0.72) * W
    actors.append(route(CAR, 90, [(2, -0.2 * W, 0.74 * H), (6, kerb_x, 0.74 * H), (22, kerb_x, 0.74 * H),
                                  (26, 1.2 * W, 0.74 * H)], 2))
    for i, start in enumerate((3.0, 17.0)):  # through traffic on the far lane
        t0 = start + rng.uniform(-1, 1)
        actors.append(route(CAR, 75, [(t0, 1.2 * W, 0.53 * H), (t0 + 6, -0.2 * W, 0.53 * H)], 3 + i))
    spread = (0.05, 0.15, 0.25, 0.77, 0.9)
    for i, x0 in enumerate(spread):
        sx = (x0 + rng.uniform(-0.02, 0.02)) * W
        tx = (0.5 + 0.075 * (i - 2)) * W
        y = (0.945 - 0.015 * (i % 2)) * H
        gather, leave = 2 + rng.uniform(0, 1), 19 + rng.uniform(0, 1)
        actors.append(route(PERSON, rng.uniform(48, 56), [(0, sx, y), (gather, sx, y), (gather + 4, tx, y),
                                                          (leave, tx, y), (leave + 4, sx, y), (30, sx, y)], 10 + i))
    actors.append(route(PERSON, 45, [(0, -0.05 * W, 0.59 * H), (30, 1.05 * W, 0.59 * H)], 20))  # a walker
    actors.append(route(PERSON, 42, [(9, 1.05 * W, 0.47 * H), (12, 0.86 * W, 0.47 * H), (18, 0.86 * W, 0.47 * H),
                                     (21, 1.05 * W, 0.47 * H)], 21))  # into the work zone and out

    def roi(x1: float, y1: float, x2: float, y2: float) -> tuple[tuple[float, float], ...]:
        a, b = sorted((X(x1 * W), X(x2 * W)))
        return tuple((round(x, 1), round(y, 1)) for x, y in _box(a, y1 * H, b, y2 * H))

    return DemoScene(width, height, seed, P, tuple(actors), crowd_roi=roi(0.32, 0.84, 0.68, 1.0),
                     parking_roi=roi(0.42, 0.66, 0.97, 0.82), zone_roi=roi(0.74, 0.4, 0.99, 0.5))


def scene_frames(scene: DemoScene, fps: float) -> Iterator[tuple[float, np.ndarray, list[Thing]]]:
    """(t, frame, ground truth) over one loop of a demo scene; the background is drawn once."""
    base = background(np.random.default_rng(scene.seed), scene.width, scene.height)
    for i in range(int(round(scene.period_s * fps))):
        t = i / fps
        img, things = render(list(scene.actors), t, scene.width, scene.height, scene.seed, base=base)
        yield t, img, things


def write_scene_video(path: Path, scene: DemoScene, *, fps: float = 2.0) -> Path:
    """One loop of a demo scene as MJPG in .avi (what the demo cameras play, over and over)."""
    import cv2  # lazy: the scenes' geometry (demo_scene) needs no OpenCV
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, (scene.width, scene.height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {tmp}")
    for _, img, _ in scene_frames(scene, fps):
        writer.write(img)
    writer.release()
    tmp.replace(path)  # a reader never sees half a video
    return path
