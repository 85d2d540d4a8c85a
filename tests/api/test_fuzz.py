"""schemathesis over the app's own OpenAPI schema, in process: no input may make the server answer 5xx.

Runs against the demo city (demo mode, so every route is reachable), with the hardening middleware
installed and a per-request commit/rollback like production (a refused statement must not poison the
next request). A few examples per operation keep the whole run near a minute; every run draws new
inputs, so CI explores more over time. ``/live`` is a never-ending event stream and is left out.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from api import middleware
from api.app import create_app
from api.deps import get_session
from layers.accounts.settings import AuthSettings

EXAMPLES = 6


BOUND: dict[str, object] = {}


def _per_request():
    """Like production's session dependency: commit after each request, roll back on error."""
    session = BOUND["session"]
    try:
        yield session
        session.commit()  # releases the test's savepoint; the outer transaction is rolled back
    except BaseException:
        session.rollback()
        raise


# Built at import (schemathesis reads the schema at collection); each operation's test binds its own
# rolled-back demo session below.
APP = create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/unused")
middleware.install(APP, auth=AuthSettings(auth=False), http=middleware.HttpSettings())
APP.dependency_overrides[get_session] = _per_request
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/live")


@pytest.fixture(autouse=True)
def bound(demo_session):
    BOUND["session"] = demo_session
    APP.state.audit = middleware.SessionAudit(demo_session)
    yield
    BOUND.clear()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
