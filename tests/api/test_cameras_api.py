"""Cameras over HTTP: CRUD, CSV import, calibration, GeoJSON with wedges and alarm state,
detections (map point when calibrated), heat per hour, the latest key frame. No torch needed."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import insert, text

from gis.coords import from_wgs84, gauss_kruger_epsg, to_wgs84
from layers.cameras.models import Alarm, Detection, KeyFrame

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def spot(demo_session):
    """A point inside the lowest-coded demo grid and that grid's code."""
    row = demo_session.execute(text(
        "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
        "WHERE valid_to IS NULL ORDER BY code LIMIT 1")).one()
    return row[0], float(row[1]), float(row[2])


def _create(client, spot, camera_id="CAM-001", **extra):
    code, lon, lat = spot
    body = {"id": camera_id, "name": "东城路口", "lon": lon, "lat": lat, "heading_deg": 90, "fov_deg": 60,
            "range_m": 50, **extra}
    return client.post("/cameras", json=body)


def test_create_resolves_the_grid_and_refuses_duplicates(demo_client, spot):
    r = _create(demo_client, spot)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["grid_code"] == spot[0] and body["town_code"] == spot[0][:9] + "000"
    assert body["status"] == "unknown" and body["calibration"] is None
    assert _create(demo_client, spot).status_code == 409
    bad = _create(demo_client, spot, camera_id="CAM-X", fov_deg=400)
    assert bad.status_code == 400 and "fov_deg" in bad.json()["detail"]


def test_get_patch_delete(demo_client, spot):
    _create(demo_client, spot)
    r = demo_client.patch("/cameras/CAM-001", json={"name": "东城路口北", "heading_deg": 180})
    assert r.status_code == 200 and r.json()["name"] == "东城路口北" and r.json()["heading_deg"] == 180
    assert demo_client.get("/cameras/CAM-001").json()["rules"] == []
    assert demo_client.delete("/cameras/CAM-001").status_code == 204
    assert demo_client.get("/cameras/CAM-001").status_code == 404


def test_geojson_has_wedge_of_the_right_size_and_alarm_state(demo_client, demo_session, spot):
    _create(demo_client, spot)
    fc = demo_client.get("/cameras").json()
    (feature,) = fc["features"]
    props = feature["properties"]
    assert feature["id"] == "CAM-001" and props["alarm_state"] == "ok" and props["active_alarms"] == 0
    ring = np.array(props["wedge"]["coordinates"][0])
    epsg = f"EPSG:{gauss_kruger_epsg(spot[1])}"
    x, y = from_wgs84(ring[:, 0], ring[:, 1], epsg)
    cx, cy = from_wgs84([spot[1]], [spot[2]], epsg)
    dist = np.hypot(x - cx[0], y - cy[0])
    arc = np.r_[dist[:-1] > 1.0, False]  # the last coordinate closes the ring
    assert arc.sum() == 13  # apex + 13 arc points (+ closing apex)
    np.testing.assert_allclose(dist[arc], 50.0, atol=0.05)  # the arc is 50 m away
    assert np.all(x[arc] > cx[0] + 40)  # heading 90°, 60° field of view: looking east
    now = datetime.now(UTC)
    demo_session.add(Alarm(camera_id="CAM-001", kind="crowd", state="active", started_at=now, last_seen_at=now,
                           count=6, max_count=6))
    demo_session.flush()
    props = demo_client.get("/cameras").json()["features"][0]["properties"]
    assert props["alarm_state"] == "alarm" and props["alarm_kind"] == "crowd"
    wedges = demo_client.get("/cameras", params={"layer": "wedges"}).json()
    assert wedges["features"][0]["geometry"]["type"] == "Polygon"


def test_csv_import_all_or_nothing(demo_client, spot):
    code, lon, lat = spot
    good = f"id,name,lon,lat,heading_deg\nC1,一号,{lon},{lat},10\nC2,二号,{lon + 1e-4},{lat},20\n"
    r = demo_client.post("/cameras/import", content=good.encode("utf-8-sig"), headers={"content-type": "text/csv"})
    assert r.status_code == 201 and r.json() == {"imported": 2, "ids": ["C1", "C2"]}
    bad = f"id,name,lon,lat\nC3,三号,{lon},{lat}\nC4,四号,abc,{lat}\n"
    r = demo_client.post("/cameras/import", content=bad, headers={"content-type": "text/csv"})
    assert r.status_code == 400 and "line 3" in r.json()["detail"]
    missing = demo_client.post("/cameras/import", content="id,name\nC5,五号\n")
    assert missing.status_code == 400 and "lon, lat" in missing.json()["detail"]


def _pairs(lon0, lat0):
    epsg = f"EPSG:{gauss_kruger_epsg(lon0)}"
    x0, y0 = from_wgs84([lon0], [lat0], epsg)
    image = [[0, 360], [640, 360], [640, 120], [0, 120], [320, 240]]
    ground = np.array([[-4, 5], [4, 5], [20, 60], [-20, 60], [0, 21.25]], float)
    lon, lat = to_wgs84(ground[:, 0] + x0[0], ground[:, 1] + y0[0], epsg)
    return image, np.column_stack([lon, lat]).tolist()


