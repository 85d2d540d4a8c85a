"""`onemap vision ...`, `onemap cameras import` and `onemap bench vision`: thin wrappers over the services.

torch and ultralytics are imported only inside the commands that need them, so `onemap --help` and
every other command work without the vision extra.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gis.errors import OneMapError

vision_app = typer.Typer(help="Cameras and YOLO: run, calibrate, train the demo model.", no_args_is_help=True)
cameras_app = typer.Typer(help="The camera registry.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(1)


@vision_app.command("run")
def run(camera: Annotated[list[str] | None, typer.Option("--camera", help="Camera id (repeat for several: one batch).")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Every registered camera that has a source.")] = False,
        source: Annotated[str | None, typer.Option(help="Override the camera's source: video, folder or URL.")] = None,
        loop: Annotated[bool, typer.Option("--loop", help="Run until stopped: each camera paced at its sample rate "
                                                          "against the clock, videos looping.")] = False,
        weights: Annotated[Path | None, typer.Option(help="YOLO weights (default: ONEMAP_YOLO_WEIGHTS).")] = None,
        imgsz: Annotated[int | None, typer.Option(help="Inference size in pixels (default: the model's).")] = None,
        fps: Annotated[float | None, typer.Option(help="With --loop: frames/s per camera (default: its sample_fps).")] = None,
        batch: Annotated[int | None, typer.Option(help="Frames per YOLO call (default: ONEMAP_BATCH).")] = None,
        threads: Annotated[int | None, typer.Option(help="CPU threads for PyTorch (default: all).")] = None,
        max_rounds: Annotated[int | None, typer.Option(help="Stop after this many batches.")] = None,
        keep_hours: Annotated[float | None, typer.Option(help="With --loop: delete these cameras' detections "
                                                              "older than this many hours, every 10 min.")] = None,
        nice: Annotated[int, typer.Option(hidden=True, help="Lower this process's CPU priority by this much.")] = 0,
        stop_with_parent: Annotated[bool, typer.Option(hidden=True, help="Stop when the parent process ends.")] = False,
        ) -> None:
    """Run detection, tracking and the cameras' rules; detections, alarms and tickets go to the database.

    Without --loop every source is read to its end as fast as the machine allows; with --loop the
    cameras are analysed live until Ctrl-C (the demo runs `--all --loop` in the background)."""
    try:
        if not camera and not all_:
            raise OneMapError("give --camera ID (repeatable) or --all")
        if camera and all_:
            raise OneMapError("give either --camera or --all, not both")
        if source and (all_ or len(camera or []) != 1):
            raise OneMapError("--source replaces one camera's source: give exactly one --camera")
        if source and loop:
            raise OneMapError("--loop analyses the cameras' registered sources; drop --source")
        if fps is not None and fps <= 0:
            raise OneMapError("--fps must be positive")
        if keep_hours is not None and (keep_hours <= 0 or not loop):
            raise OneMapError("--keep-hours needs --loop and a positive number of hours")
        if nice:
            os.nice(nice)
        if threads:
            import torch

            torch.set_num_threads(threads)
        if loop:
            _run_live(camera or None, weights=weights, imgsz=imgsz, fps=fps, batch=batch, max_rounds=max_rounds,
                      keep_hours=keep_hours, stop_with_parent=stop_with_parent)
        else:
            _run_once(camera, all_, source=source, weights=weights, imgsz=imgsz, batch=batch, max_rounds=max_rounds)
    except OneMapError as exc:
        _fail(exc.message)
    except RuntimeError as exc:  # no database configured, and the like
        _fail(str(exc))


def _report(done, seconds: float) -> None:
    for feed in done:
        out.print(f"{feed.camera_id}: {feed.frames} frames, {feed.detections} detections, "
                  f"{len(feed.events)} alarm events, {feed.skipped} skipped, status {feed.status}"
                  + (f" ({feed.note})" if feed.note else ""), highlight=False)
    total = sum(f.frames for f in done)
    out.print(f"{total} frames in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f} frames/s)")


def _run_once(camera: list[str] | None, all_: bool, *, source, weights, imgsz, batch, max_rounds) -> None:
    from gis.db import session_scope
    from layers.vision.live import camera_ids_with_source
    from layers.vision.runner import Detector, Runner
    from layers.vision.store import DatabaseSink, feed_for

    detector = Detector(weights, imgsz=imgsz)
    with session_scope() as session:
        ids = camera_ids_with_source(session) if all_ else list(camera or [])
        if not ids:
            raise OneMapError("no camera has a source to analyse")
        feeds = [feed_for(session, cid, source=source) for cid in ids]
        runner = Runner(detector, feeds, sink=DatabaseSink(session, commit=True), batch=batch)
        started = time.perf_counter()
        done = runner.run(max_rounds=max_rounds)
    _report(done, time.perf_counter() - started)


def _run_live(camera: list[str] | None, *, weights, imgsz, fps, batch, max_rounds, keep_hours,
              stop_with_parent) -> None:
    from gis.db import session_factory
    from layers.vision.live import serve_cameras
    from scripts.children import stop_signal

    started = time.perf_counter()
    with stop_signal(stop_with_parent=stop_with_parent) as stop:
        done = serve_cameras(session_factory(), camera, weights=weights, imgsz=imgsz, fps=fps, batch=batch,
                             stop=stop, max_rounds=max_rounds, keep_hours=keep_hours,
                             echo=lambda line: out.print(line, highlight=False))
    _report(done, time.perf_counter() - started)


@vision_app.command("calibrate")
def calibrate(camera: Annotated[str, typer.Option("--camera")],
              points: Annotated[Path, typer.Option("--points", help="CSV: u,v,lon,lat per line (≥ 4 lines).")],
              crs: Annotated[str, typer.Option(help="CRS of lon/lat (EPSG code, gcj02, bd09).")] = "EPSG:4326") -> None:
    """Fit the camera's ground homography and print the reprojection error in metres."""
    try:
        from gis.db import session_scope
        from layers.cameras import service
        from layers.cameras.calibration import read_points

        if not points.is_file():
            raise OneMapError(f"points file {points} not found")
        image, ground = read_points(points.read_text(encoding="utf-8-sig"))
        with session_scope() as session:
            result = service.calibrate(session, camera, image, ground, crs=crs)
        out.print(f"camera {camera} calibrated from {len(image)} pairs: reprojection error RMS {result.rms_m:.2f} m, "
                  f"worst {result.max_m:.2f} m (EPSG:{result.epsg})")
    except OneMapError as exc:
        _fail(exc.message)


