"""The tickets API, KPIs and Open311 over HTTP: round trips and every bad input as a clear 4xx."""

from __future__ import annotations

from sqlalchemy import text

from layers.incidents.cards import refresh_cards
from tests.layers.test_tickets_service import TOWN, at, pt, tiny  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def post_ticket(client, **kw):
    body = {
        "channel": "hotline",
        "category": "0102",
        "description": "路边垃圾堆积",
        "reporter_phone": "13812341234",
        **pt(100, 400),
        **kw,
    }
    return client.post("/tickets", json=body)


def move(client, tid, name, role="district", **kw):
    return client.post(f"/tickets/{tid}/{name}", json={"actor": "王五", "role": role, **kw})


def count(session, table="tickets"):
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def test_create_list_detail_and_moves(tiny, client):  # noqa: F811
    r = post_ticket(client)
    assert r.status_code == 201, r.text
    t = r.json()
    assert (t["state"], t["grid_code"], t["town_code"], t["reporter_phone"]) == (
        "received",
        "370783001001001",
        TOWN,
        "13812341234",
    )
    assert t["timeline"][0]["move"] == "receive" and "dispatch" in t["allowed"]["district"]
    listed = client.get("/tickets", params={"town": TOWN}).json()
    assert listed["total"] == 1 and listed["items"][0]["reporter_phone"] == "138****1234"
    r = move(client, t["id"], "dispatch", payload={"assignee": TOWN})
    assert r.status_code == 200 and r.json()["state"] == "dispatched"
    for name in ("sign", "start"):
        assert move(client, t["id"], name, role="town").status_code == 200
    assert move(client, t["id"], "complete", role="town", note="已清运").status_code == 200
    assert move(client, t["id"], "review_pass").status_code == 200
    r = move(client, t["id"], "close")
    assert r.status_code == 409 and r.json()["info"]["allowed"] == ["revisit", "sign_off"]
    assert move(client, t["id"], "revisit", satisfaction=9).status_code == 400
    r = move(client, t["id"], "revisit", satisfaction=5)
    assert r.status_code == 200 and r.json()["state"] == "revisited"
    r = move(client, t["id"], "close")
    assert r.json()["state"] == "closed"
    assert [e["move"] for e in r.json()["timeline"]] == [
        "receive",
        "dispatch",
        "sign",
        "start",
        "complete",
        "review_pass",
        "revisit",
        "close",
    ]
    assert client.get("/tickets", params={"state": "closed"}).json()["total"] == 1


def test_bad_input_is_a_clear_4xx_and_writes_nothing(tiny, client):  # noqa: F811
    before = count(tiny)
    r = post_ticket(client, category="0190")
    assert r.status_code == 400 and r.json()["info"]["close_matches"]
    r = client.post("/tickets", json={"channel": "app", "category": "0102", "description": "x"})
    assert r.status_code == 400 and "location" in r.json()["detail"]
    assert post_ticket(client, channel="fax").status_code == 422
    assert post_ticket(client, severity="huge").status_code == 422
    assert post_ticket(client, crs="EPSG:999999").status_code == 400
    r = post_ticket(client, require_place=True, **pt(9000, 9000))
    assert r.status_code == 400 and "could not be resolved" in r.json()["detail"]
    assert count(tiny) == before and count(tiny, "ticket_events") == 0
    tid = post_ticket(client).json()["id"]
    r = move(client, tid, "revisit", satisfaction=5)  # a revisit on an open ticket
    assert r.status_code == 409 and r.json()["info"]["allowed"] == [
        "check",
        "reject",
        "dispatch",
        "sign_off",
    ]
    assert move(client, tid, "sign", role="town").status_code == 409
    assert move(client, tid, "fly").status_code == 400
    assert (
        move(client, tid, "dispatch", role="emperor", payload={"assignee": TOWN}).status_code == 400
    )
    assert move(client, tid, "dispatch").status_code == 400  # needs assignee
    assert move(client, 10**9, "dispatch", payload={"assignee": TOWN}).status_code == 404
    assert client.get(f"/tickets/{10**9}").status_code == 404
    assert len(client.get(f"/tickets/{tid}").json()["timeline"]) == 1


def test_unplaced_queue_and_placing(tiny, client):  # noqa: F811
    r = client.post(
        "/tickets",
        json={
            "channel": "wechat",
            "category": "0102",
            "description": "x",
            "address": "圣城街道幸福路12号",
        },
    )
    assert r.status_code == 201 and r.json()["unplaced"] and r.json()["unplaced_reason"]
    outside = post_ticket(client, **pt(9000, 9000)).json()
    queue = client.get("/tickets", params={"unplaced": "true"}).json()
    assert queue["total"] == 2
    r = client.post(f"/tickets/{outside['id']}/place", json={**pt(600, 100), "actor": "坐席"})
    assert r.status_code == 200 and r.json()["grid_code"] == "370783001002001"
    assert client.get("/tickets", params={"unplaced": "true"}).json()["total"] == 1


