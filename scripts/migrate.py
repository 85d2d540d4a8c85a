"""Run Alembic migrations programmatically (used by `onemap db up`, `onemap db migrate` and tests).

Each layer owns a branch of migrations rooted at 0001 (the registry), so layers can evolve their
tables independently; "heads" applies every branch. :func:`upgrade` answers which revisions it
applied, so the command line says what it did instead of "up to date" after creating every table.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

HERE = Path(__file__).resolve().parent


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


def upgrade(url: str, revision: str = "heads") -> list[str]:
    """Apply migrations up to ``revision``; the revisions applied now, by id ([] if none)."""
    before = applied_revisions(url)
    command.upgrade(alembic_config(url), revision)
    return sorted(applied_revisions(url) - before)


def describe(applied: list[str]) -> str:
    """The line `onemap db up/migrate` prints."""
    if not applied:
        return "schema already up to date (no migration to apply)"
    return f"applied {len(applied)} migration{'s' if len(applied) > 1 else ''}: {', '.join(applied)}; schema up to date"
