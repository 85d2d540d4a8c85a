"""The audit log cannot be rewritten by the application's database role (审计日志防篡改).

Migrations run as the owner (``onemap``); the application connects as ``onemap_app``: no superuser,
owner of nothing, SELECT and INSERT only on ``audit_log``. These tests connect exactly as the app,
try every way of rewriting the log, and check each is refused and the row is unchanged; then that
what the app does need (new monthly partitions, tables a later migration adds) still works.
"""

from __future__ import annotations

from datetime import UTC

import pandas as pd
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gis.bulk import ensure_month_partitions
from gis.settings import DatabaseSettings
from layers.accounts import audit
from scripts.migrate import libpq
from tests.conftest import owner_url

REWRITES = [
    ("UPDATE audit_log SET username = 'nobody'", "permission denied for table audit_log"),
    ("DELETE FROM audit_log", "permission denied for table audit_log"),
    ("TRUNCATE audit_log", "permission denied for table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update", "must be owner of table audit_log"),
    ("ALTER TABLE audit_log DISABLE TRIGGER ALL", "must be owner of table audit_log"),
    ("ALTER TABLE audit_log OWNER TO onemap_app", "must be owner of table audit_log"),
    ("DROP TABLE audit_log", "must be owner of table audit_log"),
    ("DROP TRIGGER audit_log_no_update ON audit_log", "must be owner of relation audit_log"),
    ("CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql "
     "AS $$ BEGIN RETURN NEW; END $$", "permission denied for schema public"),
    ("SET session_replication_role = replica", "permission denied to set parameter"),
    ("CREATE TABLE audit_copy (id int)", "permission denied for schema public"),
    ("ALTER ROLE onemap_app SUPERUSER", "must be superuser"),
]


@pytest.fixture
def app_engine(scratch_url):
    engine = create_engine(scratch_url)
    yield engine
    engine.dispose()


def test_the_app_role_cannot_rewrite_the_audit_log(app_engine, scratch_url):
    with Session(app_engine) as session:
        user, superuser, createrole = session.execute(text(
            "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")).one()
        assert (user, superuser, createrole) == ("onemap_app", False, False)
        owned = session.scalar(text("SELECT count(*) FROM pg_class WHERE relowner = "
                                    "(SELECT oid FROM pg_roles WHERE rolname = current_user)"))
        assert owned == 0
        assert audit.rewrite_risks(session) == []
        audit.write(session, [{"username": "wang", "method": "POST", "path": "/tickets/1/close", "status": 200,
                               "ip": "10.0.0.1", "detail": {"move": "close"}}])
        session.commit()
        for sql, refusal in REWRITES:
            with pytest.raises(DBAPIError, match=refusal):
                session.execute(text(sql))
            session.rollback()
        session.execute(text("GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO onemap_app"))  # a warning, nothing granted
        assert not session.scalar(text("SELECT has_table_privilege('audit_log', 'UPDATE') OR "
                                       "has_table_privilege('audit_log', 'DELETE') OR "
                                       "has_table_privilege('audit_log', 'TRUNCATE')"))
        session.rollback()
        assert session.execute(text("SELECT username, path FROM audit_log")).all() == [("wang", "/tickets/1/close")]
    with psycopg.connect(libpq(owner_url(scratch_url))) as conn:  # the owner meets the trigger (belt and braces)
        for sql in ("UPDATE audit_log SET username = 'nobody'", "DELETE FROM audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql)
            conn.rollback()


def test_the_app_role_still_does_what_the_app_does(app_engine, scratch_url):
    """Monthly partitions come from the owner's function; temp tables, COPY, NOTIFY, advisory locks
    and the other tables work as before; a table a later migration adds is granted by default."""
    month = pd.Series([pd.Timestamp("2031-07-15 12:00", tz=UTC), pd.Timestamp("2031-08-01 00:00", tz=UTC)])
    with Session(app_engine) as session:
        assert ensure_month_partitions(session, "sensor_readings", month) == [
            "sensor_readings_p203107", "sensor_readings_p203108"]
        assert ensure_month_partitions(session, "worker_positions", month[:1]) == ["worker_positions_p203107"]
        assert ensure_month_partitions(session, "sensor_readings", month) == []  # made once
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="not a partitioned table"):
            with session.begin_nested():
                ensure_month_partitions(session, "audit_log", month)
        raw = session.connection().connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE stage (v int)")
            with cur.copy("COPY stage FROM STDIN") as copy:
                copy.write_row((1,))
            cur.execute("SELECT pg_advisory_xact_lock(42), pg_notify('onemap_test', 'x')")
            cur.execute("SELECT count(*) FROM stage")
            assert cur.fetchone() == (1,)
        session.commit()
        owners = dict(session.execute(text(
            "SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname LIKE '%_p2031%' AND relkind = 'r'")).all())
        assert owners == {"sensor_readings_p203107": "onemap", "sensor_readings_p203108": "onemap",
                          "worker_positions_p203107": "onemap"}
        assert session.scalar(text("SELECT has_table_privilege('sensor_readings_p203107', 'INSERT')"))
    with psycopg.connect(libpq(owner_url(scratch_url))) as conn:  # what a later migration would do
        conn.execute("CREATE TABLE later_table (id bigserial PRIMARY KEY, note text)")
        conn.commit()
    with Session(app_engine) as session:
        session.execute(text("INSERT INTO later_table (note) VALUES ('新表')"))
        assert session.scalar(text("SELECT note FROM later_table")) == "新表"
        session.execute(text("DELETE FROM later_table"))
        session.commit()
        with pytest.raises(DBAPIError, match="permission denied"):
            session.execute(text("UPDATE alembic_version SET version_num = 'x'"))


