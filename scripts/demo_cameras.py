"""The demo city's cameras (演示摄像头): twelve street cameras with calibrations, rules and videos.

Why it is built this way:
- Each camera stands on the kerb of a main street near a town seat (the middle door of that street
  in the standard-address table, moved 14 m towards the carriageway) and looks along the street, so
  its view wedge lies on the road and what it sees lands on the road on the map.
- Its ground calibration comes from one explicit pinhole camera (6 m up, tilted 12° down, 50° wide,
  480x320 pixels): six image points are cast onto the ground, turned to the camera's heading and
  placed in the city's Gauss-Krüger metres, with a few centimetres of deterministic "survey" noise.
  So the homography is the real one for that camera, and a person's feet at the bottom of the frame
  land about 11 m in front of it, the far kerb about 33 m.
- The rules' regions are the ones the demo video was drawn for (:func:`layers.vision.synth.demo_scene`):
  a crowd gathering on the pavement, a car stopping in a no-parking kerb, someone walking into a
  closed work zone. Cool-downs are long (20 min), so a demo left running does not bury the desk in
  tickets: a repeat inside 24 h joins the open ticket as a duplicate.
- The videos are generated once, deterministically, under ``<ONEMAP_DATA_DIR>/demo/cameras`` (never
  in git): 30 s loops at 2 frames/s, about 1.3 MB each, ~2 s for all twelve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.settings import database_settings

ADDRESSES = Path(__file__).resolve().parent.parent / "data" / "grid_boundaries" / "addresses.csv"
WIDTH, HEIGHT, VIDEO_FPS = 480, 320, 2.0
FOV_DEG, HEIGHT_M, PITCH_DEG = 50.0, 6.0, 12.0
SAMPLE_FPS = 0.5  # the live loop looks at each camera every 2 s: twelve cameras cost 6 frames/s
RANGE_M = 35.0
KERB_M = 14.0  # door points stand 18 m from the road's centre line; the camera 4 m from it
COOLDOWN_S = 1200.0
VIDEO_VERSION = 1  # bump when the scene changes, so old files are not reused
IMAGE_POINTS = ((20, 150), (460, 150), (460, 312), (20, 312), (240, 200), (120, 262))

# (id, town, road, look towards increasing house numbers?)
PLACES = (
    ("SG-CAM-01", "圣城街道", "圣城街", True), ("SG-CAM-02", "圣城街道", "新华路", False),
    ("SG-CAM-03", "圣城街道", "文圣街", False), ("SG-CAM-04", "圣城街道", "寿康路", True),
    ("SG-CAM-05", "古城街道", "古城大街", True), ("SG-CAM-06", "洛城街道", "洛城路", False),
    ("SG-CAM-07", "孙家集街道", "孙家集大街", True), ("SG-CAM-08", "文家街道", "文家路", True),
    ("SG-CAM-09", "田柳镇", "田柳大街", False), ("SG-CAM-10", "侯镇", "侯镇大街", True),
    ("SG-CAM-11", "羊口镇", "羊口大街", False), ("SG-CAM-12", "台头镇", "台头大街", True),
)
COMPASS = ("北", "东北", "东", "东南", "南", "西南", "西", "西北")


@dataclass(frozen=True)
class DemoCamera:
    id: str
    name: str
    lon: float
    lat: float
    heading_deg: float
    seed: int


def video_dir() -> Path:
    return database_settings().data_dir / "demo" / "cameras"


def video_path(camera_id: str, root: Path | None = None) -> Path:
    return (root or video_dir()) / f"{camera_id}-v{VIDEO_VERSION}.avi"


def _doors() -> pd.DataFrame:
    frame = pd.read_csv(ADDRESSES, usecols=["town", "road", "number", "building", "lon", "lat"])
    return frame[frame["building"].isna()]


def place_cameras() -> list[DemoCamera]:
    """Where the twelve cameras stand and look, from the committed address table."""
    doors = _doors()
    out = []
    for seed, (camera_id, town, road, forward) in enumerate(PLACES):
        odd = doors[(doors["town"] == town) & (doors["road"] == road) & (doors["number"] % 2 == 1)]
        odd = odd.sort_values("number")
        if len(odd) < 5:
            raise RuntimeError(f"demo camera {camera_id}: {town}{road} has too few doors")
        i = len(odd) // 2
        epsg = f"EPSG:{gauss_kruger_epsg(float(odd['lon'].iloc[i]))}"
        x, y = from_wgs84(odd["lon"].to_numpy(float)[i - 2:i + 3], odd["lat"].to_numpy(float)[i - 2:i + 3], epsg)
        along = np.array([x[-1] - x[0], y[-1] - y[0]])
        along /= np.linalg.norm(along)
        right = np.array([along[1], -along[0]])  # odd doors are on the left: the road is to the right
        cx, cy = np.array([x[2], y[2]]) + KERB_M * right
        look = along if forward else -along
        heading = float(np.degrees(np.arctan2(look[0], look[1])) % 360.0)
        lon, lat = to_wgs84(np.array([cx]), np.array([cy]), epsg)
        number = int(odd["number"].iloc[i])
        facing = COMPASS[int(((heading + 22.5) % 360) // 45)]
        out.append(DemoCamera(camera_id, f"{town}{road}{number}号（{facing}向）", float(lon[0]), float(lat[0]),
                              round(heading, 1), seed))
    return out


def ground_points(cam: DemoCamera) -> tuple[list[list[float]], list[list[float]]]:
    """Image points and where they fall on the ground (lon/lat) for this camera's pinhole model."""
    focal = (WIDTH / 2) / np.tan(np.radians(FOV_DEG / 2))
    pitch = np.radians(PITCH_DEG)
    img = np.array(IMAGE_POINTS, float)
    xc, yc = (img[:, 0] - WIDTH / 2) / focal, (img[:, 1] - HEIGHT / 2) / focal
    t = HEIGHT_M / (np.sin(pitch) + yc * np.cos(pitch))  # ray length to the ground (all rows below the horizon)
    forward, right = t * (np.cos(pitch) - yc * np.sin(pitch)), t * xc
    h = np.radians(cam.heading_deg)
    east = right * np.cos(h) + forward * np.sin(h)
    north = -right * np.sin(h) + forward * np.cos(h)
    noise = np.random.default_rng(1000 + cam.seed).normal(0.0, 0.05, (len(img), 2))
    epsg = f"EPSG:{gauss_kruger_epsg(cam.lon)}"
    x0, y0 = from_wgs84(np.array([cam.lon]), np.array([cam.lat]), epsg)
    lon, lat = to_wgs84(x0[0] + east + noise[:, 0], y0[0] + north + noise[:, 1], epsg)
    return img.tolist(), np.column_stack([lon, lat]).tolist()