def test_calibration_reports_metres_and_refuses_three_points(demo_client, spot):
    _create(demo_client, spot)
    image, ground = _pairs(spot[1], spot[2])
    r = demo_client.put("/cameras/CAM-001/calibration", json={"image_points": image[:4], "map_points": ground[:4]})
    assert r.status_code == 200, r.text
    assert r.json()["rms_m"] < 0.01
    r = demo_client.put("/cameras/CAM-001/calibration", json={"image_points": image[:3], "map_points": ground[:3]})
    assert r.status_code == 400 and "at least 4" in r.json()["detail"]
    assert demo_client.get("/cameras/CAM-001").json()["calibration"]["rms_m"] < 0.01


def test_rules_are_checked(demo_client, spot):
    _create(demo_client, spot)
    r = demo_client.post("/cameras/CAM-001/rules", json={"kind": "crowd", "min_count": 4,
                                                         "roi": [[0, 0], [640, 0], [640, 360]]})
    assert r.status_code == 201 and r.json()["classes"] == ["person"] and r.json()["category"] == "1201"
    bad = demo_client.post("/cameras/CAM-001/rules", json={"kind": "crowd", "roi": [[0, 0], [1, 1]]})
    assert bad.status_code == 400


def test_detections_geojson_filters_and_heat(demo_client, demo_session, spot):
    code, lon, lat = spot
    _create(demo_client, spot)
    t0 = datetime(2026, 5, 1, 8, 10, tzinfo=UTC)
    rows = []
    for i in range(6):
        located = i < 4
        rows.append({"camera_id": "CAM-001", "at": t0 + timedelta(minutes=20 * i), "class_name": "person" if i % 2 == 0 else "car",
                     "confidence": 0.9, "x1": 0, "y1": 0, "x2": 10, "y2": 30, "track_id": i,
                     "geom": f"SRID=4326;POINT({lon} {lat})" if located else None,
                     "grid_code": code if located else None})
    demo_session.execute(insert(Detection), rows)
    demo_session.flush()
    fc = demo_client.get("/detections", params={"camera": "CAM-001", "limit": 10}).json()
    assert len(fc["features"]) == 6
    assert [f["properties"]["track_id"] for f in fc["features"]] == [5, 4, 3, 2, 1, 0]  # newest first
    assert sum(f["geometry"] is None for f in fc["features"]) == 2
    assert fc["features"][2]["geometry"]["coordinates"] == pytest.approx([lon, lat], abs=1e-7)
    people = demo_client.get("/detections", params={"class": "person", "since": (t0 + timedelta(minutes=30)).isoformat()}).json()
    assert [f["properties"]["track_id"] for f in people["features"]] == [4, 2]
    assert demo_client.get("/detections", params={"since": "2026-05-01T08:00:00"}).status_code == 400
    heat = demo_client.get("/detections/heat").json()["features"]
    counts = sorted((f["properties"]["class_name"], f["properties"]["hour"][:13], f["properties"]["count"]) for f in heat)
    assert counts == [("car", "2026-05-01T08", 1), ("car", "2026-05-01T09", 1), ("person", "2026-05-01T08", 2)]


def test_latest_key_frame(demo_client, demo_session, spot, tmp_path):
    _create(demo_client, spot)
    assert demo_client.get("/cameras/CAM-001/keyframe").status_code == 404
    old, new = tmp_path / "old.jpg", tmp_path / "new.jpg"
    old.write_bytes(JPEG + b"old")
    new.write_bytes(JPEG + b"new")
    t = datetime.now(UTC)
    demo_session.add_all([KeyFrame(camera_id="CAM-001", at=t - timedelta(seconds=5), path=str(old), detections=1),
                          KeyFrame(camera_id="CAM-001", at=t, path=str(new), detections=2)])
    demo_session.flush()
    r = demo_client.get("/cameras/CAM-001/keyframe")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content.endswith(b"new")


# ----------------------------------------------------------------------------- the latest analysed frame


def _detections_at(session, camera_id, at, n, lon, lat, code):
    session.execute(insert(Detection), [
        {"camera_id": camera_id, "at": at, "class_name": "person", "confidence": 0.8, "x1": 10 * i, "y1": 0,
         "x2": 10 * i + 8, "y2": 30, "track_id": i, "geom": f"SRID=4326;POINT({lon + i * 1e-5} {lat})",
         "grid_code": code} for i in range(n)])
    session.flush()


