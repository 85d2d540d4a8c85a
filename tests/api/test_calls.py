"""Grid calls, departments report (网格呼叫、部门报到) over HTTP with sign-in on and real accounts of every
level: worker → grid chief → community → town → department, arrival on site checked against the
place, the on-site clock counted in the KPIs; and the refusals (wrong level, wrong area, too far, late)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from layers.accounts.models import User
from layers.accounts.security import scope_of
from layers.calls import service as S
from layers.calls import workflow as W
from layers.incidents.intake import create_ticket
from layers.workers import registry as workers
from tests.api.test_auth import HASH, api, bearer  # noqa: F401 - fixtures

METRES_PER_DEGREE_LAT = 111_320.0


def _grid(session, offset: int = 0) -> dict:
    """A basic grid of the demo city (its codes) and a point inside it."""
    row = session.execute(text(
        "SELECT code, village_code, town_code, district_code, ST_X(p) AS lon, ST_Y(p) AS lat FROM ("
        " SELECT code, village_code, town_code, district_code, ST_PointOnSurface(geom) AS p FROM grids"
        " WHERE valid_to IS NULL AND kind = 'basic' ORDER BY town_code DESC, code OFFSET :o LIMIT 1) g"),
        {"o": offset}).mappings().one()
    return dict(row)


@pytest.fixture
def world(demo_session):
    """One grid with its worker, chief, community, town and the water company; accounts elsewhere."""
    g = _grid(demo_session)
    other = demo_session.execute(text(
        "SELECT village_code, town_code FROM grids WHERE valid_to IS NULL AND town_code <> :t LIMIT 1"),
        {"t": g["town_code"]}).mappings().one()
    other_village = demo_session.scalar(text(
        "SELECT village_code FROM grids WHERE valid_to IS NULL AND town_code = :t AND village_code <> :v LIMIT 1"),
        {"t": g["town_code"], "v": g["village_code"]})
    workers.create_worker(demo_session, id="chief01", name="王网格长", role="grid_chief", grids=[g["code"]])
    workers.create_worker(demo_session, id="worker01", name="李网格员", role="full_time", grids=[g["code"]])
    specs = {
        "worker01": dict(role="grid_worker", grid_codes=[g["code"]]),
        "chief01": dict(role="grid_worker", grid_codes=[g["code"]]),
        "community": dict(role="village", area_code=g["village_code"]),
        "community_other": dict(role="village", area_code=other_village),
        "town": dict(role="town", area_code=g["town_code"]),
        "town_other": dict(role="town", area_code=other["town_code"]),
        "water": dict(role="department", department="water"),
        "power": dict(role="department", department="power"),
        "district": dict(role="district", area_code=g["district_code"]),
        "admin": dict(role="city"),
    }
    for name, spec in specs.items():
        demo_session.add(User(username=name, display_name=name, password_hash=HASH, **spec))
    ticket = create_ticket(demo_session, channel="patrol", category="0402", description="自来水管破裂,路面冒水",
                             lon=g["lon"], lat=g["lat"], actor="worker01")
    assert ticket.grid_code == g["code"] and ticket.department == "water"
    demo_session.flush()
    return {**g, "ticket": ticket.id}


def _move(api, who: str, call_id: int, move: str, **body):  # noqa: F811
    return api.post(f"/calls/{call_id}/{move}", json=body, headers=bearer(api, who))


def _north(lat: float, metres: float) -> float:
    return lat + metres / METRES_PER_DEGREE_LAT


def test_a_call_climbs_every_level_and_the_department_reports_on_site(api, world, demo_session):  # noqa: F811
    raised = api.post("/calls", json={"ticket_id": world["ticket"], "description": "主管道破裂,网格无法处置"},
                      headers=bearer(api, "worker01"))
    assert raised.status_code == 201, raised.text
    call = raised.json()
    cid = call["id"]
    assert call["state"] == "at_chief" and call["raised_level"] == "worker" and call["department"] == "water"
    assert call["grid_code"] == world["code"] and call["my_moves"] == ["withdraw"]
    assert datetime.fromisoformat(call["level_due"]) - datetime.fromisoformat(call["created_at"]) == timedelta(
        minutes=30)

    # wrong level: the community may see the call but it waits for the grid chief
    early = _move(api, "community", cid, "approve")
    assert early.status_code == 403 and "网格长" in early.json()["detail"]
    # wrong area: another community and another town do not even see it
    for who in ("community_other", "town_other"):
        assert _move(api, who, cid, "approve").status_code == 404
        assert api.get(f"/calls/{cid}", headers=bearer(api, who)).status_code == 404
    # a worker of the grid who is not its chief cannot vet
    assert _move(api, "worker01", cid, "approve").status_code == 403

    steps = [("chief01", "at_community"), ("community", "at_town"), ("town", "at_department")]
    for who, state in steps:
        detail = api.get(f"/calls/{cid}", headers=bearer(api, who)).json()
        assert "approve" in detail["my_moves"], (who, detail)
        res = _move(api, who, cid, "approve", note=f"{who} 同意呼叫")
        assert res.status_code == 200, res.text
        assert res.json()["state"] == state
    dispatched = res.json()
    assert datetime.fromisoformat(dispatched["sign_due"]) - datetime.fromisoformat(
        dispatched["dispatched_at"]) == timedelta(hours=2)
    assert datetime.fromisoformat(dispatched["onsite_due"]) - datetime.fromisoformat(
        dispatched["dispatched_at"]) == timedelta(hours=1)  # water: on site within 1 hour

    # another department neither sees nor signs it; the water company does
    assert _move(api, "power", cid, "sign").status_code == 404
    assert _move(api, "water", cid, "arrive", lon=world["lon"], lat=world["lat"]).status_code == 409  # not signed
    signed = _move(api, "water", cid, "sign")
    assert signed.status_code == 200 and signed.json()["state"] == "signed" and signed.json()["sign_on_time"]

    # too far: refused with the distance in the reason
    far = _move(api, "water", cid, "arrive", lon=world["lon"], lat=_north(world["lat"], 900))
    assert far.status_code == 400
    info = far.json()["info"]
    assert 880 < info["distance_m"] < 910 and info["radius_m"] == 200
    assert f"{info['distance_m']:,.0f} m from the place" in far.json()["detail"]
    near = _move(api, "water", cid, "arrive", lon=world["lon"], lat=_north(world["lat"], 50))
    assert near.status_code == 200, near.text
    body = near.json()
    assert body["state"] == "on_site" and body["onsite_on_time"] is True
    assert 45 < body["arrive_distance_m"] < 55
    done = _move(api, "water", cid, "resolve", note="已关阀抢修,恢复供水")
    assert done.status_code == 200 and done.json()["state"] == "resolved"
    moves = [(e["move"], e["role"], e["actor"]) for e in done.json()["timeline"]]
    assert moves == [("raise", "worker", "worker01"), ("approve", "grid_chief", "chief01"),
                     ("approve", "community", "community"), ("approve", "town", "town"),
                     ("sign", "department", "water"), ("arrive", "department", "water"),
                     ("resolve", "department", "water")]

    # the KPIs count it: per department and per town
    month = datetime.now(UTC).astimezone(W_TZ).strftime("%Y-%m")
    admin = bearer(api, "admin")
    rows = api.get(f"/kpis?level=department&month={month}&code=water", headers=admin).json()["rows"]
    water = next(r for r in rows if r["code"] == "water")
    assert (water["calls"], water["calls_onsite"], water["calls_onsite_on_time"]) == (1, 1, 1)
    assert water["onsite_on_time_rate"] == 1.0
    town = api.get(f"/kpis?level=town&month={month}&code={world['town_code']}", headers=admin).json()["rows"]
    assert town[0]["calls_onsite_on_time"] == 1 and town[0]["onsite_on_time_rate"] == 1.0


W_TZ = __import__("zoneinfo").ZoneInfo("Asia/Shanghai")


def _raised_ago(session, minutes: int, username: str, **fields) -> int:
    """A call raised ``minutes`` ago through the service (the API takes no ``at``), as ``username``."""
    user = session.query(User).filter_by(username=username).one()
    call = S.raise_call(session, scope_of(user), now=datetime.now(UTC) - timedelta(minutes=minutes), **fields)
    return call["id"]


def test_late_vetting_escalates_and_a_late_approval_is_refused(api, world, demo_session):  # noqa: F811
    cid = _raised_ago(demo_session, 45, "worker01", ticket_id=world["ticket"], description="水管破裂")
    # the chief had 30 minutes
    late = _move(api, "chief01", cid, "approve")
    assert late.status_code == 409 and "too late" in late.json()["detail"]
    detail = api.get(f"/calls/{cid}", headers=bearer(api, "community")).json()
    assert detail["state"] == "at_community" and detail["escalations"] == 1
    assert [e["move"] for e in detail["timeline"]] == ["raise", "escalate"]
    assert detail["timeline"][1]["role"] == "system"
    # the community's clock started when the chief's ran out: 60 minutes from there, 45 - 30 = 15 used
    assert detail["my_moves"] == ["approve", "reject"]
    rejected = _move(api, "community", cid, "reject")
    assert rejected.status_code == 400 and "note" in rejected.json()["detail"]
    ok = _move(api, "community", cid, "reject", note="非部门职责,由社区自行协调")
    assert ok.status_code == 200 and ok.json()["state"] == "rejected"
    assert _move(api, "town", cid, "approve").status_code == 409


def test_sweep_flags_a_late_department_and_the_kpis_count_a_late_arrival(api, world, demo_session):  # noqa: F811
    cid = _raised_ago(demo_session, 90, "town", lon=world["lon"], lat=world["lat"], department="power",
                      description="线杆倾斜,大面积停电")
    power = demo_session.query(User).filter_by(username="power").one()
    S.apply_move(demo_session, cid, "sign", scope_of(power), now=datetime.now(UTC) - timedelta(minutes=85))
    # power: on site within 1 hour of dispatch, 90 minutes ago
    swept = api.post("/calls/sweep", headers=bearer(api, "town")).json()
    assert swept == {"calls": 1, "events": 1}
    flagged = api.get(f"/calls/{cid}", headers=bearer(api, "power")).json()
    assert flagged["state"] == "signed" and flagged["raised_level"] == "town"
    assert flagged["overdue"] is True and flagged["timeline"][-1]["move"] == "flag"
    assert api.post("/calls/sweep", headers=bearer(api, "town")).json()["events"] == 0  # flagged once
    late = _move(api, "power", cid, "arrive", lon=world["lon"], lat=world["lat"])
    assert late.status_code == 200 and late.json()["onsite_on_time"] is False
    month = datetime.now(UTC).astimezone(W_TZ).strftime("%Y-%m")
    rows = api.get(f"/kpis?level=department&month={month}&code=power", headers=bearer(api, "admin")).json()["rows"]
    assert (rows[0]["calls_onsite"], rows[0]["calls_onsite_on_time"], rows[0]["onsite_on_time_rate"]) == (1, 0, 0.0)


def test_accounts_without_a_part_and_claimed_levels_are_refused(api, world):  # noqa: F811
    body = {"ticket_id": world["ticket"], "description": "水管破裂"}
    assert api.post("/calls", json=body, headers=bearer(api, "water")).status_code == 403  # departments answer
    assert api.post("/calls", json=body, headers=bearer(api, "district")).status_code == 403
    claimed = api.post("/calls", json={**body, "level": "town"}, headers=bearer(api, "worker01"))
    assert claimed.status_code == 403 and "signed-in account" in claimed.json()["detail"]
    assert api.post("/calls", json=body, headers=bearer(api, "town_other")).status_code == 404


def test_the_workflow_table_refuses_with_the_allowed_moves():
    with pytest.raises(Exception) as err:
        W.move("signed", "approve", level="town")
    assert err.value.detail["allowed"] == []
    assert W.allowed_moves("at_chief", "grid_chief") == ["approve", "reject", "withdraw"]  # own calls only
    assert W.move("at_town", "approve", level="town").to_state is W.State.AT_DEPARTMENT


def test_the_demo_names_its_level_when_sign_in_is_off(demo_client, demo_session):
    g = _grid(demo_session, offset=3)
    raised = demo_client.post("/calls", json={"lon": g["lon"], "lat": g["lat"], "department": "gas",
                                              "description": "燃气味道浓", "level": "worker", "actor": "演示网格员"})
    assert raised.status_code == 201, raised.text
    cid = raised.json()["id"]
    assert raised.json()["raised_by"] == "演示网格员" and raised.json()["state"] == "at_chief"
    assert demo_client.get(f"/calls/{cid}?level=grid_chief").json()["my_moves"] == ["approve", "reject", "withdraw"]
    for level in ("grid_chief", "community", "town"):
        assert demo_client.post(f"/calls/{cid}/approve", json={"level": level}).status_code == 200
    body = demo_client.get(f"/calls/{cid}").json()
    assert body["state"] == "at_department" and body["department_name"] == "燃气公司"
    assert demo_client.post(f"/calls/{cid}/sign", json={"level": "town"}).status_code == 403
