"""One PostGIS per test session, started with the same code as `onemap db up`.

Each test gets a Session inside a transaction that is rolled back at the end (SQLAlchemy 2's
"join an external transaction" recipe), so tests never see each other's writes. Two databases:
``onemap`` starts empty; ``demo`` holds the demo city, loaded once.

As in `onemap db up`, migrations run as the owner role and everything else (the demo loader, the
sessions, the apps, the CLI) connects as the non-owner app role (``onemap_app``): the URLs the
fixtures hand out are the app role's; ``owner_url`` gives a database's owner URL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from gis import pg
from scripts.migrate import upgrade

# Sign-in is on by default; tests of other concerns run as the city-wide demo scope, and the auth
# tests switch it on for their own app (tests/api/test_auth.py).
os.environ.setdefault("ONEMAP_AUTH", "off")

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def cluster() -> Iterator[pg.ClusterState]:
    """A throw-away cluster (or ONEMAP_TEST_DATABASE_URL's server, if set)."""
    folder = Path(tempfile.mkdtemp(prefix="onemap-test-"))
    os.chmod(folder, 0o755)
    state = pg.up(folder, options={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
    yield state
    pg.down(folder)
    shutil.rmtree(folder, ignore_errors=True)  # ~0.6 GB a run: left behind, they filled the disk


def _database(state: pg.ClusterState, name: str) -> str:
    with psycopg.connect(state.dsn("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(state.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    warnings = upgrade(state.url_for(name, owner=True), app_role=state.app_user).warnings
    assert not warnings, warnings
    return state.url_for(name)


def owner_url(url: str) -> str:
    """The same database as the owner role (migrations, downgrades)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(username=pg.DB_USER).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def db_url(cluster: pg.ClusterState) -> str:
    return _database(cluster, "onemap")


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def demo_url(cluster: pg.ClusterState) -> str:
    from scripts.demo_load import load_into

    url = _database(cluster, "demo")
    eng = create_engine(url)
    with Session(eng) as session:
        load_into(session, validate=False)
        session.commit()
    eng.dispose()
    return url


@pytest.fixture(scope="session")
def demo_engine(demo_url: str) -> Iterator[Engine]:
    eng = create_engine(demo_url)
    yield eng
    eng.dispose()


def _rolled_back(eng: Engine) -> Iterator[Session]:
    conn = eng.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        trans.rollback()
        conn.close()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """An empty registry; everything written is rolled back."""
    yield from _rolled_back(engine)


@pytest.fixture
def demo_session(demo_engine: Engine) -> Iterator[Session]:
    """The demo city; everything written is rolled back."""
    yield from _rolled_back(demo_engine)


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def scratch_url(cluster: pg.ClusterState, request) -> Iterator[str]:
    """A fresh, migrated, empty database for tests whose code commits (CLI runs); dropped afterwards."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:40]
    url = _database(cluster, name)
    yield url
    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def cli_env(scratch_url: str, monkeypatch) -> str:
    """Point the `onemap` CLI at the scratch database."""
    from gis.db import forget_engines
    from gis.settings import database_settings

    monkeypatch.setenv("ONEMAP_DATABASE_URL", scratch_url)
    database_settings.cache_clear()
    yield scratch_url
    database_settings.cache_clear()
    forget_engines()
