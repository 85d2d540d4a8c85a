"""The demo city's cameras: the loader registers them calibrated and with rules, and the live runner,
run for one video loop on a simulated clock, puts real detections on the demo city's map, raises the
scene's alarms as tickets, and leaves a latest frame that ``GET /cameras/{id}/frame`` serves."""

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func, select, text

from gis.coords import from_wgs84, gauss_kruger_epsg
from layers.cameras import service
from layers.cameras.calibration import Calibration
from layers.cameras.models import Alarm, Camera, CameraRule, Detection
from layers.incidents.models import Ticket
from layers.vision import DEMO_WEIGHTS
from layers.vision.live import run_paced
from layers.vision.runner import Detector, LoopingVideo, Runner
from layers.vision.store import DatabaseSink, feed_for
from scripts import demo_cameras

pytestmark = pytest.mark.vision
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC).timestamp()


class SimClock:
    """Wall clock stand-in: time moves only when the loop waits."""

    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def demo_cams(demo_session, tmp_path):
    message = demo_cameras.load_cameras(demo_session, video_root=tmp_path / "videos")
    assert message is not None and "12 registered (12 inside a grid)" in message
    return message


def test_loader_registers_calibrated_cameras_with_rules_and_videos(demo_session, demo_cams, tmp_path):
    cams = demo_session.scalars(select(Camera).order_by(Camera.id)).all()
    assert [c.id for c in cams] == [f"SG-CAM-{i:02d}" for i in range(1, 13)]
    towns = {c.town_code for c in cams}
    assert len(towns) == 9  # four in 圣城街道's core, one in each of eight other towns
    for cam in cams:
        assert cam.grid_code and cam.grid_code[:9] + "000" == cam.town_code
        assert cam.sample_fps == 0.5 and cam.fov_deg == 50 and cam.source.endswith(f"{cam.id}-v1.avi")
        assert cam.calibration["rms_m"] < 0.1
        calib = Calibration.from_dict(cam.calibration)
        # the bottom centre of the frame lands ~11 m straight ahead, the far kerb ~31 m ahead
        lon, lat = calib.project([240, 240], [310, 150])
        pos = service.camera_dict(cam)
        epsg = f"EPSG:{gauss_kruger_epsg(pos['lon'])}"
        x, y = from_wgs84(np.r_[pos["lon"], lon], np.r_[pos["lat"], lat], epsg)
        dist = np.hypot(x[1:] - x[0], y[1:] - y[0])
        np.testing.assert_allclose(dist, [11.2, 31.2], atol=0.5)
        bearing = np.degrees(np.arctan2(x[2] - x[0], y[2] - y[0])) % 360
        assert min(abs(bearing - cam.heading_deg), 360 - abs(bearing - cam.heading_deg)) < 1.0
        rules = demo_session.scalars(select(CameraRule).where(CameraRule.camera_id == cam.id)
                                     .order_by(CameraRule.id)).all()
        assert [(r.kind, r.category) for r in rules] == [("crowd", "1201"), ("parking", "1202"), ("present", "1206")]
        assert all(r.roi and len(r.roi) == 4 and r.cooldown_s == 1200 for r in rules)
    videos = sorted((tmp_path / "videos").glob("*.avi"))
    assert len(videos) == 12 and all(400_000 < v.stat().st_size < 3_000_000 for v in videos)
    assert demo_cameras.load_cameras(demo_session, video_root=tmp_path / "videos") is None  # only once


def test_one_loop_of_a_demo_camera_lands_on_the_map_and_serves_its_frame(
        demo_session, demo_cams, demo_client, tmp_path, monkeypatch):
    monkeypatch.setenv("ONEMAP_KEYFRAME_DIR", str(tmp_path / "kf"))
    clock = SimClock(T0)
    feed = feed_for(demo_session, "SG-CAM-01", loop=True, clock=clock.now)
    assert isinstance(feed.source, LoopingVideo) and feed.start == T0
    detector = Detector(DEMO_WEIGHTS, imgsz=480)
    runner = Runner(detector, [feed], sink=DatabaseSink(demo_session, keyframe_dir=tmp_path / "kf"))
    (done,) = run_paced(runner, {"SG-CAM-01": 2.0}, max_rounds=18, clock=clock.now, sleep=clock.sleep)
    assert done.frames == 18 and clock.t == pytest.approx(T0 + 34.0)  # one 30 s loop and a bit, every 2 s

    cam = demo_session.get(Camera, "SG-CAM-01")
    n, placed, in_grid = demo_session.execute(
        select(func.count(), func.count(Detection.geom), func.count(Detection.grid_code))
        .where(Detection.camera_id == "SG-CAM-01")).one()
    assert n == done.detections >= 18 * 6 and placed == n and in_grid == n  # all on the map, all in a grid
    far = demo_session.execute(text(
        "SELECT max(ST_Distance(d.geom::geography, c.geom::geography)), count(DISTINCT d.grid_code) "
        "FROM detections d JOIN cameras c ON c.id = d.camera_id WHERE c.id = 'SG-CAM-01'")).one()
    assert far[0] < 40.0  # everything it sees stands within its 35 m view (plus a box's depth)
    inside = demo_session.scalar(text(
        "SELECT count(*) FROM detections d JOIN grids g ON g.code = d.grid_code AND g.valid_to IS NULL "
        "AND ST_Intersects(g.geom, d.geom) WHERE d.camera_id = 'SG-CAM-01'"))
    assert inside == n
    kinds = sorted(a.kind for a in demo_session.scalars(select(Alarm).where(Alarm.camera_id == "SG-CAM-01")))
    assert kinds == ["crowd", "parking", "present"]  # the scene's three events, once each in one loop
    tickets = demo_session.scalars(select(Ticket).where(Ticket.source_ref == "camera:SG-CAM-01")).all()
    assert sorted(t.category for t in tickets) == ["1201", "1202", "1206"]
    assert all(t.town_code == cam.town_code for t in tickets)

    r = demo_client.get("/cameras/SG-CAM-01/frame")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    assert r.headers["cache-control"] == "no-store"
    frame_time = r.headers["x-frame-time"]
    assert frame_time.endswith("Z") and datetime.fromisoformat(frame_time) == cam.last_frame_at
    import cv2

    image = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (320, 480, 3)
    last = demo_session.scalar(select(func.count()).where(Detection.camera_id == "SG-CAM-01",
                                                          Detection.at == cam.last_frame_at))
    fc = demo_client.get("/detections", params={"camera": "SG-CAM-01", "since": frame_time, "limit": 100}).json()
    assert len(fc["features"]) == last >= 3  # exactly the frame's boxes, each placed on the map
    for f in fc["features"]:
        assert f["geometry"]["type"] == "Point" and f["properties"]["grid_code"]
        assert f["properties"]["at"].startswith(frame_time[:19])
    props = next(f["properties"] for f in demo_client.get("/cameras").json()["features"] if f["id"] == "SG-CAM-01")
    assert props["status"] == "online" and props["last_frame_at"] and props["alarm_state"] in ("ok", "alarm")
    assert demo_client.get("/cameras/SG-CAM-02/frame").status_code == 404
    print(f"\nSG-CAM-01, one loop: {n} detections on the map, alarms {kinds}")
