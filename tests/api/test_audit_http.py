"""The audit log over real HTTP: a uvicorn server with sign-in on, connected as the app role.

What is checked against the running server: every connection it holds is the non-superuser app role;
a grid edit's entry carries the edit id and the codes it opened and closed; a ticket move's entry
carries the move and the workflow role; the recorded address is the socket peer whatever
X-Forwarded-For says, unless ONEMAP_TRUSTED_PROXIES names the peer, and then it is the right-most
untrusted hop of the header.
"""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest
import shapely
from shapely.geometry import mapping
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from gis import registry
from layers.accounts.security import create_user
from layers.accounts.settings import AuthSettings
from scripts.bench_map import Server
from scripts.migrate import libpq
from tests import registry_city as city
from tests.conftest import owner_url

KEY = "audit-http-secret-" + "k" * 40
PASSWORD = "审计-Roles-2026-long-pass"
GRID = "370783001001001"


@pytest.fixture(scope="module")
def audit_db(cluster):
    """A scratch database with the tiny city and a city administrator, committed as the app role."""
    from tests.conftest import _database

    name = "t_audit_http"
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    url = _database(cluster, name)
    engine = create_engine(url)
    with Session(engine) as session:
        registry.import_areas(session, city.areas(), who="t", why="t")
        registry.import_grids(session, city.grids(), who="t", why="t")
        for username, role in (("admin", "city"), ("planner", "planner")):
            create_user(session, username=username, password=PASSWORD, role=role,
                        settings=AuthSettings(auth=True, secret_key=KEY))
        session.commit()
    engine.dispose()
    yield url
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def serve(url: str, **env: str) -> Server:
    return Server(url, ONEMAP_AUTH="on", ONEMAP_SECRET_KEY=KEY, **env)


