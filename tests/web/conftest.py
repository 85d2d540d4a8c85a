"""Browser tests: a real uvicorn server over its own copy of the demo city, driven by headless Chromium.

Each server gets its own database (the demo city loaded afresh), so a test that saves an edit or
creates tickets never changes what other tests see in the shared ``demo`` database.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from gis import pg
from scripts.bench_map import CHROMIUM_ARGS, Server

__all__ = ["Server", "demo_copy"]


def demo_copy(cluster: pg.ClusterState, name: str) -> str:
    """A database ``name`` holding the demo city (dropped first if a previous run left it)."""
    from scripts.demo_load import load_into
    from tests.conftest import _database

    with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    url = _database(cluster, name)
    engine = create_engine(url)
    with Session(engine) as session:
        load_into(session, validate=False)
        session.commit()
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def web_url(cluster) -> str:
    """The demo city for the map, desk, export and live tests (they add tickets, never edit grids)."""
    return demo_copy(cluster, "web")


@pytest.fixture(scope="session")
def server(web_url) -> Iterator[Server]:
    srv = Server(web_url, ONEMAP_AUTH="off")  # signing in is the accounts layer's test; here: the pages
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A 1920×1080 page (a command hall's screen); JavaScript errors fail the test.

    The tests' own probes (``wait_for_function``) are evaluated strings, which the pages' CSP rightly
    forbids, so this context bypasses CSP; ``test_pages_keep_their_csp`` checks the pages under it."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, accept_downloads=True,
                                  bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
