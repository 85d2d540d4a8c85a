"""The live loop's parts: a video looping against the clock, and pacing — each camera at its own
rate, cameras due together in one batch, a failing round retried, never a backlog."""

import numpy as np
import pytest

from layers.vision import DEMO_WEIGHTS, synth
from layers.vision.live import run_paced
from layers.vision.runner import Detector, Feed, LoopingVideo, NullSink, Runner, offset_for

pytestmark = pytest.mark.vision


class SimClock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture(scope="module")
def loop_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("live") / "loop.avi"
    scene = synth.demo_scene(seed=4, period_s=10.0)
    synth.write_scene_video(path, scene, fps=2)
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return path, frames


@pytest.fixture(scope="module")
def detector():
    return Detector(DEMO_WEIGHTS, imgsz=480)


def test_looping_video_shows_the_frame_on_screen_now(loop_video):
    path, frames = loop_video
    assert len(frames) == 20
    clock = SimClock()
    video = LoopingVideo(path, offset_s=3.2, clock=clock.now)
    assert video.duration == 10.0 and video.offset == pytest.approx(3.2)
    seen = []
    for _ in range(12):  # every 1.5 s for 18 s: wraps around once, seeks backwards and forwards
        t, frame = video.next()
        index = int((t + 3.2) * 2) % 20
        assert np.array_equal(frame, frames[index])
        seen.append(index)
        clock.sleep(1.5)
    assert seen == [6, 9, 12, 15, 18, 1, 4, 7, 10, 13, 16, 19]
    assert 0 <= offset_for("SG-CAM-01") < 3600 and offset_for("SG-CAM-01") == offset_for("SG-CAM-01")
    assert offset_for("SG-CAM-01") != offset_for("SG-CAM-02")


class Recording(Runner):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[tuple[float, list[str]]] = []
        self.clock: SimClock | None = None

    def process(self, due):
        self.batches.append((self.clock.t, [feed.camera_id for feed, _, _ in due]))
        return super().process(due)


def test_each_camera_at_its_own_rate_batched_when_due_together(loop_video, detector):
    path, _ = loop_video
    clock = SimClock()
    feeds = [Feed(cid, LoopingVideo(path, offset_s=offset_for(cid), clock=clock.now), start=clock.t)
             for cid in ("A", "B", "C")]
    runner = Recording(detector, feeds, batch=8)
    runner.clock = clock
    t0 = clock.t
    done = run_paced(runner, {"A": 1.0, "B": 2.0, "C": 4.0}, max_rounds=8, clock=clock.now, sleep=clock.sleep)
    assert [(round(t - t0, 3), ids) for t, ids in runner.batches] == [
        (0.0, ["A", "B", "C"]), (1.0, ["A"]), (2.0, ["A", "B"]), (3.0, ["A"]), (4.0, ["A", "B", "C"]),
        (5.0, ["A"]), (6.0, ["A", "B"]), (7.0, ["A"])]
    frames = {f.camera_id: f.frames for f in done}
    assert frames == {"A": 8, "B": 4, "C": 2}
    assert all(f.detections >= 3 * f.frames for f in done)  # the demo scene always has people and cars in view


class FlakySink(NullSink):
    """A sink whose store fails once (a database restart, say)."""

    def __init__(self) -> None:
        self.calls = 0

    def frame(self, frame) -> None:
        self.calls += 1
        if self.calls == 2:
            raise ConnectionError("server closed the connection unexpectedly")


def test_a_failed_round_is_reported_and_the_loop_goes_on_without_a_backlog(loop_video, detector):
    path, _ = loop_video
    clock = SimClock()
    feed = Feed("A", LoopingVideo(path, clock=clock.now), start=clock.t)
    errors = []
    runner = Runner(detector, [feed], sink=FlakySink())
    t0 = clock.t
    (done,) = run_paced(runner, {"A": 1.0}, max_rounds=4, clock=clock.now, sleep=clock.sleep, on_error=errors.append)
    assert [type(e).__name__ for e in errors] == ["ConnectionError"]
    # rounds at 0 s and 1 s (failed), a 5 s pause, then the next frame now (not the 4 missed ones), then 1 s on
    assert done.frames == 4 and clock.t - t0 == pytest.approx(7.0)
    with pytest.raises(ConnectionError):
        run_paced(Runner(detector, [Feed("B", LoopingVideo(path, clock=clock.now))], sink=FlakySink()), {"B": 1.0},
                  max_rounds=3, clock=clock.now, sleep=clock.sleep)
