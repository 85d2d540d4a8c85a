"""The field layer over the API: idempotent intake, GPS resends, grid-worker moves, check-ins and the
public report's abuse checks, on the demo city (writes rolled back)."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import select, text

from layers.accounts.models import User
from layers.field import public
from tests.api.test_auth import HASH, ON, bearer, make_client


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 80, 40)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def field(demo_session):
    """Worker W0001 with a grid-worker account of the same name, and a district account."""
    from layers.workers.registry import create_worker

    grids = demo_session.scalars(text("SELECT code FROM grids WHERE valid_to IS NULL AND code LIKE '%001' "
                                      "ORDER BY code LIMIT 1")).all()
    create_worker(demo_session, id="W0001", name="网格员一", grids=list(grids))
    point = demo_session.execute(text("SELECT ST_X(p), ST_Y(p), village_code FROM (SELECT ST_PointOnSurface(geom) p, "
                                      "village_code FROM grids WHERE code = :g AND valid_to IS NULL) s"),
                                 {"g": grids[0]}).one()
    demo_session.add(User(username="W0001", display_name="网格员一", password_hash=HASH, role="grid_worker",
                          grid_codes=list(grids)))
    demo_session.add(User(username="centre", display_name="区指挥中心", password_hash=HASH, role="district",
                          area_code=grids[0][:6] + "000000"))
    demo_session.flush()
    api = make_client(demo_session, ON)
    return {"api": api, "grid": grids[0], "lon": point[0], "lat": point[1], "village": point[2],
            "worker": bearer(api, "W0001"), "centre": bearer(api, "centre")}


def report(f, description="路边垃圾堆积", **extra):
    return {"channel": "patrol", "category": "0102", "description": description, "lon": f["lon"], "lat": f["lat"],
            **extra}


def test_a_retried_report_makes_one_ticket(field, demo_session):
    api, h = field["api"], field["worker"]
    first = api.post("/tickets", json=report(field), headers={**h, "Idempotency-Key": "phone-1-abc"})
    assert first.status_code == 201, first.text
    again = api.post("/tickets", json=report(field), headers={**h, "Idempotency-Key": "phone-1-abc"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = api.post("/tickets", json=report(field, "另一处垃圾"), headers={**h, "Idempotency-Key": "phone-1-xyz"})
    assert other.json()["id"] != first.json()["id"]
    n = demo_session.scalar(text("SELECT count(*) FROM tickets WHERE description = '路边垃圾堆积'"))
    assert n == 1
    # the photo too: a retried upload answers the first one
    tid = first.json()["id"]
    up = [api.post(f"/tickets/{tid}/attachments", files={"file": ("p.jpg", jpeg(), "image/jpeg")},
                   headers={**h, "Idempotency-Key": "phone-1-abc-photo"}) for _ in range(2)]
    assert [r.status_code for r in up] == [201, 201] and up[0].json()["id"] == up[1].json()["id"]
    assert demo_session.scalar(text("SELECT count(*) FROM ticket_attachments WHERE ticket_id = :t"), {"t": tid}) == 1
    bad = api.post("/tickets", json=report(field), headers={**h, "Idempotency-Key": "   "})
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"]


def test_a_resent_gps_batch_is_stored_once(field, demo_session):
    api, h = field["api"], field["worker"]
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    line = f'{{"worker_id": "W0001", "ts": "{ts}", "lon": {field["lon"]}, "lat": {field["lat"]}, "accuracy": 8}}'
    for _ in range(2):
        r = api.post("/workers/positions", content=line, headers={**h, "Content-Type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
    n = demo_session.scalar(text("SELECT count(*) FROM worker_positions WHERE worker_id = 'W0001' AND ts = :ts"),
                            {"ts": datetime.fromisoformat(ts)})
    assert n == 1


def test_a_grid_worker_handles_what_its_village_was_given(field, demo_session):
    api, w, c = field["api"], field["worker"], field["centre"]
    tid = api.post("/tickets", json={**report(field, "井盖缺失"), "channel": "hotline", "category": "0102"},
                   headers=c).json()["id"]
    town = field["grid"][:9] + "000"
    api.post(f"/tickets/{tid}/dispatch", json={"actor": "centre", "role": "district", "payload": {"assignee": town}},
             headers=c).raise_for_status()
    refused = api.post(f"/tickets/{tid}/sign", json={"actor": "W0001", "role": "grid_worker"}, headers=w)
    assert refused.status_code == 403 and f"assigned to {town}, not to you" in refused.json()["detail"]
    tid2 = api.post("/tickets", json={**report(field, "路边违建"), "channel": "hotline", "category": "0101"},
                    headers=c).json()["id"]
    api.post(f"/tickets/{tid2}/dispatch", headers=c,
             json={"actor": "centre", "role": "district", "payload": {"assignee": field["village"]}}).raise_for_status()
    tasks = api.get("/field/tasks", headers=w).json()["items"]
    mine = next(t for t in tasks if t["id"] == tid2)
    assert mine["mine"] and mine["my_moves"] == ["sign"] and next(t for t in tasks if t["id"] == tid)["mine"] is False
    for move, body in (("sign", {}), ("start", {}), ("complete", {"note": "已清理"})):
        r = api.post(f"/tickets/{tid2}/{move}", json={"actor": "W0001", "role": "grid_worker", **body}, headers=w)
        assert r.status_code == 200, r.text
    assert r.json()["state"] == "completed"
    checkin = {"client_id": "ck-1", "lon": field["lon"], "lat": field["lat"], "site": "工单现场", "ticket_id": tid2}
    a = api.post("/field/checkins", json=checkin, headers=w)
    b = api.post("/field/checkins", json=checkin, headers=w)
    assert a.status_code == b.status_code == 201 and a.json()["id"] == b.json()["id"]
    assert a.json()["grid_code"] == field["grid"] and a.json()["distance_m"] < 1
    me = api.get("/field/me", headers=w).json()
    assert me["worker"]["id"] == "W0001" and me["grids"][0]["village_name"]
    assert api.get("/field/me", headers=c).status_code == 400  # the phone is for grid workers


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("ONEMAP_PUBLIC_MIN_FILL_S", "0.2")
    monkeypatch.setenv("ONEMAP_PUBLIC_PER_IP_HOUR", "2")


def form(f, token, **extra):
    return {"category": "0102", "description": "小区门口垃圾没人清", "lon": f["lon"], "lat": f["lat"],
            "form_token": token, "phone": "13812345678", **extra}


def test_public_reports_resist_abuse_without_a_captcha(field, fast, demo_session):
    api = field["api"]  # sign-in is on, and the public routes need none
    token = public.form_token(time.time() - 1)
    assert api.post("/public/reports", data=form(field, public.form_token())).json()["detail"].startswith("sent")
    assert "program" in api.post("/public/reports", data=form(field, token, website="x")).json()["detail"]
    forged = token.rsplit(".", 1)[0] + ".deadbeef"
    assert "not one this site gave" in api.post("/public/reports", data=form(field, forged)).json()["detail"]
    old = public.form_token(time.time() - 3 * 3600)
    assert "too old" in api.post("/public/reports", data=form(field, old)).json()["detail"]
    big = api.post("/public/reports", data=form(field, token),
                   files={"photo": ("p.jpg", b"\xff\xd8\xff" + b"0" * (5 * 2**20 + 10), "image/jpeg")})
    assert big.status_code in (400, 413)
    first = api.post("/public/reports", data=form(field, token), files={"photo": ("p.jpg", jpeg(), "image/jpeg")})
    assert first.status_code == 201, first.text
    code = first.json()["code"]
    again = api.post("/public/reports", data=form(field, token))
    assert again.status_code == 200 and again.json() == {"code": code, "duplicate": True}
    second = api.post("/public/reports", data=form(field, token, description="路灯坏了"))
    assert second.status_code == 201
    limited = api.post("/public/reports", data=form(field, token, description="第三件事"))
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3600"
    seen = api.get(f"/public/reports/{code}")
    assert seen.status_code == 200 and seen.json()["history"][0]["text"] == "已受理，等待分派"
    assert "1381234" not in seen.text and "reporter" not in seen.text
    assert api.get("/public/reports/AAAAAAAAAA").status_code == 404
    assert api.get("/public/reports/../tickets").status_code == 404
    early = api.post(f"/public/reports/{code}/rating", json={"satisfaction": 5})
    assert early.status_code == 409 and "not been handled" in early.json()["detail"]
    ticket = demo_session.scalar(text("SELECT ticket_id FROM public_reports WHERE code = :c"), {"c": code})
    row = demo_session.execute(text("SELECT channel, reporter_phone FROM tickets WHERE id = :t"), {"t": ticket}).one()
    assert tuple(row) == ("app", "13812345678")
    assert api.get("/report").status_code == 200 and api.get(f"/report/{code}").status_code == 200
    assert demo_session.scalar(select(User.id).where(User.username == "W0001")) is not None


def _public_report(field, fast, api, description):
    r = api.post("/public/reports", data=form(field, public.form_token(time.time() - 1), description=description))
    assert r.status_code == 201, r.text
    return r.json()["code"]


def _handle(session, tid, *, note="已处理"):
    """A town handles the ticket and the district reviews it (a town does not review its own work)."""
    from layers.incidents.moves import apply_move
    from layers.incidents.store import get_ticket

    t = get_ticket(session, tid)
    if t.state == "received":
        apply_move(session, tid, "dispatch", actor="区指挥中心", role="district", payload={"assignee": t.town_code})
        apply_move(session, tid, "sign", actor="镇街值班员", role="town")
        apply_move(session, tid, "start", actor="镇街值班员", role="town")
    apply_move(session, tid, "complete", actor="镇街值班员", role="town", note=note)
    apply_move(session, tid, "review_pass", actor="区指挥中心", role="district")


def test_an_unsatisfied_citizen_sends_the_report_back_for_a_second_handling(field, fast, demo_session):
    api = field["api"]
    code = _public_report(field, fast, api, "楼道堆放杂物无人管")
    tid = demo_session.scalar(text("SELECT ticket_id FROM public_reports WHERE code = :c"), {"c": code})
    _handle(demo_session, tid)
    assert api.get(f"/public/reports/{code}").json()["can_rate"] is True
    # 不满意 (2): not closed, back to the handler (二次办理), counted as rework, and the page says so
    out = api.post(f"/public/reports/{code}/rating", json={"satisfaction": 2})
    assert out.status_code == 200, out.text
    state, revisited, satisfied, rework = demo_session.execute(text(
        "SELECT state, revisited, satisfied, rework_count FROM tickets WHERE id = :t"), {"t": tid}).one()
    assert (state, revisited, satisfied, rework) == ("handling", True, False, 1)
    body = out.json()
    assert body["can_rate"] is False and body["state_name"] == "处置中"
    assert body["history"][-1]["text"] == "您的评价：不满意，已退回处理单位重新办理"
    again = api.post(f"/public/reports/{code}/rating", json={"satisfaction": 5})
    assert again.status_code == 409  # nothing to rate while it is being handled again
    # a citizen's ticket cannot be closed from reviewed without asking again
    from gis.errors import IllegalMove
    from layers.incidents.moves import apply_move

    _handle(demo_session, tid, note="二次处置：已清理")
    with pytest.raises(IllegalMove, match="revisited"):
        apply_move(demo_session, tid, "close", actor="区指挥中心", role="district")
    # the second handling is rated on the same page; satisfied (4) → revisited, then it may close
    follow = api.get(f"/public/reports/{code}").json()
    assert follow["can_rate"] is True and follow["state"] == "reviewed"
    assert api.post(f"/public/reports/{code}/rating", json={"satisfaction": 4}).json()["state"] == "revisited"
    scores = demo_session.scalars(text("SELECT payload->>'satisfaction' FROM ticket_events WHERE ticket_id = :t "
                                       "AND move = 'revisit' ORDER BY at, id"), {"t": tid}).all()
    assert scores == ["2", "4"]
    apply_move(demo_session, tid, "close", actor="区指挥中心", role="district")
    # 1 is unsatisfied too, 3 (基本满意) is not
    assert api.post(f"/public/reports/{code}/rating", json={"satisfaction": 0}).status_code == 422


@pytest.mark.parametrize("score,state", [(1, "handling"), (3, "revisited")])
def test_the_score_that_sends_a_report_back(field, fast, demo_session, score, state):
    api = field["api"]
    code = _public_report(field, fast, api, f"评分{score}的上报")
    tid = demo_session.scalar(text("SELECT ticket_id FROM public_reports WHERE code = :c"), {"c": code})
    _handle(demo_session, tid)
    assert api.post(f"/public/reports/{code}/rating", json={"satisfaction": score}).json()["state"] == state


def test_the_follow_up_page_shows_no_staff_no_phones_no_notes_no_other_tickets(field, fast, demo_session):
    """The history a citizen sees is the moves' public wording: never who made them, their notes or payloads."""
    from layers.incidents.intake import intake
    from layers.incidents.moves import apply_move
    from layers.incidents.store import get_ticket

    api = field["api"]
    code = _public_report(field, fast, api, "小区路灯不亮")
    tid = demo_session.scalar(text("SELECT ticket_id FROM public_reports WHERE code = :c"), {"c": code})
    other, _ = intake(demo_session, channel="hotline", category="0102", description="另一位市民反映的噪音扰民",
                        lon=field["lon"], lat=field["lat"], reporter_name="赵投诉人", reporter_phone="13711112222",
                        actor="hotline")
    secrets_ = ["张三科长", "13987654321", "内部备注", "王五主任", "15011112222", "另一位市民反映的噪音扰民",
                "赵投诉人", "13711112222", "13812345678", f"#{other.id}", "区指挥中心", "镇街值班员"]
    t = get_ticket(demo_session, tid)
    apply_move(demo_session, tid, "dispatch", actor="区指挥中心", role="district", payload={"assignee": t.town_code},
                 note="内部备注：请张三科长 13987654321 跟进")
    apply_move(demo_session, tid, "sign", actor="王五主任", role="town", note="王五主任签收，电话15011112222")
    apply_move(demo_session, tid, "join", actor="王五主任", role="town", payload={"units": ["sanitation"]},
                 note=f"与工单 #{other.id}（另一位市民反映的噪音扰民）一并处理")
    apply_move(demo_session, tid, "start", actor="王五主任", role="town", note="张三科长已到场")
    apply_move(demo_session, tid, "complete", actor="王五主任", role="town", note="内部备注：已修复，联系人张三科长 13987654321")
    for path in (f"/public/reports/{code}", f"/report/{code}"):
        page = api.get(path)
        assert page.status_code == 200
        leaked = [s for s in secrets_ if s in page.text]
        assert leaked == [], (path, leaked)
    history = api.get(f"/public/reports/{code}").json()["history"]
    assert [h["text"] for h in history] == ["已受理，等待分派", "已派往处理单位", "处理单位已签收", "多部门联合处置",
                                            "正在处置", "已办结，等待审核"]
    assert all(set(h) == {"at", "text", "state_name"} for h in history)
    assert api.get(f"/public/reports/{code}").json()["description"] == "小区路灯不亮"  # the citizen's own words
