"""`onemap vision ...` end to end on a scratch database: run a camera over a video (once, and live
with --all --loop), calibrate from a points file (good, three points, collinear: clear errors), train
a tiny demo model, and the background analysis `onemap demo` starts and stops."""

import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from layers.vision import synth
from scripts.cli import app
from tests import registry_city as city

pytestmark = pytest.mark.vision
runner = CliRunner()
# 250 m east, 150 m north of the tiny registry city's south-west corner: inside its first village
LON, LAT = (float(v[0]) for v in to_wgs84([city.X0 + 250.0], [city.Y0 + 150.0], city.GK))


def _out(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def _one(url: str, sql: str):
    eng = create_engine(url)
    with eng.connect() as conn:
        row = conn.execute(text(sql)).one()
    eng.dispose()
    return row


@pytest.fixture
def camera(cli_env, tmp_path, monkeypatch):
    """The tiny registry city and camera CAM-1 in it, registered through the CLI (no source yet);
    key frames go to tmp."""
    monkeypatch.setenv("ONEMAP_KEYFRAME_DIR", str(tmp_path / "kf"))
    city.areas().to_file(tmp_path / "areas.geojson", driver="GeoJSON")
    city.grids().to_file(tmp_path / "grids.geojson", driver="GeoJSON")
    for kind in ("areas", "grids"):
        result = runner.invoke(app, [kind, "import", str(tmp_path / f"{kind}.geojson")])
        assert result.exit_code == 0, result.output
    csv = tmp_path / "cameras.csv"
    csv.write_text(f"id,name,lon,lat,heading_deg,sample_fps\nCAM-1,东城路口,{LON},{LAT},0,2\n", encoding="utf-8")
    result = runner.invoke(app, ["cameras", "import", str(csv)])
    assert result.exit_code == 0, result.output
    assert "imported 1 cameras" in _out(result)
    return cli_env


def _points(tmp_path: Path, image, local_m, name="points.csv") -> Path:
    """A u,v,lon,lat file for ground points given in metres east/north of the camera."""
    epsg = f"EPSG:{gauss_kruger_epsg(LON)}"
    x0, y0 = from_wgs84([LON], [LAT], epsg)
    local = np.asarray(local_m, float)
    lon, lat = to_wgs84(local[:, 0] + x0[0], local[:, 1] + y0[0], epsg)
    lines = ["u,v,lon,lat"] + [f"{u},{v},{a:.8f},{b:.8f}" for (u, v), a, b in zip(image, lon, lat, strict=True)]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


IMAGE = [[0, 320], [480, 320], [480, 100], [0, 100], [240, 320]]
GROUND = [[-5, 4], [5, 4], [25, 60], [-25, 60], [0, 4]]  # a symmetric view: the bottom edge maps evenly


def test_calibrate_good_three_and_collinear_points(camera, tmp_path):
    result = runner.invoke(app, ["vision", "calibrate", "--camera", "CAM-1", "--points", str(_points(tmp_path, IMAGE, GROUND))])
    assert result.exit_code == 0, result.output
    assert "camera CAM-1 calibrated from 5 pairs: reprojection error RMS" in _out(result)
    rms = float(_out(result).split("RMS ")[1].split(" m")[0])
    assert rms < 0.05
    stored = _one(camera, "SELECT (calibration->>'rms_m')::float, jsonb_array_length(calibration->'image_points') "
                          "FROM cameras WHERE id = 'CAM-1'")
    assert stored[1] == 5 and stored[0] < 0.05

    three = _points(tmp_path, IMAGE[:3], GROUND[:3], "three.csv")
    result = runner.invoke(app, ["vision", "calibrate", "--camera", "CAM-1", "--points", str(three)])
    assert result.exit_code == 1 and "calibration needs at least 4 point pairs, got 3" in _out(result)
    line = _points(tmp_path, [[0, 300], [100, 280], [200, 260], [300, 240]], [[0, 5], [0, 10], [0, 15], [0, 20]],
                   "collinear.csv")
    result = runner.invoke(app, ["vision", "calibrate", "--camera", "CAM-1", "--points", str(line)])
    assert result.exit_code == 1 and "collinear" in _out(result) and "Traceback" not in _out(result)
    assert _one(camera, "SELECT jsonb_array_length(calibration->'image_points') FROM cameras")[0] == 5  # kept

    bad = tmp_path / "bad.csv"
    bad.write_text("u,v,lon,lat\n0,320,118.79,36.85\n1,2,东,36.8\n", encoding="utf-8")
    result = runner.invoke(app, ["vision", "calibrate", "--camera", "CAM-1", "--points", str(bad)])
    assert result.exit_code == 1 and "line 3: expected u,v,lon,lat numbers" in _out(result)
    result = runner.invoke(app, ["vision", "calibrate", "--camera", "CAM-1", "--points", str(tmp_path / "none.csv")])
    assert result.exit_code == 1 and "not found" in _out(result)
    result = runner.invoke(app, ["vision", "calibrate", "--camera", "NOPE", "--points", str(three.with_name("points.csv"))])
    assert result.exit_code == 1 and "no camera NOPE" in _out(result)


def test_run_a_camera_over_a_video(camera, tmp_path):
    video = synth.write_video(tmp_path / "street.avi", seconds=4, fps=4)
    runner.invoke(app, ["vision", "calibrate", "--camera", "CAM-1", "--points", str(_points(tmp_path, IMAGE, GROUND))])
    result = runner.invoke(app, ["vision", "run", "--camera", "CAM-1", "--source", str(video), "--imgsz", "480"])
    assert result.exit_code == 0, result.output
    assert "CAM-1: 8 frames" in _out(result) and "status online (video street.avi ended after 16 frames)" in _out(result)
    n, placed, status, last = _one(camera, "SELECT count(*), count(d.geom), max(c.status), max(c.last_frame_at) "
                                           "FROM detections d JOIN cameras c ON c.id = d.camera_id")
    reported = int(_out(result).split("frames, ")[1].split(" detections")[0])
    assert n == reported >= 8 * 5 and placed == n and status == "online" and last is not None
    assert (tmp_path / "kf" / "CAM-1" / "latest.jpg").is_file()

    for args, message in [
        (["vision", "run", "--camera", "CAM-1"], "the camera has no source"),
        (["vision", "run", "--camera", "CAM-1", "--source", str(tmp_path / "missing.avi")], "does not exist"),
        (["vision", "run", "--camera", "NOPE", "--source", str(video)], "no camera NOPE"),
        (["vision", "run"], "give --camera ID (repeatable) or --all"),
        (["vision", "run", "--camera", "CAM-1", "--camera", "CAM-2", "--source", str(video)], "exactly one --camera"),
        (["vision", "run", "--camera", "CAM-1", "--source", str(video), "--weights", str(tmp_path / "no.pt")],
         "not found"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in _out(result) and "Traceback" not in _out(result), (args, result.output)


def test_run_all_live_loops_the_videos_then_marks_the_cameras_stopped(camera, tmp_path):
    video = synth.write_scene_video(tmp_path / "loop.avi", synth.demo_scene(seed=1), fps=2)
    eng = create_engine(camera)
    with eng.begin() as conn:
        conn.execute(text("UPDATE cameras SET source = :s, sample_fps = 0.5"), {"s": str(video)})
        conn.execute(text("INSERT INTO cameras (id, name, source, source_kind) VALUES ('CAM-2', '坏源', :s, 'video')"),
                     {"s": str(tmp_path / "gone.avi")})
        conn.execute(text("INSERT INTO alarms (camera_id, kind, state, started_at, last_seen_at) "
                          "VALUES ('CAM-1', 'crowd', 'active', now() - interval '1 hour', now() - interval '1 hour')"))
        conn.execute(text("INSERT INTO detections (camera_id, at, class_name, confidence, x1, y1, x2, y2) "
                          "VALUES ('CAM-1', now() - interval '3 hours', 'car', 0.9, 0, 0, 10, 10)"))
    started = time.perf_counter()
    result = runner.invoke(app, ["vision", "run", "--all", "--loop", "--fps", "4", "--max-rounds", "4", "--imgsz", "480",
                                 "--keep-hours", "2"])
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    assert "CAM-2: video file" in _out(result) and "does not exist" in _out(result)  # the bad one is reported
    assert "ended 1 alarm(s) left active by an earlier run" in _out(result)
    assert "analysing 1 camera(s) at 4.0 frames/s in all" in _out(result)
    assert "CAM-1: 4 frames" in _out(result)
    assert "deleted 1 detections older than 2 h" in _out(result)  # the 3-hour-old one, not this run's
    assert seconds >= 0.75  # paced: four frames a quarter of a second apart, not as fast as possible
    with eng.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, status || ':' || coalesce(status_note, '') FROM cameras")).all())
        n = conn.execute(text("SELECT count(*) FROM detections WHERE camera_id = 'CAM-1'")).scalar()
        assert conn.execute(text("SELECT count(*) FROM alarms WHERE state = 'active'")).scalar() == 0
    eng.dispose()
    assert rows["CAM-1"] == "offline:analysis stopped" and rows["CAM-2"].startswith("error:video file")
    assert n > 0 and (tmp_path / "kf" / "CAM-1" / "latest.jpg").is_file()
    result = runner.invoke(app, ["vision", "run", "--camera", "CAM-1", "--loop", "--source", str(video)])
    assert result.exit_code == 1 and "drop --source" in _out(result)
    result = runner.invoke(app, ["vision", "run", "--camera", "CAM-1", "--keep-hours", "2"])
    assert result.exit_code == 1 and "--keep-hours needs --loop" in _out(result)


def test_train_demo_tiny(tmp_path):
    out = tmp_path / "tiny.pt"
    started = time.perf_counter()
    result = runner.invoke(app, ["vision", "train-demo", "--out", str(out), "--epochs", "1", "--images", "8",
                                 "--val-images", "4", "--imgsz", "160"])
    assert result.exit_code == 0, result.output
    assert f"{out}: " in _out(result) and "mAP50" in _out(result)
    print(f"\ntiny train-demo: {time.perf_counter() - started:.1f} s")
    from layers.vision.runner import Detector

    detector = Detector(out, imgsz=160)
    assert detector.names == {0: "person", 1: "car"}
    assert len(detector.detect([synth.scene(np.random.default_rng(3), 160, 160)[0]])) == 1
    result = runner.invoke(app, ["vision", "train-demo", "--out", str(out), "--imgsz", "100"])
    assert result.exit_code == 1 and "multiple of 32" in _out(result)


def test_demo_starts_background_analysis_and_stops_it(camera, tmp_path, monkeypatch):
    """What `onemap demo` wraps around the server: a real child process analysing the cameras."""
    from rich.console import Console

    from gis.settings import database_settings
    from scripts.cli_vision import demo_analysis

    monkeypatch.setenv("ONEMAP_DATA_DIR", str(tmp_path / "data"))  # the log goes there (cli_env clears the cache)
    database_settings.cache_clear()
    (tmp_path / "data").mkdir()
    monkeypatch.setattr("scripts.demo_cameras.video_dir", lambda: tmp_path / "videos")
    video = synth.write_scene_video(tmp_path / "loop.avi", synth.demo_scene(seed=2), fps=2)
    eng = create_engine(camera)
    with eng.begin() as conn:
        conn.execute(text("UPDATE cameras SET source = :s, sample_fps = 2"), {"s": str(video)})
    latest = tmp_path / "kf" / "CAM-1" / "latest.jpg"
    console = Console(record=True, width=200)
    with demo_analysis(console) as proc:
        assert proc is not None
        deadline = time.monotonic() + 90
        while not latest.is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert latest.is_file(), (tmp_path / "data" / "vision.log").read_text()
    assert proc.returncode is not None  # stopped with the demo
    printed = console.export_text()
    assert "camera analysis: YOLO on the demo cameras in the background" in printed
    log = (tmp_path / "data" / "vision.log").read_text()
    assert "analysing 1 camera(s)" in log and "CAM-1:" in log
    with eng.connect() as conn:
        status = conn.execute(text("SELECT status, status_note FROM cameras WHERE id = 'CAM-1'")).one()
    eng.dispose()
    assert tuple(status) == ("offline", "analysis stopped")


def test_demo_says_in_one_line_why_camera_analysis_is_off(monkeypatch, tmp_path):
    from rich.console import Console

    from scripts import cli_vision

    console = Console(record=True, width=300)
    monkeypatch.setattr(cli_vision, "VISION_MODULES", ("numpy", "onemap_no_such_module"))
    with cli_vision.demo_analysis(console) as proc:
        assert proc is None
    monkeypatch.setattr(cli_vision, "VISION_MODULES", ("numpy",))
    monkeypatch.setenv("ONEMAP_YOLO_WEIGHTS", str(tmp_path / "none.pt"))
    with cli_vision.demo_analysis(console) as proc:
        assert proc is None
    lines = console.export_text().strip().splitlines()
    assert lines == [
        "camera analysis is off: the vision extra is not installed (onemap_no_such_module missing: "
        "pip install -e .[vision])",
        f"camera analysis is off: no YOLO weights at {tmp_path / 'none.pt'} (ONEMAP_YOLO_WEIGHTS)"]
