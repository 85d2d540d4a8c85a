"""Run Alembic migrations programmatically (used by `onemap db up`, `onemap db migrate` and tests).

Each layer owns a branch of migrations rooted at 0001 (the registry), so layers can evolve their
tables independently; "heads" applies every branch. :func:`upgrade` answers which revisions it
applied, so the command line says what it did instead of "up to date" after creating every table.

Migrations run as the role that owns the schema. After them, :func:`grant_app_role` gives the
application's role exactly what the application needs and nothing it could use to rewrite history:
SELECT/INSERT/UPDATE/DELETE on the tables, only SELECT and INSERT on ``audit_log``, USAGE on the
sequences, EXECUTE on ``onemap_month_partition`` (new monthly partitions are made by the owner through
that SECURITY DEFINER function), no CREATE on the schema, and default privileges so tables a later
migration creates are granted too. The app role owns no table, so it cannot ALTER, TRUNCATE or
disable the triggers of one. Granting is idempotent and runs after every upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent

APPEND_ONLY_TABLES = ("audit_log",)  # the app may read and add rows, never change or remove them
READ_ONLY_TABLES = ("alembic_version", "spatial_ref_sys")
TABLE_WRITES = "SELECT, INSERT, UPDATE, DELETE"


class RoleError(RuntimeError):
    """The application's role is missing or too powerful; the message says what to do."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def applied_revisions(url: str) -> set[str]:
    """Every revision the database has, the current heads and all their ancestors."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    if not heads:
        return set()
    script = ScriptDirectory.from_config(alembic_config(url))
    return {rev.revision for rev in script.revision_map.iterate_revisions(heads, "base")}




def describe(applied: list[str]) -> str:
    """The line `onemap db up/migrate` prints."""
    if not applied:
        return "schema already up to date (no migration to apply)"
    return f"applied {len(applied)} migration{'s' if len(applied) > 1 else ''}: {', '.join(applied)}; schema up to date"


@dataclass(frozen=True)
class Upgraded:
    applied: list[str]  # the revisions applied now, by id ([] if none)
    warnings: list[str]  # about the app role (empty when it cannot rewrite the audit log)


def upgrade(url: str, revision: str = "heads", *, app_role: str | None = None) -> Upgraded:
    """Migrate as ``url`` (the schema's owner), then grant ``app_role`` its privileges, if one is given."""
    before = applied_revisions(url)
    command.upgrade(alembic_config(url), revision)
    applied = sorted(applied_revisions(url) - before)
    return Upgraded(applied, grant_app_role(url, app_role) if app_role else [])


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def grant_app_role(owner_url: str, app_role: str) -> list[str]:
    """Grant ``app_role`` the application's privileges in the owner's database (idempotent)."""
    app = sql.Identifier(app_role)
    with psycopg.connect(libpq(owner_url)) as conn:
        row = conn.execute("SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = %s",
                           (app_role,)).fetchone()
        if row is None:
            raise RoleError(f"the application's role {app_role!r} does not exist: create it as a login-only role "
                            f"(CREATE ROLE {app_role} LOGIN PASSWORD '...' NOSUPERUSER NOCREATEROLE NOCREATEDB) "
                            "and run `onemap db migrate` again")
        database = _value(conn, "SELECT current_database()")
        for statement in _grants(app, sql.Identifier(database)):
            conn.execute(statement)
        conn.commit()
        return _warnings(conn, app_role, row)


def _grants(app: sql.Identifier, database: sql.Identifier) -> list[sql.Composed]:
    tables = sql.SQL(", ").join(sql.Identifier(t) for t in APPEND_ONLY_TABLES)
    present = "SELECT 1 FROM pg_class WHERE relname = {} AND relnamespace = 'public'::regnamespace"
    statements = [
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, app),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(app),
        sql.SQL(f"GRANT {TABLE_WRITES} ON ALL TABLES IN SCHEMA public TO {{}}").format(app),
        sql.SQL("REVOKE ALL ON {} FROM {}").format(tables, app),
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(tables, app),
        sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(app),
        sql.SQL(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {TABLE_WRITES} ON TABLES TO {{}}").format(app),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {}").format(app),
        sql.SQL("GRANT EXECUTE ON FUNCTION onemap_month_partition(text, timestamptz) TO {}").format(app),
    ]
    for table in READ_ONLY_TABLES:  # present unless the extension lives elsewhere
        statements.append(sql.SQL("DO $$ BEGIN IF EXISTS (" + present + ") THEN "
                                  "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}; END IF; END $$")
                          .format(sql.Literal(table), sql.Identifier(table), app))
    return statements


def _value(conn: psycopg.Connection, query: str, params: tuple | None = None) -> Any:
    """The one value of a query that always answers one row (an aggregate, current_database())."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return row[0]


def _warnings(conn: psycopg.Connection, app_role: str, attributes: tuple) -> list[str]:
    warnings = [f"the application's role {app_role!r} has {name}: it could rewrite the audit log "
                f"(ALTER ROLE {app_role} NO{name.upper()})"
                for name, held in zip(("superuser", "createrole", "bypassrls"), attributes, strict=True) if held]
    owned = _value(
        conn, "SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c "
        "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') "
        "AND pg_has_role(%s, c.relowner, 'USAGE')", (app_role,))
    if owned:
        warnings.append(f"the application's role {app_role!r} owns (or is a member of the owner of) tables: "
                        f"{owned}; it could disable their triggers")
    return warnings
