"""The sensors API: registry CRUD, a CSV batch with bad rows, the map layer, thresholds, alarms."""

from gis import registry as R
from tests import registry_city as city
from tests.layers.test_sensors import lonlat

CSV = ("sensor_id,ts,pm25\n"
       "AQ1,2026-05-01T08:00:00+08:00,80\n"
       "AQ1,2026-05-01T08:01:00+08:00,90\n"
       "AQX,2026-05-01T08:01:00+08:00,90\n"
       "AQ1,2026-05-01T08:02:00+08:00,95\n")


def _city(session):
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")


def test_register_ingest_and_draw(client, session):
    _city(session)
    lon, lat = lonlat(250, 450)
    created = client.post("/sensors", json={"id": "AQ1", "name": "东关监测点", "lon": lon, "lat": lat,
                                            "pollutants": ["PM2.5"]})
    assert created.status_code == 201 and created.json()["grid_code"] == "370783001001001"
    assert client.post("/sensors", json={"id": "AQ1", "name": "x", "lon": lon, "lat": lat}).status_code == 409
    posted = client.post("/sensors/readings", content=CSV, headers={"content-type": "text/csv"})
    body = posted.json()
    assert posted.status_code == 200
    assert (body["inserted"], body["rejected"], len(body["alarms_opened"])) == (
        3, [{"row": 3, "reason": "unknown sensor id"}], 1)
    resent = client.post("/sensors/readings", content=CSV, headers={"content-type": "text/csv"}).json()
    assert (resent["inserted"], resent["duplicates"]) == (0, 3)
    layer = client.get("/sensors")
    assert layer.headers["content-type"] == "application/geo+json"
    [feature] = layer.json()["features"]
    assert (feature["id"], feature["properties"]["state"], feature["properties"]["pm25"]) == ("AQ1", "alarm", 95.0)
    grids = client.get("/sensors/grids").json()["features"]
    assert grids[0]["properties"]["grid_code"] == "370783001001001" and grids[0]["properties"]["alarms"] == 1
    series = client.get("/sensors/AQ1/readings").json()
    assert [r["pm25"] for r in series] == [80.0, 90.0, 95.0]
    [alarm] = client.get("/sensors/alarms?state=open").json()
    assert alarm["sensor_id"] == "AQ1" and alarm["ticket_id"] is not None


def test_thresholds_edit_and_errors(client, session):
    _city(session)
    edited = client.patch("/sensors/thresholds/PM2.5", json={"limit_value": 60, "who": "环保局"})
    assert edited.status_code == 200 and edited.json()["limit_value"] == 60.0
    assert client.patch("/sensors/thresholds/pm25", json={"limit_value": -1}).status_code == 400
    assert client.patch("/sensors/thresholds/benzene", json={"limit_value": 5}).status_code == 400
    assert client.get("/sensors/nope").status_code == 404
    lon, lat = lonlat(750, 300)
    client.post("/sensors", json={"id": "AQ2", "name": "西关", "lon": lon, "lat": lat})
    patched = client.patch("/sensors/AQ2", json={"owner": "寿光某厂", "kind": "enterprise"}).json()
    assert (patched["owner"], patched["kind"], patched["grid_code"]) == ("寿光某厂", "enterprise", "370783001002001")
    assert client.delete("/sensors/AQ2").json()["status"] == "retired"
    assert client.get("/sensors").json()["features"] == []
    jsonl = '{"sensor_id": "AQ2", "ts": "2026-05-01T08:00:00+08:00", "pm25": 10}\nnot json\n'
    body = client.post("/sensors/readings", content=jsonl, headers={"content-type": "application/x-ndjson"}).json()
    assert body["rejected"] == [{"row": 1, "reason": "unknown sensor id"}, {"row": 2, "reason": "not a JSON object"}]