def test_two_urls_or_one_with_a_warning(scratch_url, monkeypatch):
    """ONEMAP_DATABASE_URL (the app) + ONEMAP_OWNER_DATABASE_URL (migrations); one URL still works
    but says the log is not tamper-proof, and the owner role's risks are named."""
    from typer.testing import CliRunner

    from gis.db import forget_engines
    from gis.settings import database_settings
    from scripts.cli import app

    owner = owner_url(scratch_url)
    two = DatabaseSettings(database_url=scratch_url, owner_database_url=owner)
    assert (two.url(), two.owner_url(), two.app_role(), two.single_role) == (scratch_url, owner, "onemap_app", False)
    one = DatabaseSettings(database_url=owner)
    assert (one.owner_url(), one.app_role(), one.single_role) == (owner, None, True)

    runner = CliRunner()
    try:
        monkeypatch.setenv("ONEMAP_DATABASE_URL", scratch_url)
        monkeypatch.setenv("ONEMAP_OWNER_DATABASE_URL", owner)
        database_settings.cache_clear()
        both = runner.invoke(app, ["db", "migrate"])
        assert both.exit_code == 0, both.output
        assert "the application connects as onemap_app" in both.output and "warning" not in both.output

        monkeypatch.setenv("ONEMAP_DATABASE_URL", owner)
        monkeypatch.delenv("ONEMAP_OWNER_DATABASE_URL")
        database_settings.cache_clear()
        single = runner.invoke(app, ["db", "migrate"])
        assert single.exit_code == 0, single.output
        assert "only ONEMAP_DATABASE_URL is set" in single.output and "could rewrite the audit log" in single.output

        monkeypatch.setenv("ONEMAP_DATABASE_URL", scratch_url.replace("onemap_app@", "nobody_app@"))
        monkeypatch.setenv("ONEMAP_OWNER_DATABASE_URL", owner)
        database_settings.cache_clear()
        missing = runner.invoke(app, ["db", "migrate"])
        assert missing.exit_code == 1 and "'nobody_app' does not exist" in missing.output
    finally:
        database_settings.cache_clear()
        forget_engines()
    engine = create_engine(owner)
    with Session(engine) as session:
        risks = audit.rewrite_risks(session)
    engine.dispose()
    assert any("is a superuser" in r for r in risks) and any("owns the audit log" in r for r in risks)

