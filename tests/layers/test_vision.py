"""The real ultralytics pipeline on the shipped demo weights, offline: detection quality on held-out
synthetic frames, tracking + rules + alarms → tickets end to end, and each kind of bad input."""

import socket
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import func, select, text

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.errors import InvalidInput
from layers.cameras import service
from layers.cameras.models import Alarm, Detection, KeyFrame
from layers.cameras.rules import make_rule
from layers.incidents.models import Attachment, Ticket, TicketEvent
from layers.vision import DEMO_WEIGHTS, synth
from layers.vision.runner import (
    CameraOffline,
    Detector,
    Feed,
    ImageFolder,
    Runner,
    SourceEnded,
    Stream,
    VideoFile,
)
from layers.vision.store import DatabaseSink, feed_for

pytestmark = pytest.mark.vision
MIN_RECALL, MIN_PRECISION = 0.80, 0.85


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args[:1])
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield calls
    assert calls == []


@pytest.fixture(scope="module")
def detector():
    return Detector(DEMO_WEIGHTS)


@pytest.fixture(scope="module")
def street_detector():
    """The demo street videos are 480x320: predict at that size (ONEMAP_YOLO_IMGSZ=480)."""
    return Detector(DEMO_WEIGHTS, imgsz=480)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(seen, truth) -> tuple[int, int, int]:
    """Greedy matching by confidence, same class, IoU ≥ 0.5: (true pos, false pos, false neg)."""
    used, tp, fp = set(), 0, 0
    for s in sorted(seen, key=lambda s: -s.conf):
        cands = [(_iou(s.box, g.box), j) for j, g in enumerate(truth)
                 if j not in used and synth.CLASSES[g.cls] == s.cls]
        best = max(cands, default=(0.0, None))
        if best[0] >= 0.5:
            tp, used = tp + 1, used | {best[1]}
        else:
            fp += 1
    return tp, fp, len(truth) - len(used)


