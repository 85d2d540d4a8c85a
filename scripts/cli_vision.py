"""`onemap vision ...`, `onemap cameras import` and `onemap bench vision`: thin wrappers over the services.

torch and ultralytics are imported only inside the commands that need them, so `onemap --help` and
every other command work without the vision extra.
"""

from __future__ import annotations

import time
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
def run(camera: Annotated[list[str], typer.Option("--camera", help="Camera id (repeat for several: one batch).")],
        source: Annotated[str | None, typer.Option(help="Override the camera's source: video, folder or URL.")] = None,
        weights: Annotated[Path | None, typer.Option(help="YOLO weights (default: ONEMAP_YOLO_WEIGHTS).")] = None,
        max_rounds: Annotated[int | None, typer.Option(help="Stop after this many batches.")] = None) -> None:
    """Run detection, tracking and the cameras' rules; detections, alarms and tickets go to the database."""
    try:
        from gis.db import session_scope
        from layers.vision.runner import Detector, Runner
        from layers.vision.store import DatabaseSink, feed_for

        detector = Detector(weights)
        with session_scope() as session:
            feeds = [feed_for(session, cid, source=source if len(camera) == 1 else None) for cid in camera]
            runner = Runner(detector, feeds, sink=DatabaseSink(session, commit=True))
            started = time.perf_counter()
            done = runner.run(max_rounds=max_rounds)
        seconds = time.perf_counter() - started
        for feed in done:
            out.print(f"{feed.camera_id}: {feed.frames} frames, {feed.detections} detections, "
                      f"{len(feed.events)} alarm events, {feed.skipped} skipped, status {feed.status}"
                      + (f" ({feed.note})" if feed.note else ""), highlight=False)
        total = sum(f.frames for f in done)
        out.print(f"{total} frames in {seconds:.1f} s ({total / max(seconds, 1e-9):.1f} frames/s)")
    except OneMapError as exc:
        _fail(exc.message)


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
               epochs: Annotated[int, typer.Option()] = 30) -> None:
    """Train the demo yolo11n from scratch on synthetic street scenes (CPU, offline, minutes)."""
    from layers.vision.train import train_demo as train

    result = train(out_path, epochs=epochs)
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


def register(app: typer.Typer) -> None:
    app.add_typer(vision_app, name="vision")
    app.add_typer(cameras_app, name="cameras")
    for group in app.registered_groups:
        if group.name == "bench" and group.typer_instance is not None:
            group.typer_instance.command("vision")(bench)
