from datetime import UTC, datetime

from gis import registry
from tests import registry_city as city


def _load(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    registry.import_grids(session, city.grids(), who="t", why="t")


def test_health(client, session):
    _load(session)
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["registry_version"] == registry.registry_version(session) > 0


def test_grids_geojson(client, session):
    _load(session)
    res = client.get("/grids")
    assert res.status_code == 200 and res.headers["content-type"].startswith("application/geo+json")
    fc = res.json()
    assert [f["properties"]["code"] for f in fc["features"]] == [
        "370783001001001", "370783001001002", "370783001002001"]
    props = fc["features"][0]["properties"]
    assert props["town_code"] == "370783001000" and props["district_code"] == "370783000000"
    assert props["village_name"] == "东关社区" and props["town_name"] == "圣城街道"
    assert fc["features"][0]["geometry"]["type"] == "MultiPolygon"
    assert len(client.get("/grids?village=370783001002").json()["features"]) == 1


def test_grid_detail_history_and_as_of(client, session):
    _load(session)
    before = datetime.now(UTC)
    registry.import_grids(session, city.grids(), who="planner", why="redraw", replace=True)
    assert client.get("/grids/370783001001001").json()["properties"]["name"] == "东关社区第1网格"
    history = client.get("/grids/370783001001001/history").json()["features"]
    assert [f["properties"]["why"] for f in history] == ["t", "redraw"]
    res = client.get("/grids", params={"as_of": before.isoformat()})
    assert len(res.json()["features"]) == 3


def test_bad_requests_are_4xx_with_reasons(client, session):
    _load(session)
    res = client.get("/grids/12345")
    assert res.status_code == 400 and "15 digits" in res.json()["detail"]
    res = client.get("/grids/370783001001777")
    assert res.status_code == 404
    res = client.get("/grids", params={"town": "370783001001"})
    assert res.status_code == 400 and "not a town code" in res.json()["detail"]
    res = client.get("/grids", params={"as_of": "2026-01-01T00:00:00"})
    assert res.status_code == 400 and "timezone" in res.json()["detail"]
    res = client.get("/grids", params={"as_of": "yesterday"})
    assert res.status_code == 422
    res = client.get("/areas", params={"level": "planet"})
    assert res.status_code == 422


def test_areas(client, session):
    _load(session)
    fc = client.get("/areas?level=village").json()
    assert {f["properties"]["name"] for f in fc["features"]} == {"东关社区", "西关社区"}
    assert client.get("/areas?level=district").json()["features"][0]["properties"]["kind"] == "district"