def write_videos(cameras: list[DemoCamera] | None = None, root: Path | None = None) -> int:
    """Generate the cameras' videos that are missing (needs OpenCV); returns how many were written."""
    from concurrent.futures import ThreadPoolExecutor

    from layers.vision import synth

    todo = [(cam, video_path(cam.id, root)) for cam in cameras or place_cameras()]
    todo = [(cam, path) for cam, path in todo if not path.is_file()]
    with ThreadPoolExecutor(max_workers=2) as pool:  # OpenCV drops the GIL while it encodes
        list(pool.map(lambda job: synth.write_scene_video(job[1], synth.demo_scene(WIDTH, HEIGHT, seed=job[0].seed),
                                                          fps=VIDEO_FPS), todo))
    return len(todo)


def have_opencv() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


def load_cameras(session: Session, *, video_root: Path | None = None) -> str | None:
    """Register the demo cameras with calibration and rules, and write their videos (under
    ``video_root``, default ``<data dir>/demo/cameras``); None (nothing done) when any camera exists."""
    from layers.cameras import service
    from layers.cameras.models import Camera
    from layers.vision.synth import demo_scene

    if session.scalar(select(func.count()).select_from(Camera)):
        return None
    start = time.perf_counter()
    cameras = place_cameras()
    rms = []
    for cam in cameras:
        scene = demo_scene(WIDTH, HEIGHT, seed=cam.seed)
        service.create_camera(session, id=cam.id, name=cam.name, lon=cam.lon, lat=cam.lat,
                              source=str(video_path(cam.id, video_root).resolve()), source_kind="video", heading_deg=cam.heading_deg,
                              fov_deg=FOV_DEG, range_m=RANGE_M, sample_fps=SAMPLE_FPS)
        rms.append(service.calibrate(session, cam.id, *ground_points(cam)).rms_m)
        for kind, values in _rules(scene):
            service.add_rule(session, cam.id, kind, **values)
    videos = write_videos(cameras, video_root) if have_opencv() else 0
    placed = session.scalar(select(func.count()).select_from(Camera).where(Camera.grid_code.is_not(None)))
    note = f"{videos} videos written to {video_root or video_dir()}" if have_opencv() else \
        "no videos yet (OpenCV is not installed: bash scripts/setup.sh --vision)"
    return (f"cameras: {len(cameras)} registered ({placed} inside a grid), calibrated (RMS ≤ {max(rms):.2f} m), "
            f"3 rules each; {note}; {time.perf_counter() - start:.1f} s")


def _rules(scene) -> list[tuple[str, dict]]:
    """The three rules, with the regions the camera's demo scene was drawn for."""
    common = {"cooldown_s": COOLDOWN_S, "clear_s": 4.0}
    return [
        ("crowd", {"name": "人行道人群聚集", "roi": scene.crowd_roi, "min_count": 4, "min_dwell_s": 4.0, **common}),
        ("parking", {"name": "禁停路段违停", "roi": scene.parking_roi, "min_dwell_s": 8.0, **common}),
        ("present", {"name": "封闭施工区闯入", "classes": ["person"], "roi": scene.zone_roi, "min_dwell_s": 2.0,
                     "severity": "important", "category": "1206", **common}),  # 区域闯入, not the fire default
    ]