def test_attachments_overdue_and_layers(tiny, client):  # noqa: F811
    tid = post_ticket(client).json()["id"]
    r = client.post(f"/tickets/{tid}/attachments", files={"file": ("现场.png", PNG, "image/png")})
    assert r.status_code == 201 and r.json()["size"] == len(PNG)
    assert client.get(f"/tickets/{tid}/attachments/{r.json()['id']}").content == PNG
    bad = client.post(
        f"/tickets/{tid}/attachments", files={"file": ("x.png", b"GIF89a", "image/png")}
    )
    assert bad.status_code == 400
    exe = client.post(
        f"/tickets/{tid}/attachments", files={"file": ("x.exe", b"MZ", "application/x")}
    )
    assert exe.status_code == 400
    tiny.execute(
        text("UPDATE tickets SET created_at = :t WHERE id = :i"), {"t": at(2, 8), "i": tid}
    )
    r = move(client, tid, "dispatch", payload={"assignee": TOWN}, at=at(2, 9).isoformat())
    assert r.status_code == 200, r.text
    # cards are computed on the server's clock: no client may choose "now" (the service may, here)
    refused = client.post("/tickets/cards/refresh", params={"now": at(3, 9).isoformat()})
    assert refused.status_code == 400 and "server's time" in refused.json()["detail"]
    assert refresh_cards(tiny, at(3, 9))["red"] == 1
    assert client.get("/tickets", params={"overdue": "true"}).json()["total"] == 1
    assert client.get(f"/tickets/{tid}").json()["card"] == "red"
    grids = client.get("/tickets/layer/grids").json()
    assert grids == [
        {
            "grid_code": "370783001001001",
            "open_count": 1,
            "yellow": 0,
            "red": 1,
            "worst_card": "red",
        }
    ]
    points = client.get("/tickets/layer/points").json()
    assert points["features"][0]["properties"]["card"] == "red"


def test_kpis_ranking_and_csv(tiny, client):  # noqa: F811
    tid = post_ticket(client).json()["id"]
    moves = [
        ("dispatch", "district", {"payload": {"assignee": TOWN}}, at(2, 9, 30)),
        ("sign", "town", {}, at(2, 10)),
        ("start", "town", {}, at(2, 10, 5)),
        ("complete", "town", {"note": "ok"}, at(2, 11)),
        ("review_pass", "district", {}, at(2, 12)),
        ("revisit", "district", {"satisfaction": 4}, at(2, 13)),
        ("close", "district", {}, at(2, 14)),
    ]
    tiny.execute(
        text("UPDATE tickets SET created_at = :t WHERE id = :i"), {"t": at(2, 9), "i": tid}
    )
    for name, role, extra, when in moves:
        assert move(client, tid, name, role=role, at=when.isoformat(), **extra).status_code == 200
    r = client.get("/kpis", params={"level": "town", "month": "2026-03", "code": TOWN}).json()
    row = r["rows"][0]
    assert [
        row[k]
        for k in (
            "received",
            "closed",
            "timely_sign_rate",
            "first_time_fix_rate",
            "satisfaction_rate",
            "closure_rate",
        )
    ] == [1, 1, 1.0, 1.0, 1.0, 1.0]
    assert r["by_category"] == [
        {"code": TOWN, "category": "0102", "category_name": "暴露垃圾", "n": 1}
    ]
    rank = client.get("/kpis/ranking", params={"level": "department", "month": "2026-03"}).json()
    assert [(x["code"], x["rank"], x["score"]) for x in rank["rows"]] == [("sanitation", 1, 1.0)]
    csv = client.get("/kpis/ranking", params={"month": "2026-03", "format": "csv"})
    assert csv.content.startswith(b"\xef\xbb\xbf") and "圣城街道" in csv.content.decode("utf-8-sig")
    assert client.get("/kpis", params={"level": "village", "month": "2026-03"}).status_code == 422
    assert client.get("/kpis", params={"month": "2026-13"}).status_code == 400


def test_open311_round_trip(tiny, client):  # noqa: F811
    services = client.get("/open311/v2/services.json").json()
    assert {"service_code": "0102", "service_name": "暴露垃圾"}.items() <= services[1].items()
    p = pt(700, 300)
    from gis.coords import to_wgs84

    lon, lat = (float(v[0]) for v in to_wgs84([p["lon"]], [p["lat"]], p["crs"]))
    form = {
        "service_code": "0102",
        "lat": str(lat),
        "long": str(lon),
        "description": "垃圾没人清",
        "first_name": "小明",
        "last_name": "王",
        "phone": "13912345678",
        "address_string": "西关社区",
    }
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    got = client.get(f"/open311/v2/requests/{rid}.json").json()[0]
    assert (got["status"], got["service_code"], got["description"], got["agency_responsible"]) == (
        "open",
        "0102",
        "垃圾没人清",
        "环境卫生服务中心",
    )
    assert abs(got["lat"] - lat) < 1e-6 and abs(got["long"] - lon) < 1e-6
    assert got["requested_datetime"].endswith("+08:00")
    native = client.get(f"/tickets/{rid}").json()
    assert (native["channel"], native["grid_code"], native["reporter_name"]) == (
        "app",
        "370783001002001",
        "王 小明",
    )
    assert [
        x["service_request_id"]
        for x in client.get(
            "/open311/v2/requests", params={"status": "open", "service_code": "0102"}
        ).json()
    ] == [rid]
    assert client.get("/open311/v2/requests", params={"status": "closed"}).json() == []
    bad = client.post(
        "/open311/v2/requests", data={"service_code": "9999", "lat": "1", "long": "x"}
    )
    assert bad.status_code == 400 and bad.json()[0]["code"] == 400
    missing = client.post("/open311/v2/requests", data={"service_code": "0102"})
    assert missing.status_code == 400 and "location" in missing.json()[0]["description"]
    assert client.get("/open311/v2/requests/999999999.json").status_code == 404
