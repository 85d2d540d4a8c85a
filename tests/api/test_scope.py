"""Area scoping over HTTP with sign-in on: a town user sees only its town's tickets, workers, sensors
and exported features, and another town's object by id is a 404 exactly like a missing one."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import text

from layers.accounts.models import User
from layers.incidents.intake import create_ticket
from layers.sensors import registry as sensors
from layers.workers import registry as workers
from tests.api.test_auth import HASH, api, bearer, city  # noqa: F401 - fixtures

PHONE = "13812341234"


def _inside(session, town: str) -> tuple[str, float, float]:
    """A current grid of ``town`` and a point inside it."""
    row = session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) AS p FROM grids "
        "WHERE valid_to IS NULL AND town_code = :t ORDER BY code LIMIT 1) g"), {"t": town}).one()
    return row[0], float(row[1]), float(row[2])


@pytest.fixture
def world(demo_session, city):  # noqa: F811
    """Two towns, each with a ticket, a sensor and a worker with a fix; users scoped to each."""
    a, b = city["towns"][0], city["towns"][1]
    made = {"A": a, "B": b}
    for tag, town in (("A", a), ("B", b)):
        grid, lon, lat = _inside(demo_session, town)
        ticket = create_ticket(demo_session, channel="hotline", category="0102", description=f"垃圾 {tag}",
                                 lon=lon, lat=lat, reporter_name="张三", reporter_phone=PHONE, actor="test")
        assert ticket.town_code == town
        sensors.create_sensor(demo_session, id=f"S-{tag}", name=f"监测点{tag}", lon=lon, lat=lat)
        workers.create_worker(demo_session, id=f"W-{tag}", name=f"网格员{tag}", phone=PHONE, grids=[grid])
        demo_session.execute(text(
            "INSERT INTO worker_last_positions (worker_id, ts, geom, grid_code, town_code) "
            "VALUES (:w, :ts, ST_SetSRID(ST_MakePoint(:x, :y), 4326), :g, :t)"),
            {"w": f"W-{tag}", "ts": datetime.now(UTC), "x": lon, "y": lat, "g": grid, "t": town})
        made[f"ticket_{tag}"] = ticket.id
    for name, spec in {"city_admin": dict(role="city"), "town_a": dict(role="town", area_code=a),
                       "district_1": dict(role="district", area_code=city["district"]),
                       "analyst_a": dict(role="analyst", area_code=a)}.items():
        demo_session.add(User(username=name, display_name=name, password_hash=HASH, **spec))
    demo_session.flush()
    return made


def test_tickets_are_scoped_to_the_town(api, world, demo_session):  # noqa: F811
    headers = bearer(api, "town_a")
    listed = api.get("/tickets?limit=1000", headers=headers).json()
    expected = demo_session.scalar(text("SELECT count(*) FROM tickets WHERE duplicate_of IS NULL AND town_code = :t"),
                                   {"t": world["A"]})
    assert listed["total"] == expected >= 1
    assert {t["town_code"] for t in listed["items"]} == {world["A"]}
    assert world["ticket_A"] in {t["id"] for t in listed["items"]}
    assert next(t for t in listed["items"] if t["id"] == world["ticket_A"])["reporter_phone"] == "138****1234"
    mine = api.get(f"/tickets/{world['ticket_A']}", headers=headers)
    assert mine.status_code == 200 and mine.json()["reporter_phone"] == PHONE  # a town may call back
    other = api.get(f"/tickets/{world['ticket_B']}", headers=headers)
    missing = api.get("/tickets/999999999", headers=headers)
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == f"no ticket {world['ticket_B']}"
    # a town does not act as the district (403, whatever the ticket), and grabbing another town's
    # ticket as itself is answered as for a missing one
    move = api.post(f"/tickets/{world['ticket_B']}/dispatch", headers=headers,
                    json={"actor": "x", "role": "district", "payload": {"assignee": world["B"]}})
    assert move.status_code == 403 and "not as district" in move.json()["detail"]
    grab = api.post(f"/tickets/{world['ticket_B']}/grab", headers=headers, json={"actor": "x"})
    assert grab.status_code == 404 and grab.json()["detail"] == f"no ticket {world['ticket_B']}"
    assert api.get(f"/tickets/{world['ticket_B']}/nearest-workers", headers=headers).status_code == 404
    # Open311: scoped the same way, and never the reporter's name or phone
    public = api.get(f"/open311/v2/requests.json?service_request_id={world['ticket_A']},{world['ticket_B']}",
                     headers=headers)
    assert [r["service_request_id"] for r in public.json()] == [str(world["ticket_A"])]
    assert PHONE not in public.text and "张三" not in public.text
    assert api.get(f"/open311/v2/requests/{world['ticket_B']}.json", headers=headers).status_code == 404
    # KPIs: one's own town only; another town's is a 404
    month = datetime.now(UTC).astimezone().strftime("%Y-%m")
    rows = api.get(f"/kpis?level=town&month={month}", headers=headers).json()["rows"]
    assert {r["code"] for r in rows} <= {world["A"]}
    assert api.get(f"/kpis?level=town&code={world['B']}", headers=headers).status_code == 404
    assert api.get(f"/kpis?level=town&code={world['A']}", headers=headers).status_code == 200
    city_rows = api.get(f"/kpis?level=town&month={month}", headers=bearer(api, "city_admin")).json()["rows"]
    assert {world["A"], world["B"]} <= {r["code"] for r in city_rows}


def test_workers_are_scoped_and_phones_masked(api, world):  # noqa: F811
    headers = bearer(api, "town_a")
    listed = api.get("/workers", headers=headers).json()["features"]
    ids = {f["properties"]["id"] for f in listed}
    assert "W-A" in ids and "W-B" not in ids
    assert all(f["properties"]["town_code"] == world["A"] or world["A"][:9] in f["properties"]["grids"]
               for f in listed)
    assert {f["properties"]["phone"] for f in listed if f["properties"]["id"] == "W-A"} == {"138****1234"}
    assert api.get("/workers/W-A", headers=headers).status_code == 200
    assert api.get("/workers/W-B", headers=headers).status_code == 404
    assert api.get("/workers/W-none", headers=headers).status_code == 404
    assert api.get("/workers/W-B/track", headers=headers).status_code == 404
    assert api.patch("/workers/W-B", json={"name": "x"}, headers=headers).status_code == 404
    admin = {f["properties"]["id"] for f in api.get("/workers", headers=bearer(api, "city_admin")).json()["features"]}
    assert {"W-A", "W-B"} <= admin


def test_sensors_are_scoped(api, world):  # noqa: F811
    headers = bearer(api, "town_a")
    listed = api.get("/sensors", headers=headers).json()["features"]
    assert "S-A" in {f["id"] for f in listed} and "S-B" not in {f["id"] for f in listed}
    assert {f["properties"]["town_code"] for f in listed} == {world["A"]}
    assert api.get("/sensors/S-A", headers=headers).status_code == 200
    for path in ("/sensors/S-B", "/sensors/S-B/readings", "/sensors/S-none"):
        assert api.get(path, headers=headers).status_code == 404, path
    assert api.delete("/sensors/S-B", headers=headers).status_code == 404
    admin = {f["id"] for f in api.get("/sensors", headers=bearer(api, "city_admin")).json()["features"]}
    assert {"S-A", "S-B"} <= admin


def test_exports_need_the_permission_and_are_scoped(api, world, demo_session):  # noqa: F811
    assert api.get("/export/tickets?format=csv", headers=bearer(api, "town_a")).status_code == 403
    headers = bearer(api, "analyst_a")
    res = api.get("/export/tickets?format=csv", headers=headers)
    assert res.status_code == 200, res.text
    frame = pd.read_csv(io.BytesIO(res.content), dtype=str)
    expected = demo_session.scalar(text("SELECT count(*) FROM tickets WHERE duplicate_of IS NULL AND town_code = :t"),
                                   {"t": world["A"]})
    assert len(frame) == int(res.headers["x-feature-count"]) == expected >= 1
    assert set(frame["town_code"]) == {world["A"]}
    grids = api.get("/export/grids?format=csv", headers=headers)
    codes = pd.read_csv(io.BytesIO(grids.content), dtype=str)["code"]
    assert len(codes) > 0 and codes.str.startswith(world["A"][:9]).all()
    # the OGC API answers through the same selection
    items = api.get("/ogc/collections/tickets/items?limit=1000", headers=headers).json()["features"]
    assert {f["properties"]["town_code"] for f in items} == {world["A"]}
    assert api.get(f"/ogc/collections/tickets/items/{world['ticket_B']}", headers=headers).status_code == 404
    assert api.get(f"/ogc/collections/tickets/items/{world['ticket_A']}", headers=headers).status_code == 200


def test_writes_need_the_permission_and_record_the_signed_in_user(api, world, demo_session):  # noqa: F811
    town = bearer(api, "town_a")
    assert api.post("/grids/edits/merge", json={"why": "x", "codes": ["a", "b"]}, headers=town).status_code == 403
    assert api.post(f"/tickets/{world['ticket_A']}/dispatch", headers=bearer(api, "analyst_a"),
                    json={"actor": "x", "role": "district", "payload": {"assignee": world["A"]}}).status_code == 403
    refused = api.post(f"/tickets/{world['ticket_A']}/dispatch", headers=town,
                       json={"actor": "x", "role": "district", "payload": {"assignee": world["A"]}})
    assert refused.status_code == 403  # a town does not dispatch "as district"
    moved = api.post(f"/tickets/{world['ticket_A']}/dispatch", headers=bearer(api, "district_1"),
                     json={"actor": "someone else", "payload": {"assignee": world["A"]}})
    assert moved.status_code == 200
    assert moved.json()["timeline"][-1]["actor"] == "district_1"
    assert moved.json()["timeline"][-1]["role"] == "district"


def test_bounds_and_pages(api, world, demo_session):  # noqa: F811
    town = bearer(api, "town_a")
    assert api.get(f"/tickets/{2**63}", headers=town).status_code == 422
    assert api.get(f"/tickets/{world['ticket_A']}/nearest-workers?max_age_min={10**12}",
                   headers=town).status_code == 422
    assert api.get("/tickets?town=%00", headers=town).status_code == 400
    page = api.get("/desk")
    assert 'href="/login?next=/desk"' in page.text and ">登录<" in page.text
    assert "演示模式" not in page.text


def test_live_stream_carries_only_the_towns_ticket_events():
    from api.routers.live import event_text, scoped_message
    from layers.accounts.scope import Scope

    town = Scope.for_role("town", user="t", area_code="370783001000")
    mine = event_text("tickets", '{"id": 1, "town_code": "370783001000", "grid_code": "370783001001001"}')
    theirs = event_text("tickets", '{"id": 2, "town_code": "370783002000", "grid_code": "370783002001001"}')
    batch = event_text("workers", '{"kind": "positions", "count": 2, "workers": [{"id": "W-B"}]}')
    assert scoped_message(town, mine) == mine and scoped_message(town, theirs) is None
    assert scoped_message(town, batch) == 'event: workers\ndata: {"kind":"positions"}\n\n'
    assert scoped_message(Scope.demo(), theirs) == theirs
