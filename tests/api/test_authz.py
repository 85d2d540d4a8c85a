"""Ticket writes governed by the signed-in account (issue 14 items 1, 2 and the duplicate leak of 5).

One test per attack, over HTTP with sign-in on and real accounts (city admin, the district, two towns,
a grid worker, two departments, planner, analyst, viewer) in the demo city. Each attack was answered
200 before: the body chose the workflow role, the time and the card clock, and a duplicate report
named another town's ticket.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from api import middleware
from api.app import create_app
from gis.settings import ApiSettings
from layers.accounts.models import User
from layers.incidents.cards import run_cards_job
from layers.incidents.intake import create_ticket
from layers.incidents.moves import apply_move
from layers.incidents.read import timeline
from tests.api.test_auth import HASH, OFF, api, bearer, city, make_client  # noqa: F401 - fixtures
from tests.api.test_scope import _inside

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def stage(demo_session, city):  # noqa: F811
    """Two towns with a fresh ticket each (category 0102, routed to sanitation via the town) and an
    account for every kind of caller."""
    a, b = city["towns"][0], city["towns"][1]
    out = {"A": a, "B": b}
    for tag, town in (("A", a), ("B", b)):
        grid, lon, lat = _inside(demo_session, town)
        t = create_ticket(demo_session, channel="hotline", category="0102", description=f"垃圾 {tag}",
                            lon=lon, lat=lat, actor="test", dedupe=False)
        out.update({f"ticket_{tag}": t.id, f"grid_{tag}": grid, f"point_{tag}": (lon, lat)})
    specs = {
        "admin": dict(role="city"),
        "district": dict(role="district", area_code=city["district"]),
        "town_a": dict(role="town", area_code=a),
        "town_b": dict(role="town", area_code=b),
        "worker_a": dict(role="grid_worker", grid_codes=[out["grid_A"]]),
        "sanitation": dict(role="department", department="sanitation"),
        "water": dict(role="department", department="water"),
        "planner": dict(role="planner"),
        "analyst": dict(role="analyst"),
        "viewer": dict(role="viewer"),
    }
    for name, spec in specs.items():
        demo_session.add(User(username=name, display_name=name, password_hash=HASH, **spec))
    demo_session.flush()
    return out


class Caller:
    """Sign in once per account and post moves as it."""

    def __init__(self, client: TestClient) -> None:
        self.api, self.tokens = client, {}

    def headers(self, user: str) -> dict[str, str]:
        if user not in self.tokens:
            self.tokens[user] = bearer(self.api, user)
        return self.tokens[user]

    def move(self, user: str, ticket: int, name: str, **body):
        body.setdefault("actor", "值班员")  # ignored when signed in: the account is recorded
        return self.api.post(f"/tickets/{ticket}/{name}", json=body, headers=self.headers(user))

    def get(self, user: str, path: str):
        return self.api.get(path, headers=self.headers(user))


@pytest.fixture
def as_(api):  # noqa: F811
    return Caller(api)


def state(session, ticket: int) -> str:
    return session.execute(text("SELECT state FROM tickets WHERE id = :i"), {"i": ticket}).scalar_one()


def events(session, ticket: int) -> list[tuple[str, str, str]]:
    return [(e["move"], e["role"], e["actor"]) for e in timeline(session, ticket)]


def to(session, ticket: int, *moves: tuple[str, str, dict]) -> None:
    """Walk a ticket through moves with the service (the set-up, not the attack)."""
    for name, role, extra in moves:
        apply_move(session, ticket, name, actor="setup", role=role, **extra)


def dispatched(town_or_unit: str) -> tuple[str, str, dict]:
    return ("dispatch", "district", {"payload": {"assignee": town_or_unit}})


HANDLED = (("sign", "town", {}), ("start", "town", {}))


# --------------------------------------------------------------------------- the workflow role


def test_a_grid_worker_cannot_sign_off_as_city(as_, stage, demo_session):
    tid = stage["ticket_A"]
    r = as_.move("worker_a", tid, "sign_off", role="city", note="客观无法解决")
    assert r.status_code == 403, r.text
    assert "grid_worker" in r.json()["detail"] and r.json()["info"]["actor_role"] == "grid_worker"
    r = as_.move("worker_a", tid, "sign_off", note="客观无法解决")  # as itself: the table says no
    assert r.status_code == 409 and r.json()["info"]["allowed"] == ["check"]
    assert state(demo_session, tid) == "received"
    r = as_.move("worker_a", tid, "check", payload={"verified": True})  # its own move still works
    assert r.status_code == 200 and r.json()["timeline"][-1]["role"] == "grid_worker"
    assert r.json()["timeline"][-1]["actor"] == "worker_a"


def test_a_town_cannot_revisit_its_own_ticket(as_, stage, demo_session):
    tid = stage["ticket_A"]
    to(demo_session, tid, dispatched(stage["A"]), *HANDLED, ("complete", "town", {"note": "已清运"}),
       ("review_pass", "district", {}))
    r = as_.move("town_a", tid, "revisit", role="district", satisfaction=5)
    assert r.status_code == 403 and "not as district" in r.json()["detail"]
    assert as_.move("town_a", tid, "revisit", satisfaction=5).status_code == 409
    assert state(demo_session, tid) == "reviewed"
    r = as_.move("district", tid, "revisit", satisfaction=5)
    assert r.status_code == 200 and r.json()["timeline"][-1]["role"] == "district"


def test_a_town_cannot_extend_its_deadline_and_nobody_to_2099(as_, stage, demo_session):
    tid = stage["ticket_A"]
    to(demo_session, tid, dispatched(stage["A"]), *HANDLED)
    due = demo_session.execute(text("SELECT complete_due FROM tickets WHERE id = :i"), {"i": tid}).scalar_one()
    far = {"note": "需封闭施工", "payload": {"until": "2099-01-01T00:00:00+08:00"}}
    assert as_.move("town_a", tid, "extend", role="district", **far).status_code == 403
    assert as_.move("town_a", tid, "extend", **far).status_code == 409  # extend is the centre's
    r = as_.move("district", tid, "extend", **far)
    assert r.status_code == 400 and "at most 366 days" in r.json()["detail"]
    assert demo_session.execute(text("SELECT complete_due FROM tickets WHERE id = :i"),
                                {"i": tid}).scalar_one() == due
    soon = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    assert as_.move("district", tid, "extend", note="需封闭施工", payload={"until": soon}).status_code == 200


def test_a_town_cannot_dispatch_or_grab_for_another_town(as_, stage, demo_session):
    tid, a, b = stage["ticket_A"], stage["A"], stage["B"]
    r = as_.move("town_a", tid, "dispatch", role="district", payload={"assignee": b})
    assert r.status_code == 403
    r = as_.move("town_a", tid, "grab", role="town", payload={"assignee": b})
    assert r.status_code == 403 and b in r.json()["detail"]
    assert as_.move("town_b", tid, "grab").status_code == 404  # not its town: as if it did not exist
    assert state(demo_session, tid) == "received"
    r = as_.move("town_a", tid, "grab", role="town")  # the account's own role may be repeated
    assert r.status_code == 200 and r.json()["assignee"] == a


def test_handling_and_review_belong_to_the_right_unit(as_, stage, demo_session):
    tid = stage["ticket_A"]
    to(demo_session, tid, dispatched("sanitation"))
    r = as_.move("town_a", tid, "sign", role="town")  # in its town, but dispatched to a department
    assert r.status_code == 403 and "assigned to sanitation" in r.json()["detail"]
    assert as_.move("water", tid, "sign", role="department").status_code == 404  # another department's ticket
    assert as_.move("sanitation", tid, "sign", role="department").status_code == 200
    # a town does not review its own work: the district does
    other = create_ticket(demo_session, channel="patrol", category="0102", description="垃圾",
                            lon=stage["point_A"][0], lat=stage["point_A"][1], actor="t", dedupe=False).id
    to(demo_session, other, dispatched(stage["A"]), *HANDLED, ("complete", "town", {"note": "已清运"}))
    r = as_.move("town_a", other, "review_pass", role="town")
    assert r.status_code == 403 and "reviewed by the district" in r.json()["detail"]
    assert as_.move("district", other, "review_pass").status_code == 200


def test_backdating_is_an_admin_import_only(as_, stage, demo_session):
    tid = stage["ticket_A"]
    demo_session.execute(text("UPDATE tickets SET created_at = now() - interval '2 hours' WHERE id = :i"),
                         {"i": tid})
    past = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
    body = {"payload": {"verified": True}, "at": past.isoformat()}
    for user, role in (("town_a", "town"), ("district", "district"), ("worker_a", "grid_worker")):
        r = as_.move(user, tid, "check", role=role, **body)
        assert r.status_code == 403 and "server's time" in r.json()["detail"], user
    future = {"payload": {"verified": True}, "at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    assert as_.move("admin", tid, "check", **future).status_code == 400
    assert [e[0] for e in events(demo_session, tid)] == ["receive"]
    before = datetime.now(UTC)
    r = as_.move("town_a", tid, "check", payload={"verified": True})
    assert r.status_code == 200
    assert before <= datetime.fromisoformat(r.json()["timeline"][-1]["at"]) <= datetime.now(UTC)
    imported = as_.move("admin", tid, "check", **body)  # the import path
    assert imported.status_code == 200
    assert past in {datetime.fromisoformat(e["at"]) for e in imported.json()["timeline"]}


def test_detail_names_the_callers_role_and_moves(as_, stage, api):  # noqa: F811
    path = f"/tickets/{stage['ticket_A']}"
    expect = {"town_a": ("town", ["check", "grab"]), "worker_a": ("grid_worker", ["check"]),
              "district": ("district", ["check", "reject", "dispatch", "sign_off"]),
              "admin": ("city", ["check", "reject", "dispatch", "sign_off"]),
              "sanitation": ("department", []), "analyst": (None, []), "viewer": (None, []),
              "planner": (None, [])}
    for user, (role, moves) in expect.items():
        detail = as_.get(user, path).json()
        assert (detail["actor_role"], detail["my_moves"]) == (role, moves), user
    for user in ("planner", "analyst", "viewer"):  # no workflow role: no move at all
        assert as_.move(user, stage["ticket_A"], "check", payload={"verified": True}).status_code == 403


def test_demo_mode_keeps_the_body_role_as_its_role_switch(demo_session, stage):
    demo = make_client(demo_session, OFF)
    tid = stage["ticket_A"]
    detail = demo.get(f"/tickets/{tid}").json()
    assert (detail["actor_role"], detail["my_moves"]) == ("district", ["check", "reject", "dispatch", "sign_off"])
    assert detail["allowed"]["town"] == ["check", "grab"]  # the switch's other roles
    r = demo.post(f"/tickets/{tid}/grab", json={"actor": "值班员", "role": "town",
                                                 "payload": {"assignee": stage["A"]}})
    assert r.status_code == 200 and r.json()["timeline"][-1]["role"] == "town"
    assert r.json()["timeline"][-1]["actor"] == "值班员"


def test_placing_and_attaching_act_as_the_account(as_, stage, demo_session, api):  # noqa: F811
    lost = create_ticket(demo_session, channel="hotline", category="0102", description="位置不明",
                           lon=0.0, lat=0.0, actor="t")
    assert lost.unplaced and lost.department == "sanitation"  # visible to the department
    spot = {"lon": stage["point_A"][0], "lat": stage["point_A"][1], "actor": "坐席"}
    r = api.post(f"/tickets/{lost.id}/place", json=spot, headers=as_.headers("sanitation"))
    assert r.status_code == 403 and "command centre" in r.json()["detail"]
    r = api.post(f"/tickets/{lost.id}/place", json={**spot, "role": "district"}, headers=as_.headers("admin"))
    assert r.status_code == 403  # a city admin acts as city
    r = api.post(f"/tickets/{lost.id}/place", json=spot, headers=as_.headers("admin"))
    assert r.status_code == 200 and r.json()["town_code"] == stage["A"]
    assert r.json()["timeline"][-1]["role"] == "city"
    r = api.post(f"/tickets/{stage['ticket_A']}/attachments", files={"file": ("现场.png", PNG, "image/png")},
                 headers=as_.headers("worker_a"))
    assert r.status_code == 201
    assert events(demo_session, stage["ticket_A"])[-1] == ("attach", "grid_worker", "worker_a")


# --------------------------------------------------------------------------- cards


def test_cards_are_the_servers_not_a_writers(as_, stage, api, demo_session):  # noqa: F811
    for user in ("town_a", "district", "worker_a"):
        r = api.post("/tickets/cards/refresh", params={"now": "2030-01-01T00:00:00+08:00"},
                     headers=as_.headers(user))
        assert r.status_code == 403, user
    r = api.post("/tickets/cards/refresh", params={"now": "2030-01-01T00:00:00+08:00"}, headers=as_.headers("admin"))
    assert r.status_code == 400 and "server's time" in r.json()["detail"]
    assert demo_session.scalar(text("SELECT count(*) FROM tickets WHERE card = 'red' AND created_at > now() "
                                    "- interval '1 hour'")) == 0
    r = api.post("/tickets/cards/refresh", headers=as_.headers("admin"))
    assert r.status_code == 200 and r.json()["ran"] is True and r.json()["checked"] >= 2


def test_the_card_job_runs_once_per_period_across_processes(demo_engine):
    """Two sessions stand for two server processes: while one holds the claim the other skips, and
    after a run the next tick inside the period skips too."""
    every = timedelta(minutes=5)
    with demo_engine.connect() as c1, demo_engine.connect() as c2:
        t1, t2 = c1.begin(), c2.begin()
        one, two = Session(bind=c1), Session(bind=c2)
        one.execute(text("UPDATE job_runs SET started_at = NULL WHERE name = 'ticket_cards'"))
        assert one.execute(text("SELECT count(*) FROM job_runs")).scalar() == 1
        assert run_cards_job(one, every=every) is not None
        assert run_cards_job(two, every=every) is None  # claimed by the other process: skipped
        assert run_cards_job(one, every=every) is None  # ran just now: nothing to do this period
        assert run_cards_job(one, every=every, force=True) is not None  # an admin's forced run
        t1.rollback(), t2.rollback()


def test_the_server_runs_the_card_job_on_its_own(db_url):
    """A real app on the test database with a 1 s period: the job runs without any request."""
    eng = create_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE job_runs SET started_at = NULL, result = '{}' WHERE name = 'ticket_cards'"))
    app = create_app(ApiSettings(cards_every_s=1), database_url=db_url)
    middleware.install(app, auth=OFF)
    with TestClient(app):
        deadline = time.monotonic() + 15
        row = None
        while time.monotonic() < deadline:
            with eng.connect() as conn:
                row = conn.execute(text("SELECT started_at, result FROM job_runs WHERE name = 'ticket_cards'")).one()
            if row.started_at is not None:
                break
            time.sleep(0.2)
    eng.dispose()
    assert row is not None and row.started_at is not None, "the job did not run"
    assert set(row.result) == {"checked", "changed", "yellow", "red"}


# --------------------------------------------------------------------------- duplicates


def test_a_duplicate_report_names_no_other_towns_ticket(as_, stage, api, demo_session):  # noqa: F811
    lon, lat = stage["point_B"]
    theirs = stage["ticket_B"]
    report = {"channel": "hotline", "category": "0102", "description": "垃圾没人管", "lon": lon, "lat": lat}
    before = events(demo_session, theirs)
    r = api.post("/tickets", json=report, headers=as_.headers("town_a"))
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine["duplicate_of"] is None and mine["state"] == "received"
    assert f"#{theirs}" not in r.text and "重复" not in r.text and "米" not in r.text
    public = api.post("/open311/v2/requests.json", data={"service_code": "0102", "lat": lat, "long": lon},
                      headers=as_.headers("town_a"))
    assert public.status_code == 201 and f"#{theirs}" not in public.text
    assert events(demo_session, theirs) == before  # nothing written into the other town's ticket
    # the town that owns it (and anyone who sees it) still gets the report linked
    r = api.post("/tickets", json=report, headers=as_.headers("town_b"))
    assert r.status_code == 201 and r.json()["duplicate_of"] == theirs
    assert events(demo_session, theirs)[-1][0] == "duplicate"
