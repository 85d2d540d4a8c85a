"""Tickets against a real PostGIS: intake, every move, the timeline, duplicates, unplaced, cards."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import text

from gis import registry
from gis.errors import IllegalMove, InvalidInput, NotFound
from layers.incidents.cards import refresh_cards
from layers.incidents.intake import create_ticket, place_ticket
from layers.incidents.moves import apply_move, revisit
from layers.incidents.read import detail, list_tickets, summary, timeline
from layers.incidents.routes import routing_table, set_route
from layers.incidents.store import get_ticket
from tests import registry_city as city

SH = ZoneInfo("Asia/Shanghai")
TOWN = "370783001000"
WEST, EAST = "370783001001", "370783001002"


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def pt(x: float, y: float) -> dict:
    """A point in the tiny city's local metres (EPSG:4528)."""
    return {"lon": city.X0 + x, "lat": city.Y0 + y, "crs": city.GK}


@pytest.fixture
def tiny(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    registry.import_grids(session, city.grids(), who="t", why="t")
    return session


def new(session, when, *, category="0102", channel="hotline", x=100.0, y=400.0, **kw):
    return create_ticket(
        session,
        channel=channel,
        category=category,
        description="路边垃圾堆积",
        at=when,
        reporter_phone="13812341234",
        **{**pt(x, y), **kw},
    )


def mv(session, ticket, name, role, when, note=None, actor="张三", **payload):
    return apply_move(
        session, ticket.id, name, actor=actor, role=role, note=note, payload=payload, at=when
    )


def test_intake_freezes_the_place_and_starts_the_dispatch_clock(tiny):
    t = new(tiny, at(2, 9))
    assert (t.state, t.grid_code, t.village_code, t.town_code, t.district_code) == (
        "received",
        "370783001001001",
        WEST,
        TOWN,
        "370783000000",
    )
    assert t.match == "inside" and not t.unplaced and t.department == "sanitation"
    assert t.dispatch_due == at(3, 17, 30)  # 1 working day: close of Tuesday
    events = timeline(tiny, t.id)
    assert [(e["move"], e["from_state"], e["to_state"]) for e in events] == [
        ("receive", None, "received")
    ]
    assert summary(t)["reporter_phone"] == "138****1234"


def walk_a(s):
    """Ticket A (hotline 暴露垃圾): check, dispatch, split, sign, join, start, complete, review_fail,
    complete, review_pass, unsatisfied revisit, complete, review_pass, revisit, close."""
    a = new(s, at(2, 9))
    mv(s, a, "check", "grid_worker", at(2, 9, 10), verified=True)
    mv(s, a, "dispatch", "district", at(2, 9, 30), assignee=TOWN)
    assert (a.sign_due, a.complete_due) == (at(2, 11, 30), at(3, 10))  # 2 and 8 working hours
    mv(s, a, "split", "town", at(2, 10), villages=[WEST, EAST])
    mv(s, a, "sign", "town", at(2, 10, 30))
    mv(s, a, "join", "town", at(2, 10, 40), units=["sanitation"])
    mv(s, a, "start", "town", at(2, 11))
    mv(s, a, "complete", "town", at(2, 15), note="已清运")
    mv(s, a, "verify_fix", "grid_worker", at(2, 15, 30), fixed=False)
    mv(s, a, "review_fail", "district", at(2, 16), note="现场仍有残留")
    mv(s, a, "complete", "town", at(2, 16, 30), note="二次清运")
    mv(s, a, "review_pass", "district", at(2, 17))
    revisit(s, a.id, actor="回访员", satisfaction=2, at=at(3, 9))
    mv(s, a, "complete", "town", at(3, 9, 30), note="第三次清运并清洗地面")
    mv(s, a, "review_pass", "district", at(3, 9, 40))
    return a


def test_one_ticket_through_every_move_and_its_timeline(tiny):
    a = walk_a(tiny)
    assert (a.state, a.rework_count, a.co_units) == ("reviewed", 2, ["sanitation"])
    with pytest.raises(IllegalMove) as refused:  # 100% revisit for a hotline ticket
        mv(tiny, a, "close", "district", at(3, 10))
    assert refused.value.detail["allowed"] == ["revisit", "sign_off"]
    revisit(tiny, a.id, actor="回访员", satisfaction=5, at=at(3, 10, 30))
    mv(tiny, a, "close", "district", at(3, 10, 40))
    assert (a.state, a.closed_at, a.satisfied) == ("closed", at(3, 10, 40), True)
    events = timeline(tiny, a.id)
    assert [(e["move"], e["to_state"], e["rework"]) for e in events] == [
        ("receive", "received", False),
        ("check", "received", False),
        ("dispatch", "dispatched", False),
        ("split", "dispatched", False),
        ("sign", "signed", False),
        ("join", "signed", False),
        ("start", "handling", False),
        ("complete", "completed", False),
        ("verify_fix", "completed", False),
        ("review_fail", "handling", True),
        ("complete", "completed", False),
        ("review_pass", "reviewed", False),
        ("revisit", "handling", True),
        ("complete", "completed", False),
        ("review_pass", "reviewed", False),
        ("revisit", "revisited", False),
        ("close", "closed", False),
    ]
    assert events[4]["payload"] == {"due": at(2, 11, 30).isoformat(), "on_time": True}
    assert events[12]["payload"] == {"satisfaction": 2, "satisfied": False}
    children = detail(tiny, a.id)["children"]
    kids = [get_ticket(tiny, c) for c in children]
    assert [(k.state, k.assignee, k.village_code, k.parent_id) for k in kids] == [
        ("dispatched", WEST, WEST, a.id),
        ("dispatched", EAST, EAST, a.id),
    ]
    assert kids[0].grid_code == a.grid_code  # the parent's own point stays in its village


def test_grab_return_redispatch_extend_and_sign_off(tiny):
    b = new(tiny, at(2, 10), category="0401", channel="app", x=700, y=300)
    mv(tiny, b, "grab", "town", at(2, 10, 5), assignee=TOWN)
    assert b.sign_due == at(2, 12, 5)  # urgent clock: calendar hours
    mv(tiny, b, "sign", "town", at(2, 13))
    with pytest.raises(InvalidInput, match="needs note"):
        mv(tiny, b, "return", "town", at(2, 14))
    mv(tiny, b, "return", "town", at(2, 14), note="需住建部门处置")
    mv(tiny, b, "dispatch", "district", at(2, 14, 30), assignee="housing")
    assert (b.assignee, b.complete_due) == ("housing", at(3, 14, 30))
    mv(tiny, b, "sign", "department", at(2, 15))
    mv(tiny, b, "start", "department", at(2, 15, 30))
    mv(tiny, b, "extend", "district", at(3, 9), note="需封闭施工", until=at(4, 18).isoformat())
    assert b.complete_due == at(4, 18)
    mv(tiny, b, "complete", "department", at(4, 12), note="已回填")
    c = new(tiny, at(2, 11), category="0507", channel="patrol", x=100, y=100)
    mv(tiny, c, "dispatch", "district", at(2, 11, 10), assignee=TOWN)
    mv(tiny, c, "sign_off", "district", at(2, 12), note="客观无法解决，经批准销号")
    assert (c.state, c.closed_at) == ("signed_off", at(2, 12))
    with pytest.raises(IllegalMove) as refused:
        mv(tiny, c, "start", "town", at(2, 13))
    assert refused.value.detail["allowed"] == []


def test_stored_due_dates_cross_national_day(tiny):
    t = new(tiny, at(30, 16, month=9), category="0103")
    mv(tiny, t, "dispatch", "district", at(30, 16, month=9), assignee=TOWN)
    # 2 working hours: 1.5 h on Wed 30 Sep, then 0.5 h after the holiday (1-7 Oct)
    assert t.sign_due == at(8, 9, month=10)
    # 3 working days after Wed 30 Sep: Thu 8, Fri 9, Sat 10 Oct (a make-up working day)
    assert t.complete_due == at(10, 17, 30, month=10)
    stored = tiny.execute(
        text("SELECT complete_due FROM tickets WHERE id = :i"), {"i": t.id}
    ).scalar()
    assert stored == at(10, 17, 30, month=10)


def test_duplicates_link_to_the_first_open_ticket(tiny):
    a = new(tiny, at(2, 9))
    dup = new(tiny, at(2, 12), x=120, y=410)  # 22 m away, 3 hours later
    assert (dup.duplicate_of, dup.state) == (a.id, "closed")
    far = new(tiny, at(2, 12, 5), x=300, y=400)  # 200 m away
    late = new(tiny, at(3, 9, 1), x=100, y=401)  # 24 h and a minute later
    other = new(tiny, at(2, 12, 10), category="0104", x=100, y=400)  # another category
    assert (far.duplicate_of, late.duplicate_of, other.duplicate_of) == (None, None, None)
    link = tiny.execute(
        text(
            "SELECT duplicate_of, round(distance_m), round(minutes_apart) "
            "FROM ticket_duplicates WHERE ticket_id = :i"
        ),
        {"i": dup.id},
    ).one()
    assert tuple(link) == (a.id, 22, 180)
    assert timeline(tiny, a.id)[-1]["move"] == "duplicate"
    total, rows = list_tickets(tiny)
    assert dup.id not in [r["id"] for r in rows] and total == 4
    with pytest.raises(IllegalMove, match="duplicate"):
        mv(tiny, dup, "dispatch", "district", at(2, 13), assignee=TOWN)


def test_unplaced_tickets_are_kept_and_can_be_placed(tiny):
    out = new(tiny, at(2, 9), x=5000, y=5000)
    assert (out.state, out.unplaced, out.grid_code) == ("received", True, None)
    assert "outside every grid" in out.unplaced_reason
    by_address = create_ticket(
        tiny,
        channel="hotline",
        category="0102",
        description="垃圾",
        address="圣城街道东关社区幸福路12号",
        at=at(2, 9, 5),
    )
    assert by_address.unplaced and by_address.unplaced_reason
    total, rows = list_tickets(tiny, unplaced=True)
    assert total == 2 and {r["id"] for r in rows} == {out.id, by_address.id}
    with pytest.raises(InvalidInput, match="could not be resolved"):
        new(tiny, at(2, 9), x=5000, y=5000, require_place=True)
    place_ticket(tiny, out.id, **pt(600, 100), actor="坐席", at=at(2, 10))
    assert (out.unplaced, out.grid_code) == (False, "370783001002001")
    assert timeline(tiny, out.id)[-1]["move"] == "place"


def test_bad_input_writes_nothing(tiny):
    before = tiny.execute(text("SELECT count(*) FROM tickets")).scalar()
    with pytest.raises(InvalidInput, match="close matches") as unknown:
        new(tiny, at(2, 9), category="0190")
    assert unknown.value.detail["close_matches"]
    with pytest.raises(InvalidInput, match="needs a location"):
        create_ticket(tiny, channel="app", category="0102", description="x", at=at(2, 9))
    with pytest.raises(InvalidInput, match="unknown channel"):
        new(tiny, at(2, 9), channel="fax")
    assert tiny.execute(text("SELECT count(*) FROM tickets")).scalar() == before
    a = new(tiny, at(2, 9))
    with pytest.raises(IllegalMove) as refused:
        revisit(tiny, a.id, actor="回访员", satisfaction=5, at=at(2, 10))
    assert refused.value.detail["allowed"] == ["check", "reject", "dispatch", "sign_off"]
    with pytest.raises(NotFound):
        mv(tiny, type("T", (), {"id": 10**9})(), "sign", "town", at(2, 10))
    mv(tiny, a, "dispatch", "district", at(2, 9, 30), assignee=TOWN)
    for name in ("sign", "start"):
        mv(tiny, a, name, "town", at(2, 10))
    mv(tiny, a, "complete", "town", at(2, 11), note="ok")
    mv(tiny, a, "review_pass", "district", at(2, 11, 30))
    with pytest.raises(InvalidInput, match="1-5"):
        revisit(tiny, a.id, actor="回访员", satisfaction=9, at=at(2, 12))
    with pytest.raises(InvalidInput, match="assignee"):
        mv(tiny, new(tiny, at(2, 9), x=600, y=100), "dispatch", "district", at(2, 10), assignee="x")
    assert len(timeline(tiny, a.id)) == 6 and a.state == "reviewed"


def test_events_are_append_only(tiny):
    a = new(tiny, at(2, 9))
    tiny.flush()
    with pytest.raises(Exception, match="append-only"):
        with tiny.begin_nested():
            tiny.execute(
                text("UPDATE ticket_events SET note = 'x' WHERE ticket_id = :i"), {"i": a.id}
            )
    with pytest.raises(Exception, match="append-only"):
        with tiny.begin_nested():
            tiny.execute(text("DELETE FROM ticket_events WHERE ticket_id = :i"), {"i": a.id})


def test_cards_turn_yellow_then_red_and_are_recorded(tiny):
    a = new(tiny, at(2, 9))
    mv(tiny, a, "dispatch", "district", at(2, 9, 30), assignee=TOWN)  # sign due 11:30
    assert refresh_cards(tiny, at(2, 10))["changed"] == 0
    counts = refresh_cards(tiny, at(2, 11, 10))  # 100 of 120 minutes used: >= 80%
    assert (counts["yellow"], counts["changed"], a.card) == (1, 1, "yellow")
    refresh_cards(tiny, at(2, 11, 31))
    assert a.card == "red"
    assert refresh_cards(tiny, at(2, 11, 40))["changed"] == 0
    cards = [e["payload"]["card"] for e in timeline(tiny, a.id) if e["move"] == "card"]
    assert cards == ["yellow", "red"]
    assert [r["id"] for r in list_tickets(tiny, overdue=True, now=at(2, 11, 40))[1]] == [a.id]
    assert list_tickets(tiny, overdue=True, now=at(2, 11))[0] == 0
    mv(tiny, a, "sign", "town", at(2, 12))
    refresh_cards(tiny, at(2, 12, 1))
    assert a.card == "ok"


def test_an_address_is_geocoded_or_queued_with_the_reason(tiny):
    from gis.coords import to_wgs84
    from gis.geocode import import_addresses

    p = pt(700, 200)
    lon, lat = (float(v[0]) for v in to_wgs84([p["lon"]], [p["lat"]], p["crs"]))
    import_addresses(
        tiny,
        pd.DataFrame(
            {
                "town": ["圣城街道"],
                "road": ["幸福路"],
                "number": ["12"],
                "lon": [str(lon)],
                "lat": [str(lat)],
            }
        ),
    )
    t = create_ticket(
        tiny,
        channel="hotline",
        category="0102",
        description="垃圾",
        address="圣城街道幸福路12号",
        at=at(2, 9),
    )
    assert (t.unplaced, t.match, t.grid_code, t.town_code) == (
        False,
        "geocoded",
        "370783001002001",
        TOWN,
    )
    miss = create_ticket(
        tiny,
        channel="hotline",
        category="0102",
        description="垃圾",
        address="圣城街道幸福路999号",
        at=at(2, 9),
    )
    assert miss.unplaced and miss.unplaced_reason.startswith("address ")


def test_planners_routing_overrides_apply_to_new_tickets(tiny):
    set_route(tiny, "0102", department="urban", needs_town=False, who="规划员", why="试点")
    t = new(tiny, at(2, 9))
    assert (t.department, t.needs_town) == ("urban", False)
    with pytest.raises(InvalidInput, match="unknown department"):
        set_route(tiny, "0102", department="nasa", needs_town=False, who="x")
    assert routing_table(tiny).route("0102").department == "urban"
