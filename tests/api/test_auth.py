"""Sign-in, roles scoped to their area over HTTP, the audit log, and the hardening middleware."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api import middleware
from api.app import create_app
from api.deps import get_session
from gis.models import Grid
from layers.accounts.models import AuditEntry, User
from layers.accounts.security import hash_password, issue_token, set_disabled
from layers.accounts.settings import AuthSettings
from tests.api.state import use_session

KEY = "test-secret-" + "k" * 40
ON = AuthSettings(auth=True, secret_key=KEY, lockout_failures=5, lockout_minutes=15, token_minutes=30)
OFF = AuthSettings(auth=False)
PASSWORD = "a long test password"
UNUSED = "postgresql+psycopg://unused@127.0.0.1:1/unused"
HASH = hash_password(PASSWORD, ON)


def make_client(session, auth: AuthSettings, http: middleware.HttpSettings | None = None) -> TestClient:
    app = create_app(database_url=UNUSED)
    middleware.install(app, auth=auth, http=http or middleware.HttpSettings(tile_url="https://tiles.example.cn/{z}/{x}/{y}.png"))
    use_session(app, session)

    def override():
        yield session
        session.flush()

    app.dependency_overrides[get_session] = override
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def city(demo_session):
    """Demo-city facts: towns, one village, grid counts per area."""
    rows = demo_session.execute(select(Grid.code, Grid.village_code, Grid.town_code, Grid.district_code)
                                .where(Grid.valid_to.is_(None))).all()
    towns = sorted({r.town_code for r in rows})
    village = sorted({r.village_code for r in rows if r.town_code == towns[1]})[0]
    return {"rows": rows, "towns": towns, "village": village, "district": rows[0].district_code}


@pytest.fixture
def users(demo_session, city):
    t = city["towns"]
    grid_a = next(r.code for r in city["rows"] if r.town_code == t[0])
    specs = {
        "admin": dict(role="city"),
        "town_a": dict(role="town", area_code=t[0]),
        "town_b": dict(role="town", area_code=t[1]),
        "village": dict(role="village", area_code=city["village"]),
        "worker": dict(role="grid_worker", grid_codes=[grid_a]),
        "water": dict(role="department", department="水务"),
        "analyst": dict(role="analyst"),
        "viewer": dict(role="viewer", area_code=t[2]),
    }
    for name, spec in specs.items():  # one argon2 hash for all (0.25 s each on a small CPU)
        demo_session.add(User(username=name, display_name=name, password_hash=HASH, **spec))
    demo_session.flush()
    return {**specs, "grid_a": grid_a}


@pytest.fixture
def api(demo_session):
    return make_client(demo_session, ON)


def sign_in(api: TestClient, username: str, password: str = PASSWORD):
    return api.post("/auth/token", data={"username": username, "password": password})


def bearer(api: TestClient, username: str) -> dict[str, str]:
    response = sign_in(api, username)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def codes(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {f["properties"]["code"] for f in response.json()["features"]}


# ----------------------------------------------------------------------------- sign-in

def test_no_token_no_data(api, users):
    for path in ("/grids", "/areas", "/resolve?lon=118.79&lat=36.86", "/auth/me", "/audit"):
        response = api.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    assert api.get("/health").status_code == 200
    assert api.get("/grids", headers={"Authorization": "Bearer not.a.token"}).status_code == 401


def test_token_and_me(api, users):
    response = sign_in(api, "town_a")
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
    assert "httponly" in response.headers["set-cookie"].lower()
    assert "samesite=strict" in response.headers["set-cookie"].lower()
    me = api.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    assert me["role"] == "town" and me["area_code"] == users["town_a"]["area_code"] and me["auth"] is True
    assert me["can_see_phones"] and not me["may_export"] and not me["may_edit_grids"]


def test_lockout_after_five_failures(api, users):
    for _ in range(5):
        assert sign_in(api, "viewer", "wrong password").status_code == 401
    response = sign_in(api, "viewer")  # this address is locked out for this name (429, see test_harden)
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0


def test_expired_disabled_and_forged_tokens_are_refused(api, users, demo_session):
    from layers.accounts.security import get_user

    old = issue_token(get_user(demo_session, "town_a"), now=datetime.now(UTC) - timedelta(minutes=31), settings=ON)
    response = api.get("/grids", headers={"Authorization": f"Bearer {old.access_token}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    headers = bearer(api, "town_b")
    assert api.get("/auth/me", headers=headers).status_code == 200
    set_disabled(demo_session, "town_b")
    demo_session.flush()
    assert api.get("/auth/me", headers=headers).status_code == 401
    assert sign_in(api, "town_b").status_code == 401
    forged = issue_token(get_user(demo_session, "admin"), settings=AuthSettings(auth=True, secret_key="f" * 40))
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {forged.access_token}"}).status_code == 401


def test_cookie_sign_in_for_pages(api, users):
    response = api.post("/auth/token", data={"username": "admin", "password": PASSWORD, "next": "/desk"},
                        follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/desk"
    assert api.get("/auth/me").json()["username"] == "admin"  # the cookie carries the token
    evil = api.post("/auth/token", data={"username": "admin", "password": PASSWORD, "next": "//evil.example"},
                    follow_redirects=False)
    assert evil.status_code == 200  # no open redirect
    assert api.get("/login?next=/desk").status_code == 200


# ----------------------------------------------------------------------------- each role sees its area

def test_each_role_sees_exactly_its_grids(api, users, city):
    rows = city["rows"]
    expected = {
        "admin": {r.code for r in rows},
        "analyst": {r.code for r in rows},
        "town_a": {r.code for r in rows if r.town_code == city["towns"][0]},
        "town_b": {r.code for r in rows if r.town_code == city["towns"][1]},
        "viewer": {r.code for r in rows if r.town_code == city["towns"][2]},
        "village": {r.code for r in rows if r.village_code == city["village"]},
        "worker": {users["grid_a"]},
        "water": {r.code for r in rows},  # the registry has no department column: a city department sees it all
    }
    assert len(expected["admin"]) == 1347
    for name, want in expected.items():
        got = codes(api.get("/grids", headers=bearer(api, name)))
        assert got == want, name
        assert 0 < len(want)


def test_other_towns_grid_is_404_not_the_grid(api, users, city):
    headers = bearer(api, "town_a")
    own = next(r.code for r in city["rows"] if r.town_code == city["towns"][0])
    other = next(r.code for r in city["rows"] if r.town_code == city["towns"][1])
    assert api.get(f"/grids/{own}", headers=headers).status_code == 200
    response = api.get(f"/grids/{other}", headers=headers)
    assert response.status_code == 404 and other not in response.text.replace(f"no grid {other}", "")
    assert api.get(f"/grids/{other}/history", headers=headers).status_code == 404
    assert codes(api.get(f"/grids?town={city['towns'][1]}", headers=headers)) == set()


def test_only_city_admins_read_the_audit_log(api, users):
    assert api.get("/audit", headers=bearer(api, "town_a")).status_code == 403
    assert api.get("/audit", headers=bearer(api, "admin")).status_code == 200


# ----------------------------------------------------------------------------- audit

def test_every_write_lands_in_the_audit_log(api, users, demo_session):
    headers = bearer(api, "town_a")
    response = api.post("/resolve", json=[{"lon": 118.79, "lat": 36.86}], headers=headers)
    assert response.status_code == 200
    assert api.post("/resolve", content=b"", headers=headers).status_code == 400
    sign_in(api, "water", "wrong password")
    entries = api.get("/audit?method=POST&limit=50", headers=bearer(api, "admin")).json()["entries"]
    by_status = {(e["path"], e["status"]): e for e in entries}
    ok = by_status[("/resolve", 200)]
    assert ok["username"] == "town_a" and ok["role"] == "town" and ok["action"] == "resolve_batch"
    assert ok["ip"] == "testclient" and ok["method"] == "POST"
    assert by_status[("/resolve", 400)]["username"] == "town_a"
    failed = by_status[("/auth/token", 401)]
    assert failed["object"] == "user water" and failed["username"] is None
    assert "password" not in str(failed["detail"])
    count = demo_session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.path == "/resolve"))
    assert count == 2
    reads = demo_session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.path == "/grids"))
    assert reads == 0  # plain map reads are not audited; writes and exports are


# ----------------------------------------------------------------------------- hardening

def test_body_limit_413_with_a_reason(demo_session):
    client = make_client(demo_session, OFF, middleware.HttpSettings(max_body_bytes=2048))
    big = b"[" + b",".join(b'{"lon": 118.79, "lat": 36.86}' for _ in range(200)) + b"]"
    response = client.post("/resolve", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "over the limit of 2,048 bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: counted while read
        yield big[:1500]
        yield big[1500:]
    response = client.post("/resolve", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "2,048" in response.json()["detail"]
    assert client.post("/resolve", json=[{"lon": 118.79, "lat": 36.86}]).status_code == 200


def test_security_headers_and_csp_on_pages(demo_session):
    client = make_client(demo_session, OFF)
    page = client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "img-src 'self' data: blob: https://tiles.example.cn" in csp
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)
    assert len(re.findall(r"'sha256-[A-Za-z0-9+/=]+'", csp)) == len(inline) > 0
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "演示模式 · 未启用登录" in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    api_json = client.get("/health")
    assert api_json.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_cors_closed_by_default_and_opened_by_setting(demo_session):
    preflight = {"Origin": "https://other.example", "Access-Control-Request-Method": "POST"}
    closed = make_client(demo_session, OFF)
    assert "access-control-allow-origin" not in closed.options("/resolve", headers=preflight).headers
    assert "access-control-allow-origin" not in closed.get("/health", headers={"Origin": "https://other.example"}).headers
    opened = make_client(demo_session, OFF, middleware.HttpSettings(cors_origins="https://hall.example.gov.cn"))
    ok = opened.get("/health", headers={"Origin": "https://hall.example.gov.cn"})
    assert ok.headers["access-control-allow-origin"] == "https://hall.example.gov.cn"
    assert "access-control-allow-origin" not in opened.get("/health", headers={"Origin": "https://x.example"}).headers


def test_auth_on_without_a_key_refuses_to_start():
    app = create_app(database_url=UNUSED)
    with pytest.raises(RuntimeError, match="ONEMAP_SECRET_KEY"):
        middleware.install(app, auth=AuthSettings(auth=True, secret_key=""))


def test_demo_mode_is_city_wide_anonymous(demo_session):
    client = make_client(demo_session, OFF)
    me = client.get("/auth/me").json()
    assert me["username"] == "anonymous-demo" and me["auth"] is False and me["role"] == "city"
    assert client.post("/auth/token", data={"username": "x", "password": "y"}).status_code == 400
    assert len(codes(client.get("/grids"))) == 1347
