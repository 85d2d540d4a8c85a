import csv
import io

from gis import registry
from gis.coords import wgs84_to_gcj02


def _point(session, i=10):
    grid = registry.load_grids(session).iloc[i]
    p = grid.geometry.representative_point()
    return grid, p.x, p.y


def test_get_resolve_any_crs(demo_client, demo_session):
    grid, x, y = _point(demo_session)
    body = demo_client.get("/resolve", params={"lon": x, "lat": y}).json()
    assert body["grid_code"] == grid.code and body["match"] == "inside"
    assert body["town_code"] == grid.town_code and body["district_code"] == "370783000000"
    assert body["district_name"] == "寿光市"
    gx, gy = wgs84_to_gcj02(x, y)
    body = demo_client.get("/resolve", params={"lon": float(gx), "lat": float(gy), "crs": "gcj02"}).json()
    assert body["grid_code"] == grid.code


def test_get_resolve_bad_input(demo_client):
    assert demo_client.get("/resolve", params={"lon": "abc", "lat": 36.9}).status_code == 422
    assert demo_client.get("/resolve", params={"lat": 36.9}).status_code == 422
    res = demo_client.get("/resolve", params={"lon": 118.8, "lat": 95})
    assert res.status_code == 400 and "out of range" in res.json()["detail"]
    res = demo_client.get("/resolve", params={"lon": 118.8, "lat": 36.9, "crs": "EPSG:999999"})
    assert res.status_code == 400 and "unknown coordinate reference system" in res.json()["detail"]


def test_post_json_and_geojson_keep_every_row(demo_client, demo_session):
    grid, x, y = _point(demo_session)
    res = demo_client.post("/resolve", json=[{"id": "a", "lon": x, "lat": y}, {"id": "b", "lon": "x", "lat": 1},
                                             [x, y]])
    rows = res.json()
    assert [r["row"] for r in rows] == [1, 2, 3]
    assert rows[0]["grid_code"] == grid.code and rows[2]["grid_code"] == grid.code
    assert rows[1]["grid_code"] is None and "not a number" in rows[1]["error"]
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": 7, "properties": {}, "geometry": {"type": "Point", "coordinates": [x, y]}},
        {"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": [[x, y], [x, y]]}}]}
    rows = demo_client.post("/resolve", json=fc).json()
    assert rows[0]["id"] == 7 and rows[0]["grid_code"] == grid.code and rows[1]["error"]


def test_post_csv(demo_client, demo_session):
    grid, x, y = _point(demo_session)
    body = f"编号,经度,纬度\n1,{x},{y}\n2,,36.9\n"
    res = demo_client.post("/resolve", params={"lon_col": "经度", "lat_col": "纬度"}, content=body.encode(),
                           headers={"content-type": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert res.status_code == 200 and len(rows) == 2
    assert rows[0]["grid_code"] == grid.code and rows[1]["error"].startswith("经度")
    res = demo_client.post("/resolve", content=body.encode(), headers={"content-type": "text/csv"})
    assert res.status_code == 400 and "lon" in res.json()["detail"]


def test_post_bad_batches(demo_client):
    res = demo_client.post("/resolve", content=b"{not json", headers={"content-type": "application/json"})
    assert res.status_code == 400 and "not valid JSON" in res.json()["detail"]
    res = demo_client.post("/resolve", content=b"", headers={"content-type": "application/json"})
    assert res.status_code == 400
    res = demo_client.post("/resolve", json={"lon": 1})
    assert res.status_code == 400
    demo_client.app.state.settings.max_batch, old = 2, demo_client.app.state.settings.max_batch
    try:
        res = demo_client.post("/resolve", json=[[118.8, 36.9]] * 3)
        assert res.status_code == 400 and "over the limit of 2" in res.json()["detail"]
    finally:
        demo_client.app.state.settings.max_batch = old
