"""OGC API – Features, read by a real client: GDAL's OAPIF driver through pyogrio, against uvicorn."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_session
from api.routers import ogc
from gis import registry
from tests.api.state import use_session

TOWN = "370783001000"


def _app(session):
    app = create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/unused")
    if not any(getattr(r, "path", "") == "/ogc" for r in app.routes):  # until api/app.py lists it
        app.include_router(ogc.router)

    def override():
        yield session
        session.flush()

    app.dependency_overrides[get_session] = override
    use_session(app, session)  # OGC reads are audited: into the rolled-back session
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(demo_session) -> Iterator[str]:
    """uvicorn on a free port over the demo city (one session: GDAL asks one page at a time)."""
    port = _free_port()
    config = uvicorn.Config(_app(demo_session), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/ogc"
    srv.should_exit = True
    thread.join(5)


GDAL_READ = """
import json, sys, pyogrio
url, layer, out, options = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
bbox = options.pop("bbox", None)
print(json.dumps([row[0] for row in pyogrio.list_layers(url)]))
frame = pyogrio.read_dataframe(url, layer=layer, bbox=tuple(bbox) if bbox else None, **options)
pyogrio.write_dataframe(frame, out, driver="GPKG")
"""


def gdal_read(url: str, layer: str, folder: Path, **options) -> tuple[list[str], object]:
    """GDAL in a child process: pyogrio keeps the GIL during a read, which would starve the
    server thread of this process (the server must stay here to share the rolled-back session)."""
    out = folder / f"{layer}.gpkg"
    done = subprocess.run([sys.executable, "-c", GDAL_READ, f"OAPIF:{url}", layer, str(out),
                           json.dumps(options)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), pyogrio.read_dataframe(out)


@pytest.fixture
def ogc_client(demo_session) -> TestClient:
    return TestClient(_app(demo_session), raise_server_exceptions=False)


def test_gdal_reads_grids_through_paging(server, demo_session, tmp_path):
    layers, frame = gdal_read(server, "grids", tmp_path)
    assert {"grids", "areas", "towns", "villages"} <= set(layers)
    expected = registry.load_grids(demo_session)
    assert len(frame) == len(expected) == 1347  # 14 pages of 100 followed by `next` links
    assert sorted(frame["code"]) == sorted(expected["code"])
    row = frame.set_index("code").loc["370783001001001"]
    assert row["name"] == "东关社区第1网格" and row["village_name"] == "东关社区"
    want = expected.set_index("code").geometry.loc["370783001001001"]
    assert shapely.hausdorff_distance(row.geometry, want) < 1e-7  # 7 decimals ≈ 1 cm


def test_gdal_asks_for_cgcs2000_and_gets_it_in_the_right_axis_order(server, demo_session, tmp_path):
    _, frame = gdal_read(server, "towns", tmp_path, CRS="EPSG:4490")
    assert frame.crs.to_epsg() == 4490
    expected = registry.load_areas(demo_session, level="town").set_index("code")
    got = frame.set_index("code").geometry
    assert len(got) == len(expected)
    # GDAL hands lon/lat back in its traditional order: right only if we wrote lat/lon as Part 2 says
    for code in expected.index[:3]:
        assert shapely.hausdorff_distance(got.loc[code], expected.geometry.loc[code]) < 1e-6


def test_gdal_bbox_filter(server, demo_session, tmp_path):
    grids = registry.load_grids(demo_session)
    cell = grids.geometry.iloc[0].bounds
    _, frame = gdal_read(server, "grids", tmp_path, bbox=list(cell))
    touching = grids[shapely.intersects(grids.geometry.values, shapely.box(*cell))]
    assert sorted(frame["code"]) == sorted(touching["code"])
    assert 1 < len(frame) < 20


def test_landing_conformance_collections(ogc_client):
    landing = ogc_client.get("/ogc").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "conformance", "data"} <= rels
    assert ogc.CONFORMANCE == ogc_client.get("/ogc/conformance").json()["conformsTo"]
    grids = ogc_client.get("/ogc/collections/grids").json()
    assert grids["title"] == "网格" and grids["storageCrs"] == ogc.CRS84
    assert "http://www.opengis.net/def/crs/EPSG/0/4490" in grids["crs"]
    minx, miny, maxx, maxy = grids["extent"]["spatial"]["bbox"][0]
    assert 118 < minx < maxx < 119.5 and 36.5 < miny < maxy < 37.5
    assert ogc_client.get("/ogc/collections/nope").status_code == 404


def test_items_paging_crs_header_and_axis_order(ogc_client):
    page = ogc_client.get("/ogc/collections/grids/items", params={"limit": 5, "offset": 10})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("application/geo+json")
    assert page.headers["Content-Crs"] == f"<{ogc.CRS84}>"
    body = page.json()
    assert body["numberReturned"] == 5 and len(body["features"]) == 5
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    assert "offset=15" in nxt and "limit=5" in nxt
    lon, lat = body["features"][0]["geometry"]["coordinates"][0][0][0]
    uri = "http://www.opengis.net/def/crs/EPSG/0/4490"
    swapped = ogc_client.get("/ogc/collections/grids/items", params={"limit": 5, "offset": 10, "crs": uri})
    assert swapped.headers["Content-Crs"] == f"<{uri}>"
    assert swapped.json()["features"][0]["geometry"]["coordinates"][0][0][0] == [lat, lon]
    gk = ogc_client.get("/ogc/collections/grids/items",
                        params={"limit": 1, "crs": "http://www.opengis.net/def/crs/EPSG/0/4528"}).json()
    north, east = gk["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 4.0e6 < north < 4.2e6 and 40.3e6 < east < 40.5e6  # zone 40: easting carries the prefix


def test_bbox_crs_in_gauss_kruger(ogc_client, demo_session):
    from gis.coords import from_wgs84

    grid = registry.load_grids(demo_session, codes=["370783001001001"]).geometry.iloc[0]
    point = grid.representative_point()
    x, y = from_wgs84([point.x], [point.y], "EPSG:4528")
    box = f"{y[0] - 1},{x[0] - 1},{y[0] + 1},{x[0] + 1}"  # northing first, as EPSG:4528 orders axes
    found = ogc_client.get("/ogc/collections/grids/items",
                           params={"bbox": box, "bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/4528"}).json()
    assert [f["id"] for f in found["features"]] == ["370783001001001"]


def test_single_item_and_bad_input(ogc_client):
    one = ogc_client.get("/ogc/collections/grids/items/370783001001001")
    assert one.status_code == 200 and one.json()["properties"]["name"] == "东关社区第1网格"
    assert ogc_client.get("/ogc/collections/grids/items/370783001001999").status_code == 404
    bad_crs = ogc_client.get("/ogc/collections/grids/items", params={"crs": "EPSG:3857"})
    assert bad_crs.status_code == 400 and "not supported" in bad_crs.json()["detail"]
    assert ogc_client.get("/ogc/collections/grids/items", params={"bbox": "1,2,3"}).status_code == 400
    assert ogc_client.get("/ogc/collections/grids/items", params={"datetime": "yesterday"}).status_code == 400
    reversed_ = ogc_client.get("/ogc/collections/tickets/items",
                               params={"datetime": "2026-12-01T00:00:00Z/2026-11-01T00:00:00Z"})
    assert reversed_.status_code == 400


def test_area_filter_on_items(ogc_client, demo_session):
    body = ogc_client.get("/ogc/collections/grids/items", params={"area": TOWN, "limit": 10000}).json()
    expected = registry.load_grids(demo_session, town=TOWN)
    assert sorted(f["id"] for f in body["features"]) == sorted(expected["code"])
    assert np.all([f["properties"]["town_code"] == TOWN for f in body["features"]])