@vision_app.command("train-demo")
def train_demo(out_path: Annotated[Path, typer.Option("--out")] = Path("data/models/onemap-demo-yolo11n.pt"),
               epochs: Annotated[int, typer.Option(min=1)] = 30,
               images: Annotated[int, typer.Option(min=4, help="Synthetic training scenes.")] = 200,
               val_images: Annotated[int, typer.Option(min=2, help="Held-out validation scenes.")] = 40,
               imgsz: Annotated[int, typer.Option(min=64, help="Scene and training size in pixels.")] = 320) -> None:
    """Train the demo yolo11n from scratch on synthetic street scenes (CPU, offline, minutes).

    The defaults made the shipped data/models/onemap-demo-yolo11n.pt (~13 min on 2 cores); a tiny
    run (e.g. --epochs 1 --images 16 --val-images 4) checks the pipeline in well under a minute."""
    try:
        from layers.vision.train import train_demo as train

        if imgsz % 32:
            raise OneMapError(f"--imgsz must be a multiple of 32 (YOLO's stride), got {imgsz}")
        result = train(out_path, epochs=epochs, n_train=images, n_val=val_images, imgsz=imgsz)
    except OneMapError as exc:
        _fail(exc.message)
    out.print(f"{result.weights}: {result.size_bytes / 1e6:.1f} MB, {result.seconds:.0f} s, "
              f"mAP50 {result.map50:.3f}, mAP50-95 {result.map50_95:.3f}")


@cameras_app.command("import")
def cameras_import(path: Path) -> None:
    """Register cameras from a CSV: id,name,lon,lat[,crs,source,source_kind,heading_deg,fov_deg,range_m,sample_fps]."""
    try:
        from gis.db import session_scope
        from layers.cameras import service

        if not path.is_file():
            raise OneMapError(f"{path} not found")
        with session_scope() as session:
            cams = service.import_csv(session, path.read_bytes())
            placed = sum(1 for c in cams if c.grid_code)
        out.print(f"imported {len(cams)} cameras ({placed} inside a grid)")
    except OneMapError as exc:
        _fail(exc.message)


def bench(quick: Annotated[bool, typer.Option(help="Fewer repeats (a smoke run).")] = False) -> None:
    """Frames per second per core at 640 px, batch 1 and 8, PyTorch and ONNX Runtime, beside Ultralytics' figure."""
    from scripts.bench_vision import run as run_bench

    run_bench(out, repeats=3 if quick else 10)


VISION_MODULES = ("torch", "ultralytics", "cv2", "lap")
DEMO_IMGSZ = 480  # the demo videos are 480x320: the demo model finds their people and cars at this size
DEMO_KEEP_HOURS = 6  # twelve cameras store ~170,000 detections an hour: the demo keeps the last six hours


def vision_missing() -> list[str]:
    """The vision extra's modules that cannot be imported here (empty when YOLO can run)."""
    import importlib.util

    missing = []
    for name in VISION_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


@contextmanager
def demo_analysis(console: Console) -> Iterator[subprocess.Popen | None]:
    """While the demo serves: `onemap vision run --all --loop` in a child process at low priority on
    one CPU thread (each demo camera every 2 s), its output in <data dir>/vision.log; stopped with
    the demo (and by itself if the demo dies). Without the vision extra: one line saying why not."""
    from gis.settings import database_settings
    from layers.vision import vision_settings
    from scripts.children import child

    missing = vision_missing()
    weights = vision_settings().yolo_weights
    reason = (f"the vision extra is not installed ({', '.join(missing)} missing: pip install -e .[vision])"
              if missing else None if weights.is_file() else f"no YOLO weights at {weights} (ONEMAP_YOLO_WEIGHTS)")
    if reason:
        console.print(f"camera analysis is off: {reason}", highlight=False, markup=False)
        yield None
        return
    try:
        from scripts.demo_cameras import write_videos

        write_videos()  # cameras registered before OpenCV was installed get their videos now
    except (OSError, RuntimeError) as exc:
        console.print(f"camera analysis is off: the demo videos could not be written ({exc})", highlight=False,
                      markup=False)
        yield None
        return
    log_path = database_settings().data_dir / "vision.log"
    with child(["vision", "run", "--all", "--loop", "--imgsz", str(DEMO_IMGSZ), "--threads", "1", "--nice", "10",
                "--keep-hours", str(DEMO_KEEP_HOURS), "--stop-with-parent"], log_path=log_path) as proc:
        console.print(f"camera analysis: YOLO on the demo cameras in the background (pid {proc.pid}, log {log_path})",
                      highlight=False, markup=False)
        yield proc


def register(app: typer.Typer) -> None:
    app.add_typer(vision_app, name="vision")
    app.add_typer(cameras_app, name="cameras")
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            group.typer_instance.command("vision")(bench)
