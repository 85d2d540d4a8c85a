"""Base data (人、地、事、物、组织) over HTTP with sign-in on: masked by default, unmasked only for the
roles that need it and then audited, scoped to the caller's area, captured by grid workers (counted in
the patrol report), imported from CSV all-or-nothing with row errors, and the grid's base summary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from layers.accounts.models import User
from layers.basedata.service import id_checksum
from layers.workers import registry as workers
from layers.workers.report import patrol_report
from scripts.demo_basedata import load_basedata
from tests.api.test_auth import HASH, api, bearer  # noqa: F401 - fixtures

ID17 = "37078319800101123"
ID = ID17 + id_checksum(ID17)


@pytest.fixture
def world(demo_session):
    """Base data for one community grid and one village grid in two towns; accounts of each kind."""
    rows = demo_session.execute(text(
        "SELECT DISTINCT ON (town_code) code, village_code, town_code, district_code, households, population "
        "FROM grids WHERE valid_to IS NULL AND kind = 'basic' ORDER BY town_code, code LIMIT 2")).mappings().all()
    a, b = dict(rows[0]), dict(rows[1])
    message = load_basedata(demo_session, grid_codes=[a["code"], b["code"]])
    assert message.startswith("base data:") and "households" in message, message
    workers.create_worker(demo_session, id="w-a", name="网格员甲", grids=[a["code"]])
    specs = {"w-a": dict(role="grid_worker", grid_codes=[a["code"]]),
             "village_a": dict(role="village", area_code=a["village_code"]),
             "town_a": dict(role="town", area_code=a["town_code"]),
             "town_b": dict(role="town", area_code=b["town_code"]),
             "admin": dict(role="city"), "water": dict(role="department", department="water"),
             "analyst": dict(role="analyst")}
    for name, spec in specs.items():
        demo_session.add(User(username=name, display_name=name, password_hash=HASH, **spec))
    demo_session.flush()
    return {"a": a, "b": b}


def _audits(session, username: str) -> list:
    return session.execute(text("SELECT object, detail FROM audit_log WHERE username = :u AND action = "
                                "'basedata.reveal' ORDER BY id"), {"u": username}).all()


def test_base_summary_of_a_demo_grid(api, world, demo_session):  # noqa: F811
    a = world["a"]
    res = api.get(f"/grids/{a['code']}/base-summary", headers=bearer(api, "town_a"))
    assert res.status_code == 200, res.text
    body = res.json()
    assert list(body) == ["grid_code", "households", "residents", "buildings", "businesses", "organisations",
                          "key_sites"]
    assert body["grid_code"] == a["code"] and all(isinstance(body[k], int) for k in list(body)[1:])
    assert body["households"] == a["households"] and 300 <= body["households"] <= 500
    assert body["residents"] == a["population"]  # the people of the grid, shared among its households
    assert body["buildings"] >= 1 and body["businesses"] >= 2 and body["organisations"] >= 2
    counted = demo_session.scalar(text("SELECT count(*) FROM buildings WHERE grid_code = :g"), {"g": a["code"]})
    assert body["buildings"] == counted
    # another town's grid, a grid without base data, a malformed code
    assert api.get(f"/grids/{world['b']['code']}/base-summary", headers=bearer(api, "town_a")).status_code == 404
    bare = demo_session.scalar(text("SELECT code FROM grids WHERE valid_to IS NULL AND town_code = :t "
                                    "AND code <> :g LIMIT 1"), {"t": a["town_code"], "g": a["code"]})
    missing = api.get(f"/grids/{bare}/base-summary", headers=bearer(api, "admin"))
    assert missing.status_code == 404 and "no base data" in missing.json()["detail"]
    assert api.get("/grids/12345/base-summary", headers=bearer(api, "admin")).status_code == 400


def test_personal_numbers_are_masked_by_default(api, world, demo_session):  # noqa: F811
    for who in ("admin", "village_a", "town_a", "w-a"):
        res = api.get(f"/basedata/residents?grid={world['a']['code']}&limit=5", headers=bearer(api, who))
        assert res.status_code == 200, (who, res.text)
        body = res.json()
        assert body["masked"] is True and body["total"] == world["a"]["households"]
        for r in body["items"]:
            assert r["id_number"][:6] == "370783" and "********" in r["id_number"] and len(r["id_number"]) == 18
            assert r["phone"][3:7] == "****"
        households = api.get(f"/basedata/households?grid={world['a']['code']}&limit=3", headers=bearer(api, who))
        assert all("****" in h["phone"] for h in households.json()["items"])
    assert _audits(demo_session, "admin") == []  # nothing revealed, nothing to audit


def test_unmasked_for_the_permitted_role_and_audited(api, world, demo_session):  # noqa: F811
    code = world["a"]["code"]
    res = api.get(f"/basedata/residents?grid={code}&limit=3&reveal=true", headers=bearer(api, "village_a"))
    assert res.status_code == 200, res.text
    items = res.json()["items"]
    assert len(items) == 3
    for r in items:
        assert "*" not in r["id_number"] and r["id_number"][17] == id_checksum(r["id_number"][:17])
        assert "*" not in r["phone"]
    stored = demo_session.execute(text("SELECT id_number FROM residents WHERE id = :i"), {"i": items[0]["id"]}).scalar()
    assert items[0]["id_number"] == stored
    ((obj, detail),) = _audits(demo_session, "village_a")
    assert obj.startswith("residents id=") and detail["ids"] == [r["id"] for r in items]
    assert detail["fields"] == ["id_number", "phone"]
    one = api.get(f"/basedata/residents/{items[0]['id']}?reveal=true", headers=bearer(api, "village_a"))
    assert one.status_code == 200 and one.json()["id_number"] == stored
    assert len(_audits(demo_session, "village_a")) == 2
    # a town may call people back (phone) but not read ID numbers
    town = api.get(f"/basedata/residents/{items[0]['id']}?reveal=true", headers=bearer(api, "town_a")).json()
    assert "*" not in town["phone"] and "********" in town["id_number"]
    assert _audits(demo_session, "town_a")[0][1]["fields"] == ["phone"]
    # refused outright: a grid worker, and roles with no business in the register
    refused = api.get(f"/basedata/residents/{items[0]['id']}?reveal=true", headers=bearer(api, "w-a"))
    assert refused.status_code == 403 and "unmasked" in refused.json()["detail"]
    for who in ("water", "analyst"):
        assert api.get(f"/basedata/residents?grid={code}", headers=bearer(api, who)).status_code == 403
    assert _audits(demo_session, "w-a") == []


def test_a_town_cannot_read_another_towns_residents(api, world, demo_session):  # noqa: F811
    b = world["b"]
    listed = api.get(f"/basedata/residents?grid={b['code']}", headers=bearer(api, "town_a")).json()
    assert listed["total"] == 0 and listed["items"] == []
    mine = api.get("/basedata/residents?limit=1000", headers=bearer(api, "town_a")).json()
    assert mine["total"] == world["a"]["households"]
    assert {r["town_code"] for r in mine["items"]} == {world["a"]["town_code"]}
    other_id = demo_session.scalar(text("SELECT id FROM residents WHERE grid_code = :g LIMIT 1"), {"g": b["code"]})
    assert api.get(f"/basedata/residents/{other_id}", headers=bearer(api, "town_a")).status_code == 404
    assert api.get(f"/basedata/residents/{other_id}?reveal=true", headers=bearer(api, "town_a")).status_code == 404
    assert api.get(f"/basedata/residents/{other_id}", headers=bearer(api, "town_b")).status_code == 200
    assert api.get(f"/basedata/residents?grid={world['a']['code']}", headers=bearer(api, "w-a")).json()["total"] > 0
    assert api.get(f"/basedata/residents?grid={b['code']}", headers=bearer(api, "w-a")).json()["total"] == 0


def test_a_grid_worker_captures_in_its_own_grid_and_the_report_counts_it(api, world, demo_session):  # noqa: F811
    a, b = world["a"], world["b"]
    headers = bearer(api, "w-a")
    made = api.post("/basedata/residents", headers=headers, json={
        "grid_code": a["code"], "name": "赵新来", "kind": "floating", "gender": "男", "birth_year": 1990,
        "id_number": ID, "phone": "13912345678"})
    assert made.status_code == 201, made.text
    assert made.json()["captured_by"] == "w-a" and made.json()["id_number"] == ID[:6] + "********" + ID[-4:]
    shop = api.post("/basedata/units", headers=headers, json={"grid_code": a["code"], "unit_type": "business",
                                                              "name": "寿光市测试便利店", "kind": "零售"})
    assert shop.status_code == 201
    assert api.post("/basedata/units", headers=headers, json={"grid_code": b["code"], "unit_type": "business",
                                                              "name": "别处", "kind": "零售"}).status_code == 404
    bad = api.post("/basedata/residents", headers=headers, json={"grid_code": a["code"], "name": "钱", "kind": "x",
                                                                 "id_number": ID17 + "0"})
    assert bad.status_code == 400
    problems = {p["column"] for p in bad.json()["info"]["problems"]}
    assert problems == {"kind", "id_number"}
    fixed = api.patch(f"/basedata/units/{shop.json()['id']}", headers=bearer(api, "village_a"), json={"employees": 3})
    assert fixed.status_code == 200 and fixed.json()["updated_by"] == "village_a" and fixed.json()["employees"] == 3
    summary = api.get(f"/grids/{a['code']}/base-summary", headers=headers).json()
    assert summary["residents"] == a["population"] + 1  # a floating resident without a household
    today = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date()
    report = patrol_report(demo_session, a["town_code"], today)
    assert int(report.set_index("worker_id").loc["w-a", "objects_captured"]) == 2


CSV_GOOD = ("姓名,网格编码,人员类别,性别,出生年份,身份证号,电话\n"
            "孙一,{g},registered,男,1970,{id},13800001111\n"
            "孙二,{g},resident,女,1975,,\n")


def test_csv_import_is_all_or_nothing_with_row_errors(api, world, demo_session):  # noqa: F811
    a, b = world["a"], world["b"]
    headers = bearer(api, "village_a")
    before = demo_session.scalar(text("SELECT count(*) FROM residents"))
    bad = ("name,grid_code,kind,gender,birth_year,id_number,phone\n"
           f"孙一,{a['code']},registered,男,1970,{ID},13800001111\n"
           f"孙二,{a['code']},resident,女,1875,{ID17}0,12345\n"
           f",{b['code']},registered,,,,\n"
           f"孙四,{a['code']},registered\n")
    res = api.post("/basedata/residents/import", headers=headers,
                   files={"file": ("residents.csv", bad.encode("utf-8"), "text/csv")})
    assert res.status_code == 422, res.text
    errors = {(e["row"], e["column"]) for e in res.json()["errors"]}
    assert errors == {(3, "birth_year"), (3, "id_number"), (3, "phone"), (4, "name"), (4, "grid_code"), (5, None)}
    reasons = {(e["row"], e["column"]): e["reason"] for e in res.json()["errors"]}
    assert "check digit" in reasons[(3, "id_number")] and "outside your area" in reasons[(4, "grid_code")]
    assert "3 values for 7 columns" in reasons[(5, None)]
    assert demo_session.scalar(text("SELECT count(*) FROM residents")) == before  # nothing written
    good = CSV_GOOD.format(g=a["code"], id=ID).encode("gbk")  # Excel's CSV on a Chinese desktop
    ok = api.post("/basedata/residents/import", headers=headers, files={"file": ("r.csv", good, "text/csv")})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"kind": "residents", "imported": 2}
    rows = demo_session.execute(text("SELECT name, captured_by, village_code FROM residents WHERE captured_by = 'village_a' "
                                     "ORDER BY name")).all()
    assert [tuple(r) for r in rows] == [("孙一", "village_a", a["village_code"]), ("孙二", "village_a",
                                                                                 a["village_code"])]
    xlsx = api.post("/basedata/residents/import", headers=headers,
                    files={"file": ("r.xlsx", b"PK\x03\x04rest", "application/octet-stream")})
    assert xlsx.status_code == 400 and "CSV" in xlsx.json()["detail"]