def test_latest_frame_with_its_time_and_that_frames_detections(demo_client, demo_session, spot, tmp_path,
                                                               monkeypatch):
    from layers.cameras import frames

    monkeypatch.setenv("ONEMAP_KEYFRAME_DIR", str(tmp_path))
    code, lon, lat = spot
    _create(demo_client, spot)
    r = demo_client.get("/cameras/CAM-001/frame")
    assert r.status_code == 404 and "has no analysed frame" in r.json()["detail"]
    assert "not analysed it yet" in r.json()["detail"]
    assert demo_client.get("/cameras/NOPE/frame").status_code == 404

    first = datetime(2026, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
    second = first + timedelta(seconds=2, microseconds=1)
    _detections_at(demo_session, "CAM-001", first, 2, lon, lat, code)
    _detections_at(demo_session, "CAM-001", second, 3, lon, lat, code)
    frames.write_latest(tmp_path, "CAM-001", JPEG + b"first", first)
    frames.write_latest(tmp_path, "CAM-001", JPEG + b"second", second)  # replaces the first
    r = demo_client.get("/cameras/CAM-001/frame")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content.endswith(b"second")
    assert r.headers["x-frame-time"] == "2026-05-01T08:00:02.123457Z" and r.headers["cache-control"] == "no-store"
    assert sorted(p.name for p in (tmp_path / "CAM-001").iterdir()) == ["latest.jpg"]  # no temp file left
    fc = demo_client.get("/detections", params={"camera": "CAM-001", "since": r.headers["x-frame-time"],
                                                "limit": 50}).json()
    assert [f["properties"]["track_id"] for f in fc["features"]] == [2, 1, 0]  # exactly that frame's boxes
    assert all(f["geometry"]["type"] == "Point" and f["properties"]["grid_code"] == code for f in fc["features"])
    before = demo_client.get("/detections", params={"camera": "CAM-001", "until": r.headers["x-frame-time"]}).json()
    assert len(before["features"]) == 2
    assert demo_client.get("/detections", params={"until": "2026-05-01T08:00:00"}).status_code == 400
    assert demo_client.delete("/cameras/CAM-001").status_code == 204
    _create(demo_client, spot)  # the same id again: a new camera, no frame of the old one
    assert demo_client.get("/cameras/CAM-001/frame").status_code == 404


def test_frame_for_an_id_that_is_not_a_plain_name_stays_in_its_folder(demo_client, spot, tmp_path, monkeypatch):
    from layers.cameras import frames

    monkeypatch.setenv("ONEMAP_KEYFRAME_DIR", str(tmp_path / "kf"))
    _create(demo_client, spot, camera_id="..")
    _create(demo_client, spot, camera_id="东门-1")
    at = datetime.now(UTC)
    for camera_id in ("..", "东门-1"):
        path = frames.write_latest(tmp_path / "kf", camera_id, JPEG + camera_id.encode(), at)
        assert path.parent.parent == tmp_path / "kf"  # never outside the key frame folder
    assert demo_client.get("/cameras/东门-1/frame").content.endswith("东门-1".encode())
    assert not (tmp_path / "latest.jpg").exists()


def test_frame_is_scoped_like_the_camera(demo_session, spot, tmp_path, monkeypatch):
    from layers.cameras import frames
    from layers.cameras import service as cameras
    from tests.api.test_auth import HASH, ON, bearer, make_client

    monkeypatch.setenv("ONEMAP_KEYFRAME_DIR", str(tmp_path))
    code, lon, lat = spot
    cameras.create_camera(demo_session, id="CAM-S", name="镇口", lon=lon, lat=lat)
    frames.write_latest(tmp_path, "CAM-S", JPEG, datetime.now(UTC))
    town = code[:9] + "000"
    other = demo_session.scalar(text("SELECT min(code) FROM areas WHERE level = 'town' AND code <> :t"), {"t": town})
    from layers.accounts.models import User

    demo_session.add_all([User(username="mine", display_name="本镇", password_hash=HASH, role="town", area_code=town),
                          User(username="theirs", display_name="外镇", password_hash=HASH, role="town",
                               area_code=other)])
    demo_session.flush()
    api = make_client(demo_session, ON)
    assert api.get("/cameras/CAM-S/frame").status_code == 401
    assert api.get("/cameras/CAM-S/frame", headers=bearer(api, "mine")).status_code == 200
    theirs = api.get("/cameras/CAM-S/frame", headers=bearer(api, "theirs"))
    assert theirs.status_code == 404 and theirs.json()["detail"] == "no camera CAM-S"  # as if it did not exist


def test_cameras_carry_status_last_frame_and_alarm_state(demo_client, demo_session, spot):
    _create(demo_client, spot)
    props = demo_client.get("/cameras").json()["features"][0]["properties"]
    assert props["status"] == "unknown" and props["last_frame_at"] is None and props["frame_age_s"] is None
    assert props["alarm_state"] == "ok"
    at = datetime.now(UTC) - timedelta(seconds=30)
    demo_session.execute(text("UPDATE cameras SET status = 'online', last_frame_at = :t"), {"t": at})
    demo_session.add(Alarm(camera_id="CAM-001", kind="parking", state="active", started_at=at, last_seen_at=at,
                           count=1, max_count=1))
    demo_session.flush()
    props = demo_client.get("/cameras").json()["features"][0]["properties"]
    assert props["status"] == "online" and datetime.fromisoformat(props["last_frame_at"]) == at
    assert props["frame_age_s"] >= 29 and props["alarm_state"] == "alarm" and props["alarm_kind"] == "parking"
