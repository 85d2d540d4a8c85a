"""The demo is live (演示实时数据流): a steady stream so the big screen changes every few seconds.

Left alone, the loaded demo is a still photograph: workers stand where their simulated day ended, no
reading, alarm or ticket arrives. While ``onemap demo`` serves, this runs beside it (a child process,
as the camera analysis does) and writes through the same services the API and the field use:

- workers walk (or ride e-bikes) between waypoints inside their own grids; each phone sends a fix
  about every 15 s through the GPS ingest (half of them in GCJ-02, as Amap-based apps report);
- every sensor reports about once a minute through the sensor ingest; now and then an enterprise
  monitor has a pollution episode (PM2.5 over the limit for a minute or two), which the ingest's own
  threshold rule turns into an alarm and a ticket;
- cameras raise alarms (crowd, illegal parking, intrusion) through the same alarm path as YOLO
  (``layers.cameras.alarms.handle``: alarm row, ticket, live event), each ending a minute or two
  later — unless YOLO is analysing the cameras itself (``cameras=False``); a rule whose camera still has
  an open ticket of its kind waits its turn (at most one repeat, a duplicate, per ``REPEAT_S``);
- citizens and patrolling workers report tickets, and open tickets move through the workflow
  (dispatch or grab, sign, start, complete, review, revisit, close) with the same moves as the desk;
  cards are refreshed every minute, so yellow and red cards appear as deadlines pass.

Each task is one short transaction; a failing task is logged and the stream goes on.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from gis.registry import load_grids

if TYPE_CHECKING:
    from layers.cameras.rules import Rule

log = logging.getLogger("onemap.demo_live")

CITIZEN = ("hotline", "app", "wechat")
REPORT_CHANNELS = {"hotline": 0.4, "app": 0.2, "wechat": 0.1, "patrol": 0.3}
CENTRE = "指挥中心"
REPEAT_S = 900.0  # a camera re-raises an alarm whose ticket is still open (a duplicate) at most this often


@dataclass(frozen=True)
class Pace:
    """How often each part of the stream runs (seconds)."""

    tick_s: float = 1.0
    gps_s: float = 5.0
    fix_period_s: float = 15.0  # each phone reports about this often (its fixes spread over the ticks)
    readings_s: float = 5.0
    sensor_period_s: float = 60.0  # each sensor reports about this often
    ticket_s: float = 15.0
    move_s: float = 5.0
    camera_s: float = 45.0
    episode_s: float = 240.0
    cards_s: float = 60.0


@dataclass
class Walker:
    """One worker on patrol: metric position, the waypoint ahead, speed."""

    id: str
    name: str
    phone: str | None
    area: shapely.Geometry
    x: float
    y: float
    to: tuple[float, float]
    speed: float
    gcj: bool


@dataclass
class CameraAlarm:
    camera_id: str
    rule: Rule
    ends: float
    count: int
    updated: float


@dataclass
class Counts:
    fixes: int = 0
    readings: int = 0
    sensor_alarms: int = 0
    camera_alarms: int = 0
    tickets: int = 0
    moves: int = 0
    errors: int = 0
    by_task: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        return (f"{self.fixes} GPS fixes, {self.readings} readings, {self.sensor_alarms} sensor alarms, "
                f"{self.camera_alarms} camera alarms, {self.tickets} new tickets, {self.moves} ticket moves"
                + (f", {self.errors} errors" if self.errors else ""))


def _points_in(area, n: int, rng: np.random.Generator) -> np.ndarray:
    from layers.workers.simulate import _points_in as inside

    return inside(area, n, rng)


class LiveDemo:
    """The stream; ``step()`` runs whatever is due, ``run()`` loops until stopped."""

    def __init__(self, sessions: sessionmaker, *, cameras: bool = True, pace: Pace = Pace(), seed: int | None = None,
                 echo: Callable[[str], None] = log.info) -> None:
        self.sessions, self.cameras, self.pace, self.echo = sessions, cameras, pace, echo
        self.rng = np.random.default_rng(seed)
        self.counts = Counts()
        self.due: dict[str, float] = {}
        self.walkers: list[Walker] = []
        self.epsg = ""
        self.sensors: pd.DataFrame = pd.DataFrame()
        self.episodes: dict[str, int] = {}  # sensor id → readings over the limit still to send
        self.alarms: list[CameraAlarm] = []
        self.grids = gpd.GeoDataFrame()  # the current grids, read by prepare()
        self.last_gps = 0.0

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Registers the demo's workers and sensors when missing; puts each worker where it last was."""
        from layers.sensors.simulate import demo_sensors
        from layers.workers.simulate import demo_workers

        with self.sessions() as session:
            self.grids = load_grids(session)
            if self.grids.empty:
                raise RuntimeError("no grids: load the demo city first (onemap demo --no-serve)")
            if not session.scalar(text("SELECT count(*) FROM workers")):
                demo_workers(session)
            if not session.scalar(text("SELECT count(*) FROM sensors")):
                demo_sensors(session)
            session.commit()
            self._walkers(session)
            self.sensors = pd.DataFrame(session.execute(text(
                "SELECT id, kind FROM sensors WHERE status = 'active' ORDER BY id")).all(), columns=["id", "kind"])
        self.last_gps = time.monotonic()
        with self.sessions() as session:  # a first fix for everyone; warms the resolver (a few seconds, once)
            self.gps(session, share=1.0)
            session.commit()
        now = time.monotonic()
        # the first camera alarm and the first pollution episode come early: a fresh screen sees them
        self.due = {"gps": now + self.pace.gps_s, "readings": now, "episode": now, "camera": now + 3, "ticket": now + 2,
                    "move": now + 1, "cards": now + 30}

    def _walkers(self, session: Session) -> None:
        rows = session.execute(text(
            "SELECT w.id, w.name, w.phone, array_agg(a.grid_code) AS grids, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat "
            "FROM workers w JOIN worker_grids a ON a.worker_id = w.id "
            "LEFT JOIN worker_last_positions p ON p.worker_id = w.id "
            "WHERE w.active AND w.on_duty GROUP BY w.id, p.geom ORDER BY w.id")).all()
        grids = self.grids.set_index("code")
        self.epsg = f"EPSG:{gauss_kruger_epsg(float(np.mean(grids.total_bounds[[0, 2]])))}"
        to_metric = lambda xy: np.column_stack(from_wgs84(xy[:, 0], xy[:, 1], self.epsg))  # noqa: E731
        self.walkers = []
        for i, r in enumerate(rows):
            codes = [c for c in r.grids if c in grids.index]
            if not codes:
                continue
            area = shapely.transform(shapely.union_all([grids.geometry[c] for c in codes]), to_metric)
            start = None
            if r.lon is not None:
                x, y = from_wgs84(np.array([r.lon]), np.array([r.lat]), self.epsg)
                if area.distance(shapely.Point(x[0], y[0])) < 400:
                    start = (float(x[0]), float(y[0]))
            if start is None:
                start = tuple(_points_in(area, 1, self.rng)[0])
            bike = self.rng.random() < 0.35  # e-bike patrols cover a village's grids faster
            self.walkers.append(Walker(r.id, r.name, r.phone, area, start[0], start[1],
                                       tuple(_points_in(area, 1, self.rng)[0]),
                                       float(self.rng.uniform(3.0, 5.0) if bike else self.rng.uniform(1.0, 1.5)),
                                       gcj=i % 2 == 1))

    # ------------------------------------------------------------------ the loop
    def step(self) -> None:
        """Run every task that is due now."""
        now = time.monotonic()
        tasks = {"gps": (self.gps, self.pace.gps_s), "episode": (self.episode, self.pace.episode_s),
                 "readings": (self.readings, self.pace.readings_s), "ticket": (self.ticket, self.pace.ticket_s),
                 "move": (self.move, self.pace.move_s), "cards": (self.cards, self.pace.cards_s)}
        if self.cameras:
            tasks["camera"] = (self.camera_alarm, self.pace.camera_s)
            tasks["camera_end"] = (self.camera_updates, self.pace.tick_s)
        for name, (task, every) in tasks.items():
            if now < self.due.get(name, 0):
                continue
            jitter = every if name in ("gps", "readings", "cards", "camera_end") else every * self.rng.uniform(0.5, 1.5)
            self.due[name] = now + jitter
            t0 = time.perf_counter()
            try:
                with self.sessions() as session:
                    task(session)
                    session.commit()
            except Exception:  # noqa: BLE001 - one failed task must not stop the stream
                self.counts.errors += 1
                log.exception("live demo: %s failed", name)
            self.counts.by_task[name] = self.counts.by_task.get(name, 0) + time.perf_counter() - t0

    def run(self, stop: threading.Event, *, seconds: float | None = None, report_s: float = 60.0) -> Counts:
        self.prepare()
        self.echo(f"live demo: {len(self.walkers)} workers on patrol, {len(self.sensors)} sensors"
                  + ("" if self.cameras else "; camera alarms left to the video analysis"))
        end = None if seconds is None else time.monotonic() + seconds
        report = time.monotonic() + report_s
        while not stop.is_set() and (end is None or time.monotonic() < end):
            self.step()
            if time.monotonic() >= report:
                report += report_s
                self.echo("live demo: " + self.counts.text())
            stop.wait(self.pace.tick_s)
        return self.counts

    # ------------------------------------------------------------------ workers
    def gps(self, session: Session, share: float | None = None) -> None:
        """Everyone moves on by speed × elapsed time towards the next waypoint; one fix each."""
        from layers.workers.ingest import ingest_positions

        if not self.walkers:
            return
        now_m = time.monotonic()
        dt, self.last_gps = min(now_m - self.last_gps, 60.0), now_m
        for w in self.walkers:
            left = w.speed * dt
            while left > 0:
                dx, dy = w.to[0] - w.x, w.to[1] - w.y
                dist = float(np.hypot(dx, dy))
                if dist <= left:
                    w.x, w.y, left = w.to[0], w.to[1], left - dist
                    w.to = tuple(_points_in(w.area, 1, self.rng)[0])
                else:
                    w.x, w.y, left = w.x + dx / dist * left, w.y + dy / dist * left, 0.0
        share = min(1.0, self.pace.gps_s / self.pace.fix_period_s) if share is None else share
        reporting = [w for w in self.walkers if self.rng.random() < share]
        if not reporting:
            return
        xy = np.array([(w.x, w.y) for w in reporting]) + self.rng.normal(0, 3, (len(reporting), 2))
        lon, lat = to_wgs84(xy[:, 0], xy[:, 1], self.epsg)
        gcj = np.array([w.gcj for w in reporting])
        glon, glat = from_wgs84(lon, lat, "gcj02")
        now = datetime.now(UTC)
        frame = pd.DataFrame({"worker_id": [w.id for w in reporting], "ts": now,
                              "lon": np.where(gcj, glon, lon), "lat": np.where(gcj, glat, lat),
                              "accuracy": np.round(self.rng.uniform(3, 12, len(xy)), 1)})
        for is_gcj, crs in ((False, "EPSG:4326"), (True, "gcj02")):
            part = frame[gcj == is_gcj]
            if len(part):
                self.counts.fixes += ingest_positions(session, part.reset_index(drop=True), crs=crs, now=now).inserted

    # ------------------------------------------------------------------ sensors
    def readings(self, session: Session) -> None:
        """A share of the sensors report (each about once a minute); those in an episode every time."""
        from layers.sensors.ingest import ingest_readings
        from layers.sensors.simulate import readings_frame

        if self.sensors.empty:
            return
        share = min(1.0, self.pace.readings_s / self.pace.sensor_period_s)
        pick = self.rng.random(len(self.sensors)) < share
        ids = sorted(set(self.sensors["id"][pick]) | set(self.episodes))
        if not ids:
            return
        now = datetime.now(UTC).replace(microsecond=0)
        frame = readings_frame(ids, now, hours=1 / 60, step_min=1, seed=int(self.rng.integers(1 << 31)))
        for sensor in list(self.episodes):
            frame.loc[frame["sensor_id"] == sensor, "pm25"] = round(float(self.rng.uniform(95, 170)), 1)
            self.episodes[sensor] -= 1
            if self.episodes[sensor] <= 0:
                del self.episodes[sensor]
        result = ingest_readings(session, frame, now=now)
        self.counts.readings += result.inserted
        self.counts.sensor_alarms += len(result.alarms_opened)

    def episode(self, session: Session) -> None:
        """An enterprise monitor (or any, when all of those are alarmed) starts a pollution episode."""
        busy = set(session.scalars(text("SELECT sensor_id FROM sensor_alarms WHERE state = 'open'"))) | set(self.episodes)
        free = self.sensors[~self.sensors["id"].isin(busy)]
        if free.empty:
            return
        enterprise = free[free["kind"] == "enterprise"]
        pool = enterprise if len(enterprise) else free
        sensor = str(pool["id"].iloc[int(self.rng.integers(len(pool)))])
        self.episodes[sensor] = int(self.rng.integers(5, 10))  # readings over the limit (the rule wants 3)

    # ------------------------------------------------------------------ cameras
    def camera_alarm(self, session: Session) -> None:
        """A camera alarm through the YOLO runner's own path: alarm row, ticket, live event.

        A rule whose camera already has an open ticket of that category would only add a duplicate (the
        intake closes it 不予立案 and links it to the first): such a rule is picked only when no other is
        free, and not within ``REPEAT_S`` of its last alarm, so the stream does not pour duplicates."""
        from layers.cameras import alarms
        from layers.cameras.models import Camera, CameraRule
        from layers.cameras.rules import AlarmEvent, RuleKind
        from layers.cameras.service import rule_of

        row = self._pick_rule(session)
        if row is None:
            return
        camera = session.get(Camera, row.camera_id)
        stored = session.get(CameraRule, row.id)
        if camera is None or stored is None:
            return
        rule = rule_of(stored)
        count = rule.min_count + int(self.rng.integers(0, 4)) if rule.kind == RuleKind.CROWD else 1
        t = time.time()
        event = AlarmEvent("start", rule, t, count, (), max(rule.min_dwell_s, 1.0))
        alarms.handle(session, camera, event, at=datetime.now(UTC))
        self.alarms.append(CameraAlarm(camera.id, rule, t + float(self.rng.uniform(40, 120)), count, t))
        self.counts.camera_alarms += 1

    def _pick_rule(self, session: Session):
        """An enabled rule of a camera not alarming now: one without an open ticket of its category if any,
        else one whose last alarm is ``REPEAT_S`` old; None when every rule is busy or repeated lately."""
        from layers.incidents.workflow import TERMINAL_SQL

        busy = sorted({a.camera_id for a in self.alarms})
        rows = session.execute(text(
            "SELECT r.id, r.camera_id, EXISTS (SELECT 1 FROM tickets t WHERE t.source_ref = 'camera:' || r.camera_id "
            f"  AND t.category = r.category AND t.duplicate_of IS NULL AND t.state NOT IN {TERMINAL_SQL}) AS open, "
            " (SELECT max(a.started_at) FROM alarms a WHERE a.camera_id = r.camera_id AND a.kind = r.kind) AS last_at "
            "FROM camera_rules r WHERE r.enabled AND r.camera_id <> ALL(:busy) AND NOT EXISTS ("
            "  SELECT 1 FROM alarms a WHERE a.camera_id = r.camera_id AND a.state = 'active') ORDER BY r.id"),
            {"busy": busy}).all()
        fresh = [r for r in rows if not r.open]
        if not fresh:
            now = datetime.now(UTC)
            fresh = [r for r in rows if r.last_at is None or (now - r.last_at).total_seconds() >= REPEAT_S]
        return fresh[int(self.rng.integers(len(fresh)))] if fresh else None

    def camera_updates(self, session: Session) -> None:
        """Running alarms report once a minute and end when their time is up."""
        from layers.cameras import alarms
        from layers.cameras.models import Camera
        from layers.cameras.rules import AlarmEvent

        t = time.time()
        for a in list(self.alarms):
            kind = "end" if t >= a.ends else "update" if t - a.updated >= 60 else None
            if kind is None:
                continue
            camera = session.get(Camera, a.camera_id)
            if camera is not None:
                alarms.handle(session, camera, AlarmEvent(kind, a.rule, t, a.count, (), t - a.updated),
                              at=datetime.now(UTC))
            a.updated = t
            if kind == "end":
                self.alarms.remove(a)

    # ------------------------------------------------------------------ tickets
    def ticket(self, session: Session) -> None:
        """A citizen's report somewhere in the city, or a patrolling worker's where the worker stands."""
        from layers.incidents.categories import load_categories
        from layers.incidents.intake import create_ticket
        from layers.incidents.simulate import SURNAMES, _categories, sample_points

        channels = list(REPORT_CHANNELS)
        channel = str(self.rng.choice(channels, p=list(REPORT_CHANNELS.values())))
        category = str(_categories(self.rng, np.array([channel], dtype=object))[0])
        name = load_categories()[category].name
        if channel == "patrol" and self.walkers:
            w = self.walkers[int(self.rng.integers(len(self.walkers)))]
            xs, ys = to_wgs84(np.array([w.x]), np.array([w.y]), self.epsg)
            fields = {"reporter_name": w.name, "reporter_phone": w.phone, "source_ref": w.id, "actor": w.id,
                      "description": f"网格员巡查发现：{name}"}
            lon, lat = float(xs[0]), float(ys[0])
        else:
            g = int(self.rng.integers(len(self.grids)))
            (lon, lat), = sample_points(self.grids, np.array([g]), self.rng)
            fields = {"reporter_name": f"{self.rng.choice(SURNAMES)}先生",
                      "reporter_phone": f"1{self.rng.integers(3, 10)}{self.rng.integers(0, 10**9):09d}",
                      "description": f"{self.grids['name'].iloc[g]}附近{name}，请尽快处理"}
        severity = str(self.rng.choice(["general", "important", "urgent"], p=[0.8, 0.15, 0.05]))
        create_ticket(session, channel=channel, category=category, severity=severity, lon=float(lon), lat=float(lat),
                      at=datetime.now(UTC), **fields)
        self.counts.tickets += 1

    def move(self, session: Session) -> None:
        """One open ticket one step on: half the time one of the newest, else any open one."""
        from layers.incidents.moves import apply_move
        from layers.incidents.workflow import TERMINAL_SQL

        newest = self.rng.random() < 0.5
        rows = session.execute(text(
            "SELECT id, state, channel, town_code, department, assignee, needs_town FROM tickets "
            f"WHERE state NOT IN {TERMINAL_SQL} AND duplicate_of IS NULL AND unplaced IS NOT TRUE "
            + ("ORDER BY created_at DESC LIMIT 12" if newest else "ORDER BY random() LIMIT 1"))).all()
        if not rows:
            return
        row = rows[int(self.rng.integers(len(rows)))]
        step = self._next_step(row)
        if step is None:
            return
        name, role, actor, note, payload = step
        apply_move(session, row.id, name, actor=actor, role=role, note=note, payload=payload, at=datetime.now(UTC))
        self.counts.moves += 1

    def _next_step(self, t) -> tuple[str, str, str, str | None, dict] | None:
        handler_role = "town" if t.assignee and t.assignee.isdigit() else "department"
        unit = f"{t.assignee}值班" if t.assignee else CENTRE
        chance = self.rng.random()
        if t.state in ("received", "returned"):
            if t.state == "received" and t.needs_town and chance < 0.2:
                return "grab", "town", f"{t.town_code}值班", None, {"assignee": t.town_code}
            target = t.town_code if t.needs_town and t.state == "received" and t.town_code else t.department
            return "dispatch", "district", CENTRE, None, {"assignee": target}
        if t.state == "dispatched":
            return "sign", handler_role, unit, None, {}
        if t.state == "signed":
            return "start", handler_role, unit, None, {}
        if t.state == "handling":
            return "complete", handler_role, unit, "已处置完毕", {}
        if t.state == "completed":
            if chance < 0.06:
                return "review_fail", "district", CENTRE, "照片与现场不符", {}
            return "review_pass", "district", CENTRE, None, {}
        if t.state == "reviewed":
            if t.channel in CITIZEN:
                return "revisit", "district", "回访员", None, {"satisfaction": int(self.rng.choice([2, 4, 5, 5, 5]))}
            return "close", "district", CENTRE, None, {}
        if t.state == "revisited":
            return "close", "district", CENTRE, None, {}
        return None

    def cards(self, session: Session) -> None:
        from layers.incidents.cards import refresh_cards

        refresh_cards(session, datetime.now(UTC))


def run_live(*, seconds: float | None = None, cameras: bool = True, stop_with_parent: bool = False,
             echo: Callable[[str], None] = print) -> Counts:
    """``onemap demo live``: the stream over the configured database until Ctrl-C, SIGTERM or ``seconds``."""
    from gis.db import session_factory
    from scripts.children import stop_signal

    with stop_signal(stop_with_parent=stop_with_parent) as stop:
        return LiveDemo(session_factory(), cameras=cameras, echo=echo).run(stop, seconds=seconds)


@contextmanager
def background(console, *, cameras: bool = True) -> Iterator[subprocess.Popen]:
    """While the demo serves: ``onemap demo live`` in a child process at low priority, its output in
    <data dir>/live.log; stopped with the demo (and by itself if the demo dies)."""
    from gis.settings import database_settings
    from scripts.children import child

    log_path = database_settings().data_dir / "live.log"
    with child(["demo", "live", "--stop-with-parent", "--cameras" if cameras else "--no-cameras"],
               log_path=log_path, nice=5) as proc:
        console.print(f"live demo: workers, sensors, alarms and tickets stream in the background (pid {proc.pid}, "
                      f"log {log_path}; `onemap demo --no-live` turns it off)", highlight=False, markup=False)
        yield proc
