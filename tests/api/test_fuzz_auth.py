"""schemathesis with sign-in ON and a real signed-in city account: no input may make the server answer 5xx.

The demo-mode run (test_fuzz.py) reaches every route anonymously; this one goes through what a real
deployment runs: the token check on every request, the scoped data layer, the sign-in throttle and the
audit. The account is a real row (the rolled-back demo session) and the token is the one the server
issues for it. Bounded examples per operation keep the run near two minutes; ``/live`` is a stream
that only ends when the token is revoked, so it is left out here (test_harden covers it).

``ONEMAP_FUZZ_ALL_CHECKS=1`` runs every schemathesis check instead (status codes and response bodies
the OpenAPI documents, content types, headers...): a conformance report, one failure per operation
with a finding, for measuring how closely the schema describes the server.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import ignored_auth, not_a_server_error

from layers.accounts.models import User
from layers.accounts.security import issue_token
from tests.api.fuzzing import fuzz_app
from tests.api.state import use_session
from tests.api.test_auth import HASH, ON

EXAMPLES = 3
CHECKS = None if os.environ.get("ONEMAP_FUZZ_ALL_CHECKS") else [not_a_server_error, ignored_auth]
APP, BOUND, schema = fuzz_app(ON)


@pytest.fixture(autouse=True)
def bound(demo_session):
    BOUND["session"] = demo_session
    use_session(APP, demo_session)
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
                           checks=CHECKS)
