"""schemathesis with sign-in ON and a real signed-in city account: no input may make the server answer 5xx.

The demo-mode run (test_fuzz.py) reaches every route anonymously; this one goes through what a real
deployment runs: the token check on every request, the scoped data layer, the sign-in throttle and the
audit. The account is a real row (the rolled-back demo session) and the token is the one the server
issues for it. Bounded examples per operation keep the run near two minutes; ``/live`` is a stream
that only ends when the token is revoked, so it is left out here (test_harden covers it).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import ignored_auth, not_a_server_error

from api import middleware
from api.app import create_app
from api.deps import get_session
from layers.accounts.models import User
from layers.accounts.security import issue_token
from tests.api.test_auth import HASH, ON

EXAMPLES = 3
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


APP = create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/unused")
middleware.install(APP, auth=ON, http=middleware.HttpSettings())
APP.dependency_overrides[get_session] = _per_request
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/live")


@pytest.fixture(autouse=True)
def bound(demo_session):
    BOUND["session"] = demo_session
    APP.state.audit = middleware.SessionAudit(demo_session)
    user = User(username="fuzz_admin", display_name="fuzz", password_hash=HASH, role="city", token_version=0)
    demo_session.add(user)
    demo_session.flush()
    BOUND["token"] = issue_token(user, settings=ON).access_token
    yield
    BOUND.clear()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_signed_in_no_input_makes_a_server_error(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {BOUND['token']}"},
                           checks=[not_a_server_error, ignored_auth])
