"""GET /map/duty: who answers for a place — the big screen's cards print names and phones, not codes."""

from __future__ import annotations

from sqlalchemy import text


def test_a_grid_answers_with_its_names_and_workers_chief_first(demo_client, demo_session):
    grid = demo_session.execute(text("SELECT code, name, village_code, town_code FROM grids WHERE valid_to IS NULL"
                                     " ORDER BY code LIMIT 1")).one()
    for wid, name, role in (("W-DUTY-2", "李敏", "full_time"), ("W-DUTY-1", "王海燕", "grid_chief")):
        res = demo_client.post("/workers", json={"id": wid, "name": name, "role": role, "phone": "13800001111",
                                                 "grids": [grid.code]})
        assert res.status_code == 201, res.text
    res = demo_client.get("/map/duty", params={"grids": grid.code, "areas": f"{grid.town_code},{grid.village_code}",
                                               "departments": "urban,nosuch"})
    assert res.status_code == 200, res.text
    body = res.json()
    g = body["grids"][grid.code]
    assert g["name"] == grid.name and g["town_name"] and g["village_name"]
    assert [w["name"] for w in g["workers"]] == ["王海燕", "李敏"]  # the grid chief first
    assert g["workers"][0]["role_name"] == "网格长" and g["workers"][0]["phone"] == "13800001111"  # the demo sees phones
    assert body["areas"][grid.town_code] == g["town_name"]
    assert body["departments"] == {"urban": "城市管理局（综合行政执法局）"}  # unknown codes are left out


def test_bad_codes_are_refused_with_a_reason(demo_client):
    res = demo_client.get("/map/duty", params={"grids": "37078300100100X"})
    assert res.status_code == 400 and "37078300100100X" in res.text
    res = demo_client.get("/map/duty", params={"areas": ",".join(str(370783000000 + i) for i in range(201))})
    assert res.status_code == 400 and "at most 200" in res.text
    assert demo_client.get("/map/duty").json() == {"grids": {}, "areas": {}, "departments": {}}