def bearer(base: str, username: str = "admin") -> dict[str, str]:
    response = httpx.post(f"{base}/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def entries(url: str, where: str, params: tuple = (), expected: int = 1) -> list[dict]:
    """Audit rows (read as the owner), waiting for the server's background writer."""
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(libpq(owner_url(url))) as conn:
            cur = conn.execute(f"SELECT ip, action, object, detail, username, status FROM audit_log WHERE {where} "
                               "ORDER BY id", params)
            names = [c.name for c in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(audit_db):
    """The server with sign-in on and no trusted proxy."""
    srv = serve(audit_db)
    yield srv
    srv.stop()


def test_the_server_connects_as_the_app_role(server, audit_db):
    bearer(server.base)  # a request that used the database
    with psycopg.connect(libpq(owner_url(audit_db))) as conn:
        roles = conn.execute(
            "SELECT DISTINCT a.usename, r.rolsuper, r.rolcreaterole FROM pg_stat_activity a "
            "JOIN pg_roles r ON r.rolname = a.usename WHERE a.datname = current_database() "
            "AND a.pid <> pg_backend_pid()").fetchall()
    assert roles == [("onemap_app", False, False)]  # every connection the server holds


def test_grid_edits_carry_the_edit_id_and_codes(server, audit_db):
    planner = bearer(server.base, "planner")
    engine = create_engine(audit_db)
    with Session(engine) as session:
        grid = registry.load_grids(session, codes=[GRID]).geometry[0]
    engine.dispose()
    c, (_x0, y0, _x1, y1) = grid.centroid, grid.bounds  # split it by a north-south line through its middle
    line = shapely.LineString([(c.x, y0 - 0.001), (c.x, y1 + 0.001)])
    split = httpx.post(f"{server.base}/grids/edits/split", headers=planner,
                       json={"why": "社区调整", "code": GRID, "line": mapping(line)})
    assert split.status_code == 200, split.text
    answer = split.json()
    (edit,) = entries(audit_db, "path = '/grids/edits/split'")
    assert edit["object"] == f"edit={answer['edit_id']}" and edit["detail"]["edit_id"] == answer["edit_id"]
    assert edit["detail"]["closed"] == [GRID] and edit["detail"]["opened"] == sorted(answer["opened"])
    assert len(answer["opened"]) == 2 and edit["detail"]["codes"] == [GRID] and edit["username"] == "planner"

    # a refused edit is on record with the codes it named
    refused = httpx.post(f"{server.base}/grids/edits/merge", headers=planner,
                         json={"why": "x", "codes": [GRID, "370783001002001"]})
    assert refused.status_code >= 400
    (tried,) = entries(audit_db, "path = '/grids/edits/merge'")
    assert tried["detail"]["codes"] == [GRID, "370783001002001"] and tried["status"] == refused.status_code


def test_ticket_moves_carry_the_move_and_workflow_role(server, audit_db):
    auth = bearer(server.base)
    ticket = httpx.post(f"{server.base}/tickets", headers=auth,
                        json={"channel": "hotline", "category": "0102", "description": "路边垃圾堆积",
                              "lon": city.X0 + 100, "lat": city.Y0 + 100, "crs": city.GK})
    assert ticket.status_code == 201, ticket.text
    tid = ticket.json()["id"]
    moved = httpx.post(f"{server.base}/tickets/{tid}/dispatch", headers=auth,
                       json={"actor": "王五", "role": "city", "payload": {"assignee": "370783001000"}})
    assert moved.status_code == 200, moved.text
    (entry,) = entries(audit_db, "path = %s", (f"/tickets/{tid}/dispatch",))
    assert entry["detail"]["move"] == "dispatch" and entry["detail"]["workflow_role"] == "city"
    assert "account_workflow_role" not in entry["detail"]


def test_forwarded_for_is_ignored_without_a_trusted_proxy(server, audit_db):
    spoofed = httpx.post(f"{server.base}/resolve", headers={**bearer(server.base), "X-Forwarded-For": "203.0.113.9"},
                         json=[{"lon": 118.8, "lat": 36.9}])
    assert spoofed.status_code < 500
    (row,) = entries(audit_db, "path = '/resolve' AND detail->'query' IS NULL")
    assert row["ip"] == "127.0.0.1" and row["detail"]["x-forwarded-for"] == "203.0.113.9"


def test_forwarded_for_counts_only_from_a_trusted_proxy(audit_db):
    server = serve(audit_db, ONEMAP_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8")
    try:
        auth = bearer(server.base)
        body = [{"lon": 118.8, "lat": 36.9}]

        def post(tag: str, forwarded: str, local: str = "127.0.0.1") -> None:
            with httpx.Client(transport=httpx.HTTPTransport(local_address=local)) as client:
                response = client.post(f"{server.base}/resolve?tag={tag}", json=body,
                                       headers={**auth, "X-Forwarded-For": forwarded})
            assert response.status_code < 500, response.text

        # through the trusted proxy (127.0.0.1) and a trusted inner hop (10.1.2.3): the client is the
        # right-most untrusted address; what the client wrote to the left of it is ignored
        post("chain", "198.51.100.7, 203.0.113.9, 10.1.2.3")
        post("single", "203.0.113.20")
        post("garbage", "not-an-ip")
        # a peer that is not a trusted proxy (127.0.0.2: loopback, but not listed): header ignored
        post("direct", "203.0.113.30", local="127.0.0.2")
        rows = entries(audit_db, "path = '/resolve' AND detail->'query'->>'tag' IS NOT NULL",
                       expected=4)
        seen = {r["detail"]["query"]["tag"]: r["ip"] for r in rows}
        assert seen == {"chain": "203.0.113.9", "single": "203.0.113.20", "garbage": "127.0.0.1",
                        "direct": "127.0.0.2"}
    finally:
        server.stop()


def test_the_app_fixtures_connect_as_the_app_role(client, session):
    """The tests' app (api/conftest.py) runs on the session fixture's connection: the app role."""
    user, superuser = session.execute(text(
        "SELECT current_user, usesuper FROM pg_user WHERE usename = current_user")).one()
    assert (user, superuser) == ("onemap_app", False)
    assert client.get("/health").status_code == 200
