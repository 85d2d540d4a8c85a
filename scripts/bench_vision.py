"""`onemap bench vision`: YOLO11n frames per second per CPU core at 640 px, batch 1 and 8.

Anchor: Ultralytics publishes 56.1 ms per 640 px image for YOLO11n on CPU with ONNX Runtime (the
"Speed CPU ONNX" column of its detection model table), i.e. about 17.8 frames/s on that machine. We
time the project's own yolo11n-architecture weights end to end (letterbox, inference, NMS) through
``YOLO.predict`` with PyTorch, and with ONNX Runtime when the export works offline (it needs the
``onnx`` and ``onnxruntime`` packages; nothing is installed at run time). The demo model has 2 classes
instead of COCO's 80, which makes only the last layer of the head smaller.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANCHOR_MS = 56.1  # Ultralytics, YOLO11n, CPU ONNX, 640 px
SIZE = 640


@dataclass(frozen=True)
class Figure:
    backend: str
    batch: int
    ms_per_image: float
    fps: float
    fps_per_core: float


def _frames(n: int) -> list[np.ndarray]:
    from layers.vision.synth import scene

    rng = np.random.default_rng(7)
    return [scene(rng, SIZE, SIZE)[0] for _ in range(n)]


def _time(model, frames: list[np.ndarray], batch: int, repeats: int, cores: int, backend: str) -> Figure:
    chunk = frames[:batch]
    model.predict(chunk, imgsz=SIZE, batch=batch, verbose=False, device="cpu")  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(chunk, imgsz=SIZE, batch=batch, verbose=False, device="cpu")
        times.append((time.perf_counter() - start) / batch)
    per_image = statistics.median(times)
    return Figure(backend, batch, round(per_image * 1000, 1), round(1 / per_image, 2),
                  round(1 / per_image / cores, 2))


def _onnx(weights: Path, folder: Path):
    from ultralytics import YOLO

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return None, f"ONNX Runtime not installed ({exc.name}); pip install onnx onnxruntime"
    try:
        src = folder / weights.name
        src.write_bytes(weights.read_bytes())
        path = YOLO(str(src)).export(format="onnx", imgsz=SIZE, dynamic=True, simplify=False, verbose=False)
        return YOLO(path, task="detect"), None
    except Exception as exc:  # noqa: BLE001 - report, do not fail the bench
        return None, f"ONNX export failed offline: {type(exc).__name__}: {exc}"


def measure(weights: Path | None = None, *, repeats: int = 10) -> tuple[list[Figure], str | None, int]:
    """Figures for PyTorch (and ONNX Runtime if it exports); also the ONNX note and the core count."""
    import torch

    from layers.vision import offline, vision_settings

    offline()
    from ultralytics import YOLO

    weights = Path(weights or vision_settings().yolo_weights)
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    frames = _frames(8)
    figures = [_time(YOLO(str(weights)), frames, b, repeats, cores, "pytorch") for b in (1, 8)]
    with tempfile.TemporaryDirectory() as tmp:
        model, note = _onnx(weights, Path(tmp))
        if model is not None:
            figures += [_time(model, frames, b, repeats, cores, "onnxruntime") for b in (1, 8)]
    return figures, note, cores


def run(console, *, repeats: int = 10, weights: Path | None = None) -> list[Figure]:
    figures, note, cores = measure(weights, repeats=repeats)
    console.print(f"YOLO11n at {SIZE} px on {cores} CPU core(s), end to end (letterbox + model + NMS):")
    console.print(f"{'backend':<12} {'batch':>5} {'ms/image':>9} {'frames/s':>9} {'per core':>9}")
    for f in figures:
        console.print(f"{f.backend:<12} {f.batch:>5} {f.ms_per_image:>9.1f} {f.fps:>9.2f} {f.fps_per_core:>9.2f}")
    console.print(f"anchor: Ultralytics YOLO11n CPU ONNX {ANCHOR_MS} ms/image = {1000 / ANCHOR_MS:.1f} frames/s "
                  f"(their machine, all its cores)")
    if note:
        console.print(f"note: {note}")
    best = max(figures, key=lambda f: f.fps_per_core)
    channels = int(best.fps_per_core * 2 * 0.8)
    console.print(f"a 2-core machine carries about {channels} camera channels at 1 frame/s "
                  f"({best.backend}, batch {best.batch}, 80% load)")
    return figures
