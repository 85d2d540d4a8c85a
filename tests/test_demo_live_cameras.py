"""The live demo's camera alarms (scripts/demo_live.py) do not pour duplicates: a camera whose ticket of
that kind is still open is not made to raise it again every few seconds (each repeat would be a new
report the intake closes 不予立案 as a duplicate), while cameras with nothing open keep alarming; a
repeat comes only after ``REPEAT_S``, and then it is recorded honestly as a duplicate."""

from __future__ import annotations

from sqlalchemy import text

from scripts.demo_live import REPEAT_S, LiveDemo


def cameras(session, n: int) -> list[str]:
    from layers.cameras import service

    points = session.execute(text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grids WHERE valid_to IS NULL"
        " ORDER BY code OFFSET 300 LIMIT :n) s"), {"n": n}).all()
    ids = []
    for i, (lon, lat) in enumerate(points):
        service.create_camera(session, id=f"LIVE-{i}", name=f"测试路口{i}", lon=lon, lat=lat)
        service.add_rule(session, f"LIVE-{i}", "parking", name="禁停路段违停", min_dwell_s=8.0)
        ids.append(f"LIVE-{i}")
    session.flush()
    return ids


def end_all(demo: LiveDemo, session) -> None:
    for a in demo.alarms:
        a.ends = 0.0
    demo.camera_updates(session)
    assert not demo.alarms


def tickets(session) -> tuple[int, int]:
    return session.execute(text(
        "SELECT count(*), count(duplicate_of) FROM tickets WHERE source_ref LIKE 'camera:LIVE-%'")).one()


def test_camera_alarms_of_the_live_demo_do_not_pour_duplicates(demo_session):
    session = demo_session
    ids = cameras(session, 2)
    demo = LiveDemo(None, seed=3, echo=lambda _: None)
    for _ in range(8):  # eight camera rounds back to back, each alarm over before the next round
        demo.camera_alarm(session)
        end_all(demo, session)
    total, duplicates = tickets(session)
    assert (total, duplicates) == (2, 0)  # each camera alarmed once; its open ticket holds further repeats
    assert demo.counts.camera_alarms == 2

    # a quarter of an hour later a camera may raise it again: one new report, honestly a duplicate
    session.execute(text("UPDATE alarms SET started_at = started_at - make_interval(secs => :s) "
                         "WHERE camera_id = ANY(:ids)"), {"s": REPEAT_S + 60, "ids": ids})
    demo.camera_alarm(session)
    end_all(demo, session)
    assert tickets(session) == (3, 1)
    repeat = session.execute(text("SELECT duplicate_of, state FROM tickets WHERE source_ref LIKE 'camera:LIVE-%' "
                                 "AND duplicate_of IS NOT NULL")).one()
    assert repeat.state == "closed"

    # a camera whose ticket was closed is free again at once
    session.execute(text("UPDATE tickets SET state = 'closed' WHERE source_ref = 'camera:LIVE-0'"))
    demo.camera_alarm(session)
    assert [a.camera_id for a in demo.alarms] == ["LIVE-0"]