def test_shipped_weights_detect_held_out_scenes_offline(detector, no_network):
    rng = np.random.default_rng(20261101)  # never used for training (seeds 0 and 1000003)
    scenes = [synth.scene(rng) for _ in range(40)]
    found = detector.detect([img for img, _ in scenes])
    tp = fp = fn = 0
    for seen, (_, truth) in zip(found, scenes, strict=True):
        a, b, c = match(seen, truth)
        tp, fp, fn = tp + a, fp + b, fn + c
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    print(f"\nheld-out synthetic scenes: {tp + fn} objects, recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= MIN_RECALL and precision >= MIN_PRECISION
    assert detector.names == {0: "person", 1: "car"}


def _ground_pairs(lon0: float, lat0: float):
    epsg = f"EPSG:{gauss_kruger_epsg(lon0)}"
    x0, y0 = from_wgs84([lon0], [lat0], epsg)
    image = [[0, 320], [480, 320], [480, 100], [0, 100], [240, 200]]
    ground = np.array([[-5, 4], [5, 4], [25, 60], [-25, 60], [0, 18.67]], float)
    lon, lat = to_wgs84(ground[:, 0] + x0[0], ground[:, 1] + y0[0], epsg)
    return image, np.column_stack([lon, lat]).tolist()


def test_video_to_alarms_to_one_ticket_each(demo_session, street_detector, tmp_path, no_network):
    code, lon, lat = demo_session.execute(text(
        "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
        "WHERE valid_to IS NULL ORDER BY code LIMIT 1")).one()
    video = synth.write_video(tmp_path / "street.avi", seconds=12, fps=10)
    service.create_camera(demo_session, id="CAM-DEMO", name="演示街道", lon=lon, lat=lat, source=str(video),
                          source_kind="video", sample_fps=2.0)
    service.calibrate(demo_session, "CAM-DEMO", *_ground_pairs(lon, lat))
    service.add_rule(demo_session, "CAM-DEMO", "crowd", name="路口聚集", min_count=4, min_dwell_s=2, clear_s=3,
                     roi=[[0, 265], [480, 265], [480, 320], [0, 320]])
    service.add_rule(demo_session, "CAM-DEMO", "parking", name="禁停路段", min_dwell_s=3, stationary_s=2,
                     roi=[[0, 180], [480, 180], [480, 262], [0, 262]])
    start = datetime(2026, 5, 1, 9, 0, tzinfo=UTC).timestamp()
    feed = feed_for(demo_session, "CAM-DEMO", start=start)
    runner = Runner(street_detector, [feed], sink=DatabaseSink(demo_session, keyframe_dir=tmp_path / "kf"), batch=4)
    (done,) = runner.run()
    assert done.frames == 24 and done.note and "ended" in done.note

    n_det, n_geo = demo_session.execute(select(func.count(), func.count(Detection.geom))).one()
    assert n_det >= 120 and n_geo == n_det  # calibrated: every detection is on the map
    alarms = demo_session.scalars(select(Alarm).order_by(Alarm.kind)).all()
    assert [a.kind for a in alarms] == ["crowd", "parking"]
    crowd, parking = alarms
    assert crowd.max_count >= 4 and crowd.grid_code is not None
    assert parking.dwell_s >= 3
    tickets = demo_session.scalars(select(Ticket).where(Ticket.channel == "camera").order_by(Ticket.category)).all()
    assert [(t.category, t.source_ref) for t in tickets] == [("1201", "camera:CAM-DEMO"), ("1202", "camera:CAM-DEMO")]
    assert {a.ticket_id for a in alarms} == {t.id for t in tickets}  # one ticket per alarm, updates add none
    assert tickets[0].grid_code == crowd.grid_code
    assert "路口聚集" not in tickets[0].description and "人群聚集" in tickets[0].description
    attached = demo_session.scalars(select(Attachment.ticket_id)).all()
    assert sorted(attached) == sorted(t.id for t in tickets)  # the annotated key frame is on the ticket
    updates = demo_session.scalar(select(func.count()).select_from(TicketEvent).where(TicketEvent.move == "alarm"))
    assert updates == sum(a.updates for a in alarms) + sum(a.state == "ended" for a in alarms)
    frames = demo_session.scalars(select(KeyFrame.path)).all()
    assert frames and all((tmp_path / "kf" / "CAM-DEMO").exists() for _ in frames)
    parked_first = [e for e in done.events if e.rule.kind.value == "parking" and e.kind == "start"]
    assert len(parked_first) == 1 and parked_first[0].suppressed  # the car parked from the start is ignored
    cam = service.get_camera(demo_session, "CAM-DEMO")
    assert cam.status == "online" and cam.last_frame_at is not None
    print(f"\nvideo: {done.frames} frames, {n_det} detections, alarms {[(a.kind, a.max_count, a.updates) for a in alarms]}")


# ----------------------------------------------------------------------------- bad input


def test_missing_or_bad_weights(tmp_path):
    with pytest.raises(InvalidInput, match="not found"):
        Detector(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InvalidInput, match="not a YOLO weights file"):
        Detector(junk)


def test_a_classification_model_is_refused(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "cls.pt"
    YOLO("yolo11n-cls.yaml").save(str(path))
    with pytest.raises(InvalidInput, match="classify model; OneMap needs a detection model"):
        Detector(path)


def test_unreadable_image_is_skipped_and_the_rest_served(detector, tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), synth.scene(rng)[0])
    (folder / "1b.png").write_bytes(b"broken")
    (done,) = Runner(detector, [Feed("C", ImageFolder(folder))]).run()
    assert (done.frames, done.skipped) == (3, 1)


def test_video_ends_and_missing_files_are_clear(tmp_path):
    video = synth.write_video(tmp_path / "v.avi", seconds=2, fps=10)
    src = VideoFile(video, sample_fps=5)
    times = []
    with pytest.raises(SourceEnded, match="ended after 20 frames"):
        while True:
            times.append(src.next()[0])
    assert times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8])
    with pytest.raises(InvalidInput, match="does not exist"):
        VideoFile(tmp_path / "missing.avi")
    (tmp_path / "text.avi").write_text("not a video")
    with pytest.raises(InvalidInput, match="cannot be opened"):
        VideoFile(tmp_path / "text.avi")


class _Refused:
    def isOpened(self) -> bool:
        return False


def test_refusing_stream_backs_off_then_goes_offline_while_others_run(detector, tmp_path):
    waits = []
    stream = Stream("rtsp://10.0.0.9/live", tries=4, base_s=0.5, sleep=waits.append, opener=lambda url: _Refused())
    with pytest.raises(CameraOffline, match="refused 5 times"):
        stream.next()
    assert waits == [0.5, 1.0, 2.0, 4.0]
    refused = Feed("S", Stream("rtsp://10.0.0.9/live", tries=2, base_s=0.1, sleep=lambda s: None,
                               opener=lambda url: _Refused()))
    video = Feed("V", VideoFile(synth.write_video(tmp_path / "v.avi", seconds=2, fps=4), sample_fps=2))
    bad_rule = Feed("R", VideoFile(tmp_path / "v.avi"), rules=[make_rule("present", classes=["fire"])])
    done = {f.camera_id: f for f in Runner(detector, [refused, video, bad_rule]).run()}
    assert done["S"].status == "offline" and "refused 3 times" in done["S"].note
    assert done["V"].frames == 4
    assert done["R"].status == "error" and "fire" in done["R"].note and done["R"].frames == 0
