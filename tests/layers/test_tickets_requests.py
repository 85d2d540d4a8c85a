"""The write requests' fast paths against a real PostGIS: ``create_and_detail`` and ``move_and_detail``
answer exactly what writing and then reading the ticket back answers, in a few round trips; the
one-statement writes keep the ORM's bookkeeping (a rollback forgets them); the NOTIFY trigger sees
the ticket as the one statement wrote it and tells a department's screen which tickets are its own."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from fastapi.encoders import jsonable_encoder
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.orm import Session

from api.routers.live import event_text, libpq_dsn, scoped_message
from gis import registry
from gis.errors import InvalidInput, NotFound
from layers.accounts.scope import Scope
from layers.incidents.attachments import add_attachment
from layers.incidents.intake import create_and_detail, create_ticket
from layers.incidents.moves import apply_move, move_and_detail
from layers.incidents.read import detail, timeline
from layers.incidents.store import get_ticket
from layers.incidents.workflow import allowed_moves
from tests import registry_city as city
from tests.layers.test_tickets_service import EAST, TOWN, WEST, at, mv, new, pt, tiny  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def intake(session, when, **kw):
    fields = {"channel": "hotline", "category": "0102", "description": "路边垃圾堆积",
              "reporter_phone": "13812341234", "at": when, **pt(100, 400), **kw}
    return create_and_detail(session, **fields)


def read_back(session, ticket_id, scope=None):
    """What a new request reads: nothing of this one left in the identity map."""
    session.expunge_all()
    return detail(session, ticket_id, scope=scope)


@contextmanager
def statements(session):
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(" ".join(statement.split())[:60])

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", count)


def test_the_intake_answer_is_the_read_back(tiny):  # noqa: F811
    out = intake(tiny, at(2, 9))
    again = read_back(tiny, out["id"])
    assert out == again  # the same values: the moments are the same instants
    assert out["state"] == "received" and out["grid_code"] == "370783001001001"
    assert out["reporter_phone"] == "13812341234" and out["children"] == [] == out["attachments"]
    (ev,) = out["timeline"]
    (ev_again,) = again["timeline"]
    # and the timeline spelled as the database spells it: its time zone, jsonb's key order
    assert json.dumps(jsonable_encoder(ev)) == json.dumps(jsonable_encoder(ev_again))

    dup = intake(tiny, at(2, 10), **pt(110, 405))
    assert dup["duplicate_of"] == out["id"] and dup["state"] == "closed" and dup["allowed"] == {}
    assert [e["move"] for e in dup["timeline"]] == ["receive", "reject"]
    assert dup == read_back(tiny, dup["id"])
    assert timeline(tiny, out["id"])[-1]["move"] == "duplicate"

    outside = intake(tiny, at(2, 9), **pt(5000, 5000))
    assert outside["unplaced"] and outside == read_back(tiny, outside["id"])


def test_every_move_answer_is_the_read_back(tiny):  # noqa: F811
    tid = intake(tiny, at(2, 9))["id"]
    add_attachment(tiny, tid, filename="现场.png", content_type="image/png", data=PNG,
                     uploaded_by="坐席", at=at(2, 9, 5))
    steps = [
        ("check", "grid_worker", at(2, 9, 10), None, {"verified": True}),
        ("dispatch", "district", at(2, 9, 30), None, {"assignee": TOWN}),
        ("split", "town", at(2, 10), None, {"villages": [WEST, EAST]}),
        ("sign", "town", at(2, 10, 30), None, {}),
        ("join", "town", at(2, 10, 40), None, {"units": ["sanitation", "urban"]}),
        ("start", "town", at(2, 11), None, {}),
        ("extend", "district", at(2, 11, 30), "需封闭施工", {"until": at(5, 18).isoformat()}),
        ("complete", "town", at(2, 15), "已清运", {}),
        ("review_fail", "district", at(2, 16), "仍有残留", {}),
        ("complete", "town", at(2, 16, 30), "二次清运", {}),
        ("review_pass", "district", at(2, 17), None, {}),
        ("revisit", "district", at(3, 9), None, {"satisfaction": "满意"}),
        ("close", "district", at(3, 10), None, {}),
    ]
    for name, role, when, note, payload in steps:
        tiny.expunge_all()  # each request starts with an empty identity map
        out = move_and_detail(tiny, tid, name, actor="王五", role=role, note=note, payload=payload,
                                at=when, scope=Scope.demo())
        again = read_back(tiny, tid, Scope.demo())
        assert jsonable_encoder(out) == jsonable_encoder(again), name  # spelled the same, too
        assert out["timeline"][-1]["move"] == name
    assert (out["state"], out["rework_count"], out["co_units"]) == ("closed", 1, ["sanitation", "urban"])
    assert len(out["children"]) == 2 and [a["filename"] for a in out["attachments"]] == ["现场.png"]
    assert [e["move"] for e in out["timeline"]][:3] == ["receive", "attach", "check"]


def test_a_move_that_leaves_the_callers_scope_answers_none(tiny):  # noqa: F811
    tid = intake(tiny, at(2, 9))["id"]
    mv(tiny, get_ticket(tiny, tid), "dispatch", "district", at(2, 9, 30), assignee="water")
    water = Scope.for_role("department", user="水务", department="water")
    mv(tiny, get_ticket(tiny, tid), "return", "department", at(2, 10), note="不归我们管")
    out = move_and_detail(tiny, tid, "dispatch", actor="水务", role="district", payload={"assignee": TOWN},
                            at=at(2, 10, 30), scope=water)
    assert out is None and get_ticket(tiny, tid).assignee == TOWN  # the move itself was made
    with pytest.raises(NotFound):  # and another area's ticket is still a 404 before any move
        move_and_detail(tiny, tid, "sign", actor="x", role="town", at=at(2, 11), scope=water)


def test_writes_are_one_statement_each(tiny):  # noqa: F811
    intake(tiny, at(2, 8))  # the resolver's index and the statement caches are warm
    with statements(tiny) as seen:
        out = intake(tiny, at(2, 9), **pt(600, 100))
    # the registry version (the resolver), the route and duplicate lookup, the insert; no read-back
    assert len(seen) == 3 and not any(s.startswith("SELECT tickets.") for s in seen), seen
    tiny.expunge_all()
    with statements(tiny) as seen:
        move_and_detail(tiny, out["id"], "check", actor="x", role="district", payload={"verified": True},
                          at=at(2, 10))
    assert len(seen) == 3, seen  # lock and read, update and insert, the timeline
    tiny.expunge_all()
    with statements(tiny) as seen:
        detail(tiny, out["id"])
    assert len(seen) == 2, seen  # the ticket with its children and photos, the timeline


def test_a_rolled_back_write_is_forgotten_like_a_flushed_one(tiny):  # noqa: F811
    kept = new(tiny, at(2, 9))
    with pytest.raises(RuntimeError):
        with tiny.begin_nested():
            gone = new(tiny, at(2, 9), x=600, y=100)
            mv(tiny, kept, "dispatch", "district", at(2, 9, 30), assignee=TOWN)
            assert inspect(gone).persistent and kept.state == "dispatched"
            raise RuntimeError("the request failed")
    assert inspect(gone).transient and gone not in tiny  # expunged, as an ORM insert would be
    assert kept.state == "received" and kept.assignee is None  # expired and read again
    tiny.flush()  # nothing is written twice, nothing is left pending
    assert tiny.execute(text("SELECT count(*) FROM tickets")).scalar() == 1
    assert [e["move"] for e in timeline(tiny, kept.id)] == ["receive"]
    mv(tiny, kept, "dispatch", "district", at(2, 9, 40), assignee=TOWN)  # and it moves on normally
    assert read_back(tiny, kept.id)["state"] == "dispatched"


def test_allowed_moves_are_cached_but_each_answer_is_its_own_list():
    first = allowed_moves("received", "district")
    first.append("fly")
    assert allowed_moves("received", "district") == ["check", "reject", "dispatch", "sign_off"]
    with pytest.raises(InvalidInput):
        allowed_moves("received", "emperor")


@pytest.fixture
def committed(scratch_url):
    """The tiny registry city in a scratch database the test commits to."""
    eng = create_engine(scratch_url)
    with Session(eng) as session:
        registry.import_areas(session, city.areas(), who="t", why="notify test")
        registry.import_grids(session, city.grids(), who="t", why="notify test")
        session.commit()
    yield eng, scratch_url
    eng.dispose()


def _received(conn: psycopg.Connection, n: int) -> list[dict]:
    got = [json.loads(note.payload) for note in conn.notifies(timeout=5.0, stop_after=n)]
    assert len(got) == n, got
    return got


def test_ticket_events_are_notified_with_where_they_are_routed(committed):
    eng, url = committed
    listener = psycopg.connect(libpq_dsn(url), autocommit=True)
    listener.execute("LISTEN onemap_tickets")
    try:
        with Session(eng, expire_on_commit=False) as session:
            t = create_ticket(session, channel="hotline", category="0102", description="垃圾",
                                at=at(2, 9), **pt(100, 400))
            session.commit()
            (received,) = _received(listener, 1)
            assert (received["id"], received["move"], received["state"]) == (t.id, "receive", "received")
            assert (received["department"], received["assignee"], received["co_units"]) == (
                "sanitation", None, [])
            assert received["grid_code"] == "370783001001001" and received["town_code"] == TOWN

            apply_move(session, t.id, "dispatch", actor="x", role="district", payload={"assignee": "water"},
                         at=at(2, 9, 30))
            session.commit()
            apply_move(session, t.id, "return", actor="x", role="department", note="不归我们管",
                         at=at(2, 10))
            apply_move(session, t.id, "dispatch", actor="x", role="district", payload={"assignee": TOWN},
                         at=at(2, 10, 30))
            apply_move(session, t.id, "sign", actor="x", role="town", at=at(2, 11))
            apply_move(session, t.id, "join", actor="x", role="town", payload={"units": ["urban"]},
                         at=at(2, 11) + timedelta(minutes=5))
            session.commit()
            dispatched, returned, redispatched, signed, joined = _received(listener, 5)
            # each one statement's event sees the ticket as that statement left it
            assert (dispatched["state"], dispatched["assignee"]) == ("dispatched", "water")
            assert returned["state"] == "returned" and redispatched["assignee"] == TOWN
            assert signed["state"] == "signed" and joined["co_units"] == ["urban"]

            apply_move(session, t.id, "start", actor="x", role="town", at=at(2, 12))
            session.rollback()
            assert list(listener.notifies(timeout=0.5)) == []  # a rolled-back move is never announced
    finally:
        listener.close()

    # a department's live stream: its own tickets whole, the others' not at all
    def seen_by(department: str, payload: dict) -> bool:
        scope = Scope.for_role("department", user=department, department=department)
        message = event_text("tickets", json.dumps(payload, ensure_ascii=False))
        return scoped_message(scope, message) == message

    assert seen_by("sanitation", received) and not seen_by("water", received)
    assert seen_by("water", dispatched) and not seen_by("urban", dispatched)
    assert seen_by("urban", joined) and seen_by("sanitation", joined) and not seen_by("water", joined)


def test_the_department_payload_migration_goes_down_to_0008_and_up_again(scratch_url):
    from alembic import command

    from scripts.migrate import alembic_config
    from tests.conftest import owner_url

    def source() -> str:
        with psycopg.connect(libpq_dsn(scratch_url)) as conn:
            return conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'onemap_notify_ticket_events'").fetchone()[0]

    assert "'department', r.department" in source() and "'co_units', r.co_units" in source()
    command.downgrade(alembic_config(owner_url(scratch_url)), "0009_ticket_event_department-1")
    assert "department" not in source() and "'town_code', r.town_code" in source()
    command.upgrade(alembic_config(owner_url(scratch_url)), "heads")
    assert "'assignee', r.assignee" in source()
