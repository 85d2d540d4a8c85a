"""A camera alarm reaches the live channel through PostgreSQL itself: the alarms_notify trigger
(migration 0010_camera_notify) sends ``onemap_alarms`` on commit, whichever process wrote the alarm; a camera's
status change sends ``onemap_cameras``. Real alarm path (rule engine → alarms.handle → ticket), real
LISTEN on a second connection, on a scratch database the test commits to."""

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from api.routers.live import event_text, libpq_dsn, scoped_message
from gis.registry import import_areas, import_grids
from layers.accounts.scope import Scope
from layers.cameras import alarms, service
from layers.cameras.rules import RuleEngine, Seen
from layers.vision.store import rule_of
from tests import registry_city as city

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
GROUP = [Seen("person", 0.9, (100.0 + 30 * i, 200.0, 120.0 + 30 * i, 300.0), track_id=i + 1) for i in range(5)]


@pytest.fixture
def world(scratch_url):
    """The tiny registry city, a camera in its first grid with a crowd rule; committed."""
    eng = create_engine(scratch_url)
    with Session(eng) as session:
        import_areas(session, city.areas(), who="test", why="notify test")
        import_grids(session, city.grids(), who="test", why="notify test")
        code, lon, lat = session.execute(text(
            "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
            "WHERE valid_to IS NULL ORDER BY code LIMIT 1")).one()
        service.create_camera(session, id="CAM-N1", name="东关路口", lon=lon, lat=lat, source="rtsp://10.0.0.5/1")
        row, _ = service.add_rule(session, "CAM-N1", "crowd", name="路口聚集", min_count=4, min_dwell_s=2, clear_s=3)
        session.commit()
        rule_id = row.id
    yield {"engine": eng, "grid": code, "lon": lon, "lat": lat, "rule_id": rule_id, "url": scratch_url}
    eng.dispose()


def _listen(url: str) -> psycopg.Connection:
    conn = psycopg.connect(libpq_dsn(url), autocommit=True)
    conn.execute("LISTEN onemap_alarms")
    conn.execute("LISTEN onemap_cameras")
    return conn


def _received(conn: psycopg.Connection, n: int, timeout: float = 5.0) -> list[tuple[str, dict]]:
    got = [(note.channel, json.loads(note.payload)) for note in conn.notifies(timeout=timeout, stop_after=n)]
    assert len(got) == n, got
    return got


def _events(session: Session, rule_id: int) -> list:
    """Drive the real rule engine: an empty street, five people gather and stay 2 s (start), one
    steps out and back (two updates), all leave (end after the 3 s clear time)."""
    from layers.cameras.models import CameraRule

    engine = RuleEngine(rule_of(session.get(CameraRule, rule_id)))
    out = []
    for s in range(0, 14):
        seen = GROUP if 3 <= s <= 7 else []
        if s == 6:
            seen = GROUP[:4]
        ev = engine.step(T0.timestamp() + s, seen)
        if ev is not None:
            out.append(ev)
    assert [e.kind for e in out] == ["start", "update", "update", "end"]
    return out


def test_alarm_start_update_end_are_notified_on_commit(world):
    listener = _listen(world["url"])
    try:
        with Session(world["engine"]) as session:
            cam = service.get_camera(session, "CAM-N1")
            events = _events(session, world["rule_id"])
            alarm = alarms.handle(session, cam, events[0], at=T0 + timedelta(seconds=5))
            assert list(listener.notifies(timeout=0.5)) == []  # nothing before the commit
            session.commit()
            ((channel, start),) = _received(listener, 1)
            assert channel == "onemap_alarms"
            assert start["kind"] == "camera_alarm" and start["event"] == "start" and start["rule"] == "crowd"
            assert start["alarm_id"] == alarm.id and start["camera_id"] == "CAM-N1"
            assert start["camera_name"] == "东关路口" and start["title"] == "人群聚集"
            assert start["text"] == "东关路口 · 5 个目标" and start["count"] == 5 and start["state"] == "active"
            assert start["ticket_id"] == alarm.ticket_id is not None
            assert start["grid_code"] == world["grid"] and start["village_code"] == world["grid"][:12]
            assert start["town_code"] == "370783001000" and start["district_code"] == "370783000000"
            assert start["lon"] == pytest.approx(world["lon"]) and start["lat"] == pytest.approx(world["lat"])
            assert datetime.fromisoformat(start["at"]) == T0 + timedelta(seconds=5)

            for ev, s in zip(events[1:], (6, 7, 11), strict=True):
                alarms.handle(session, cam, ev, at=T0 + timedelta(seconds=s))
                session.commit()
            got = _received(listener, 3)
            assert [(p["event"], p["count"], p["state"]) for _, p in got] == [
                ("update", 4, "active"), ("update", 5, "active"), ("end", 5, "ended")]
            assert got[-1][1]["title"] == "人群聚集解除" and got[-1][1]["ticket_id"] == alarm.ticket_id

            # a rolled-back alarm is never announced
            events = _events(session, world["rule_id"])
            alarms.handle(session, cam, events[0], at=T0 + timedelta(minutes=30))
            session.rollback()
            assert list(listener.notifies(timeout=0.5)) == []
    finally:
        listener.close()


def test_the_alarm_payload_is_scoped_by_the_live_stream(world):
    """The payload places the alarm, so /live gives it to its town and withholds it from another."""
    listener = _listen(world["url"])
    try:
        with Session(world["engine"]) as session:
            cam = service.get_camera(session, "CAM-N1")
            alarms.handle(session, cam, _events(session, world["rule_id"])[0], at=T0)
            session.commit()
        ((_, payload),) = _received(listener, 1)
    finally:
        listener.close()
    message = event_text("alarms", json.dumps(payload, ensure_ascii=False))
    mine = Scope.for_role("town", user="a", area_code="370783001000")
    other = Scope.for_role("town", user="b", area_code="370783002000")
    assert scoped_message(mine, message) == message
    assert scoped_message(other, message) is None


def test_camera_status_changes_are_notified_once(world):
    listener = _listen(world["url"])
    try:
        with Session(world["engine"]) as session:
            cam = service.get_camera(session, "CAM-N1")
            cam.status, cam.last_frame_at = "online", T0
            session.commit()
            cam.last_frame_at = T0 + timedelta(seconds=2)  # another frame: no status change, no event
            session.commit()
            cam.status, cam.status_note = "offline", "stream rtsp://10.0.0.5/1 refused 6 times"
            session.commit()
        got = _received(listener, 2)
        assert [(c, p["kind"], p["id"], p["status"]) for c, p in got] == [
            ("onemap_cameras", "camera_status", "CAM-N1", "online"),
            ("onemap_cameras", "camera_status", "CAM-N1", "offline")]
        assert got[1][1]["status_note"].startswith("stream") and got[1][1]["town_code"] == "370783001000"
        assert list(listener.notifies(timeout=0.3)) == []
    finally:
        listener.close()
