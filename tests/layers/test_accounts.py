"""Accounts: scope rules (SQL, Python and pandas agree), passwords, lock-out, tokens, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from gis import registry
from gis.errors import Conflict, InvalidInput, NotFound
from gis.models import Grid
from layers.accounts import audit
from layers.accounts.models import AuditEntry, User
from layers.accounts.scope import Scope
from layers.accounts.security import (
    AuthError,
    authenticate,
    create_user,
    decode_token,
    issue_token,
    scope_of,
    set_disabled,
    set_password,
    user_for_token,
    verify_password,
)
from layers.accounts.settings import AuthSettings
from layers.incidents.models import Ticket
from layers.privacy import mask_phone
from layers.workers.models import Assignment, Worker
from tests import registry_city as city

SETTINGS = AuthSettings(auth=True, secret_key="k" * 40, lockout_failures=3, lockout_minutes=10,
                        token_minutes=15)
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"

WEST, EAST, TOWN = "370783001001", "370783001002", "370783001000"


@pytest.fixture
def loaded(session):
    registry.import_areas(session, city.areas(), who="t", why="t")
    registry.import_grids(session, city.grids(), who="t", why="t")
    return session


def _grids(session, scope: Scope) -> set[str]:
    stmt = scope.filter(select(Grid.code).where(Grid.valid_to.is_(None)), Grid, grid_code=Grid.code)
    return set(session.scalars(stmt))


# ----------------------------------------------------------------------------- scope

@pytest.mark.parametrize(("scope", "expected"), [
    (Scope.for_role("city", user="c"), {"370783001001001", "370783001001002", "370783001002001"}),
    (Scope.for_role("district", user="d", area_code="370783000000"),
     {"370783001001001", "370783001001002", "370783001002001"}),
    (Scope.for_role("town", user="t", area_code=TOWN), {"370783001001001", "370783001001002", "370783001002001"}),
    (Scope.for_role("town", user="t2", area_code="370783002000"), set()),
    (Scope.for_role("village", user="v", area_code=WEST), {"370783001001001", "370783001001002"}),
    (Scope.for_role("village", user="v", area_code=EAST), {"370783001002001"}),
    (Scope.for_role("grid_worker", user="g", grid_codes=["370783001001002"]), {"370783001001002"}),
    (Scope.for_role("viewer", user="w", area_code=EAST), {"370783001002001"}),
])
def test_each_scope_sees_exactly_its_grids(loaded, scope, expected):
    assert _grids(loaded, scope) == expected


def test_sql_python_and_pandas_agree_on_the_demo_city(demo_session):
    grids = registry.load_grids(demo_session)
    towns = sorted(grids["town_code"].unique())
    village = sorted(grids["village_code"].unique())[7]
    scopes = [Scope.for_role("town", user="a", area_code=towns[0]),
              Scope.for_role("town", user="b", area_code=towns[-1]),
              Scope.for_role("village", user="v", area_code=village),
              Scope.for_role("district", user="d", area_code=grids["district_code"].iloc[0]),
              Scope.for_role("grid_worker", user="g", grid_codes=list(grids["code"].iloc[[3, 500]])),
              Scope.for_role("analyst", user="an", area_code=towns[1])]
    for scope in scopes:
        sql = _grids(demo_session, scope)
        pandas = set(grids.loc[scope.mask(grids, grid_code="code"), "code"])
        python = {c for c, v, t, d in grids[["code", "village_code", "town_code", "district_code"]].itertuples(
            index=False) if scope.sees({"grid_code": c, "village_code": v, "town_code": t, "district_code": d})}
        assert sql == pandas == python
        assert 0 < len(sql) < len(grids) or scope.role == "district"
    per_town = grids.groupby("town_code").size()
    assert len(_grids(demo_session, scopes[0])) == per_town[towns[0]]


def _ticket(session, **codes) -> Ticket:
    row = Ticket(channel="hotline", category="0101", severity="general", department=codes.pop("department", "城管"),
                 needs_town=True, co_units=codes.pop("co_units", []), **codes)
    session.add(row)
    session.flush()
    return row


def test_tickets_by_town_department_and_grid(session):
    a = _ticket(session, grid_code="370783001001001", village_code=WEST, town_code=TOWN,
                district_code="370783000000", department="水务")
    b = _ticket(session, grid_code="370783002001001", village_code="370783002001", town_code="370783002000",
                district_code="370783000000", department="城管", co_units=["水务"])
    c = _ticket(session, unplaced=True, department="城管")  # no codes: city-wide only
    ids = {a.id, b.id, c.id}

    def seen(scope: Scope) -> set[int]:
        return set(session.scalars(scope.filter(select(Ticket.id), Ticket))) & ids

    assert seen(Scope.for_role("city", user="c")) == ids
    assert seen(Scope.for_role("town", user="t", area_code=TOWN)) == {a.id}
    assert seen(Scope.for_role("town", user="t", area_code="370783002000")) == {b.id}
    assert seen(Scope.for_role("department", user="w", department="水务")) == {a.id, b.id}  # routed + joined
    assert seen(Scope.for_role("department", user="u", department="城管")) == {b.id, c.id}
    assert seen(Scope.for_role("grid_worker", user="g", grid_codes=["370783001001001"])) == {a.id}
    town = Scope.for_role("town", user="t", area_code=TOWN)
    assert town.check(a, f"ticket {a.id}") is a
    with pytest.raises(NotFound, match=f"no ticket {b.id}"):  # same answer as a ticket that does not exist
        town.check(b, f"ticket {b.id}")
    with pytest.raises(NotFound):
        town.check(c, f"ticket {c.id}")


def test_workers_seen_through_their_grid_assignments(session):
    session.add_all([Worker(id="w1", name="张三", role="full_time", town_code=TOWN),
                     Worker(id="w2", name="李四", role="full_time", town_code="370783002000")])
    session.flush()
    session.add_all([Assignment(worker_id="w1", grid_code="370783001002001"),
                     Assignment(worker_id="w2", grid_code="370783002001001")])
    session.flush()

    def seen(scope: Scope) -> set[str]:
        stmt = scope.filter(select(Worker.id), Worker, via=(Worker.id, Assignment.worker_id))
        return set(session.scalars(stmt)) & {"w1", "w2"}

    assert seen(Scope.for_role("town", user="t", area_code=TOWN)) == {"w1"}
    assert seen(Scope.for_role("village", user="v", area_code=EAST)) == {"w1"}  # via its grid
    assert seen(Scope.for_role("village", user="v", area_code=WEST)) == set()
    assert seen(Scope.for_role("grid_worker", user="g", grid_codes=["370783002001001"])) == {"w2"}


def test_phones_masked_unless_the_role_needs_them():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("0536-5221234") == "053*****1234"
    assert Scope.for_role("viewer", user="v").phone("13812345678") == "138****5678"
    assert Scope.for_role("grid_worker", user="g", grid_codes=["370783001001001"]).phone("13812345678") == \
        "138****5678"
    assert Scope.for_role("town", user="t", area_code=TOWN).phone("13812345678") == "13812345678"
    assert Scope.demo().user == "anonymous-demo" and Scope.demo().may_edit_grids and Scope.demo().city_wide


def test_roles_carry_what_scopes_them(session):
    for role, kw, message in [
        ("town", {}, "needs --area"),
        ("town", {"area_code": WEST}, "not a town code"),
        ("city", {"area_code": TOWN}, "whole city"),
        ("department", {}, "needs --department"),
        ("grid_worker", {}, "needs --grids"),
        ("grid_worker", {"area_code": WEST, "grid_codes": ["370783001002001"]}, "outside the worker's area"),
        ("mayor", {}, "unknown role"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            create_user(session, username=f"u-{role}", password=PASSWORD, role=role, settings=SETTINGS, **kw)
    with pytest.raises(InvalidInput, match="at least 10"):
        create_user(session, username="short", password="abc", role="viewer", settings=SETTINGS)


# ----------------------------------------------------------------------------- sign-in

def test_password_lockout_per_address_and_unlock(session):
    from layers.accounts.throttle import SignInThrottle, nested_in

    create_user(session, username="zhang", password=PASSWORD, role="town", area_code=TOWN, settings=SETTINGS)
    user = session.scalars(select(User).where(User.username == "zhang")).one()
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    with pytest.raises(Conflict):
        create_user(session, username="zhang", password=PASSWORD, role="viewer", settings=SETTINGS)
    # The lock is per (account, address) in the throttle, never on the account row: failing from one
    # address locks that address out for this name; another address still signs in.
    clock = [0.0]
    throttle = SignInThrottle(nested_in(session), clock=lambda: clock[0])
    for _ in range(3):
        assert throttle.check("zhang", "10.0.0.9") is None
        with pytest.raises(AuthError, match="incorrect"):
            authenticate(session, "zhang", "wrong password!", now=T0, settings=SETTINGS)
        throttle.failed("zhang", "10.0.0.9", lockout_failures=3, lockout_minutes=10)
    refused = throttle.check("zhang", "10.0.0.9")  # the right password is not even tried while locked
    assert refused is not None and refused.retry_after == 600
    assert throttle.check("zhang", "10.0.0.1") is None
    assert authenticate(session, "zhang", PASSWORD, now=T0, settings=SETTINGS) is user
    assert user.failed_attempts == 0 and user.locked_until is None  # nothing is counted on the row
    clock[0] = 601.0
    assert throttle.check("zhang", "10.0.0.9") is None
    with pytest.raises(AuthError, match="incorrect"):
        authenticate(session, "nobody", PASSWORD, now=T0, settings=SETTINGS)


def test_tokens_expire_and_are_revoked(session):
    user = create_user(session, username="li", password=PASSWORD, role="village", area_code=WEST, settings=SETTINGS)
    fresh = issue_token(user, settings=SETTINGS)
    found = user_for_token(session, fresh.access_token, settings=SETTINGS)  # a detached copy: what scoping needs
    assert (found.id, found.username, found.role, found.area_code, found.token_version) == (user.id, "li", "village",
                                                                                          WEST, 0)
    assert decode_token(fresh.access_token, settings=SETTINGS)["role"] == "village"
    old = issue_token(user, now=datetime.now(UTC) - timedelta(minutes=16), settings=SETTINGS)
    with pytest.raises(AuthError, match="expired"):
        user_for_token(session, old.access_token, settings=SETTINGS)
    other_key = AuthSettings(auth=True, secret_key="x" * 40)
    with pytest.raises(AuthError, match="not valid"):
        user_for_token(session, issue_token(user, settings=other_key).access_token, settings=SETTINGS)
    set_password(session, "li", "another long password", settings=SETTINGS)
    with pytest.raises(AuthError, match="revoked"):
        user_for_token(session, fresh.access_token, settings=SETTINGS)
    again = issue_token(user, settings=SETTINGS)
    set_disabled(session, "li")
    with pytest.raises(AuthError, match="disabled"):
        user_for_token(session, again.access_token, settings=SETTINGS)
    with pytest.raises(AuthError, match="disabled"):
        authenticate(session, "li", "another long password", settings=SETTINGS)
    assert scope_of(user).area_code == WEST


def test_no_default_secret_key():
    with pytest.raises(RuntimeError, match="ONEMAP_SECRET_KEY is not set"):
        AuthSettings(auth=True, secret_key="").check()
    with pytest.raises(RuntimeError, match="shorter than 32"):
        AuthSettings(auth=True, secret_key="short").check()
    AuthSettings(auth=False, secret_key="").check()  # the local demo


# ----------------------------------------------------------------------------- audit

def test_audit_log_is_append_only(session):
    audit.write(session, [{"username": "a", "role": "city", "method": "POST", "path": "/tickets", "status": 201,
                           "ip": "127.0.0.1", "action": "create", "object": "id=1", "detail": {"q": "水\x00"}}])
    session.flush()
    row = session.scalars(select(AuditEntry).where(AuditEntry.username == "a")).one()
    assert row.detail == {"q": "水\\0"}
    for sql in ("UPDATE audit_log SET status = 200", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        # the app role holds no such privilege; the owner meets the trigger (tests/layers/test_audit_roles.py)
        with pytest.raises(DBAPIError, match="permission denied for table audit_log"):
            with session.begin_nested():
                session.execute(text(sql))
    total, rows = audit.query(session, username="a", method="post", path_prefix="/tick")
    assert total == 1 and rows[0]["object"] == "id=1"


def test_audit_writer_writes_in_the_background(scratch_url):
    engine = create_engine(scratch_url)
    writer = audit.AuditWriter(sessionmaker(engine))
    for i in range(250):
        writer.submit({"username": "bg", "method": "POST", "path": f"/x/{i}", "status": 200, "detail": {}})
    assert writer.flush(10)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM audit_log WHERE username = 'bg'")) == 250
    engine.dispose()


# ----------------------------------------------------------------------------- CLI

def test_cli_users_add_list_reset_disable(cli_env):
    from typer.testing import CliRunner

    from scripts.cli import app

    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "wang", "--role", "town", "--area", TOWN, "--name", "王芳",
                                "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "added wang (town 370783001000)" in added.output
    refused = runner.invoke(app, ["users", "add", "zhao", "--role", "town", "--password-stdin"], input=PASSWORD + "\n")
    assert refused.exit_code == 1 and "needs --area" in refused.output
    listed = runner.invoke(app, ["users", "list"])
    assert "王芳" in listed.output and "active" in listed.output
    assert runner.invoke(app, ["users", "reset", "wang", "--password-stdin"], input="a new long password\n").exit_code == 0
    assert runner.invoke(app, ["users", "disable", "wang"]).exit_code == 0
    assert "disabled" in runner.invoke(app, ["users", "list"]).output
    missing = runner.invoke(app, ["users", "disable", "nobody"])
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.output
    engine = create_engine(cli_env)
    with Session(engine) as session:
        user = session.scalars(select(User).where(User.username == "wang")).one()
        assert user.disabled and user.token_version == 2
        assert verify_password(user.password_hash, "a new long password")
    engine.dispose()


def test_a_committed_disable_or_revocation_stops_the_next_request(scratch_url):
    """Outside a transaction the account is asked on a side connection (no pooled session): still
    every time, so disabling an account or revoking its tokens elsewhere stops its very next request."""
    from scripts.migrate import upgrade

    upgrade(scratch_url)
    eng = create_engine(scratch_url)
    try:
        with Session(eng) as admin:
            user = create_user(admin, username="wang", password=PASSWORD, role="city", settings=SETTINGS)
            token = issue_token(user, settings=SETTINGS).access_token
            admin.commit()
        with Session(eng) as request:
            assert user_for_token(request, token, settings=SETTINGS).role == "city"
            assert not request.in_transaction()  # the route's session was not used for it
        with Session(eng) as admin:
            set_disabled(admin, "wang", True)
            admin.commit()
        with Session(eng) as request, pytest.raises(AuthError, match="disabled"):
            user_for_token(request, token, settings=SETTINGS)
        with Session(eng) as admin:
            set_disabled(admin, "wang", False)
            admin.execute(text("UPDATE users SET token_version = token_version + 1 WHERE username = 'wang'"))
            admin.commit()
        with Session(eng) as request, pytest.raises(AuthError, match="revoked"):
            user_for_token(request, token, settings=SETTINGS)
    finally:
        eng.dispose()
