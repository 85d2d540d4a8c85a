"""The workers API: people, GPS batches in GCJ-02, last positions, a day's track, nearest help, report."""

from datetime import UTC, datetime

import numpy as np

from gis import registry as R
from gis.coords import from_wgs84
from layers.incidents.intake import create_ticket
from tests import registry_city as city
from tests.layers.test_workers import lonlat, walk


def _crew(client, session):
    R.import_areas(session, city.areas(), who="t", why="t")
    R.import_grids(session, city.grids(), who="t", why="t")
    made = client.post("/workers", json={"id": "W1", "name": "张伟", "role": "专职网格员", "phone": "13812345678",
                                         "grids": ["370783001001001"]})
    assert made.status_code == 201
    client.post("/workers", json={"id": "W2", "name": "李娜", "role": "grid_chief", "grids": ["370783001002001"]})


def test_positions_track_and_last_positions(client, session):
    _crew(client, session)
    rows = walk("W1", np.arange(50, 451, 40.0), np.full(11, 450))
    gx, gy = from_wgs84([r["lon"] for r in rows], [r["lat"] for r in rows], "gcj02")
    lines = "\n".join(f'{{"worker_id": "W1", "ts": "{r["ts"]}", "lon": {x}, "lat": {y}}}'
                      for r, x, y in zip(rows, gx, gy, strict=True))
    lines += '\n{"worker_id": "W1", "ts": "2026-05-01T08:30:00+08:00", "lon": "x", "lat": 36.9}'
    body = client.post("/workers/positions?crs=gcj02", content=lines,
                       headers={"content-type": "application/x-ndjson"}).json()
    assert (body["inserted"], body["rejected"]) == (11, [{"row": 12, "reason": "non-numeric coordinate (lon)"}])
    [feature] = client.get("/workers").json()["features"]
    props = feature["properties"]
    assert (props["phone"], props["grids"], props["grid_code"]) == ("138****5678", "370783001001001", "370783001001001")
    track = client.get("/workers/W1/track?date=2026-05-01").json()
    assert track["summary"]["fixes"] == 11 and abs(track["summary"]["distance_m"] - 400) < 1
    assert track["features"][0]["geometry"]["type"] == "MultiLineString"
    assert client.get("/workers/W9/track?date=2026-05-01").status_code == 404
    assert client.get("/workers/W1/track?date=May").status_code == 400


def test_nearest_workers_and_report(client, session):
    _crew(client, session)
    client.post("/workers/positions", content="worker_id,ts,lon,lat\n" + "\n".join(
        f'{r["worker_id"]},{r["ts"]},{r["lon"]},{r["lat"]}'
        for r in walk("W1", [100], [450]) + walk("W2", [700], [300])), headers={"content-type": "text/csv"})
    lon, lat = lonlat([120], [450])
    ticket = create_ticket(session, channel="hotline", category="0102", description="垃圾", lon=float(lon[0]),
                           lat=float(lat[0]), at=datetime(2026, 5, 1, tzinfo=UTC))
    near = client.get(f"/tickets/{ticket.id}/nearest-workers?k=2").json()
    assert [n["worker_id"] for n in near] == ["W1", "W2"] and abs(near[0]["distance_m"] - 20) < 0.1
    assert client.get("/tickets/999999/nearest-workers").status_code == 404
    csv = client.get("/workers/report?town=370783001000&date=2026-05-01&format=csv")
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    assert csv.content.decode("utf-8-sig").count("\n") == 3  # header + two workers
    assert client.get("/workers/report?town=37078300100&date=2026-05-01").status_code == 400
