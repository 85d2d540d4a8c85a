"""schemathesis over the app's own OpenAPI schema, in process: no input may make the server answer 5xx.

Runs against the demo city (demo mode, so every route is reachable), with the hardening middleware
installed and a per-request commit/rollback like production (a refused statement must not poison the
next request). A few examples per operation keep the whole run near a minute; every run draws new
inputs, so CI explores more over time. ``/live`` is a never-ending event stream and is left out.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from layers.accounts.settings import AuthSettings
from tests.api.fuzzing import fuzz_app
from tests.api.state import use_session

EXAMPLES = 6


APP, BOUND, schema = fuzz_app(AuthSettings(auth=False))


@pytest.fixture(autouse=True)
def bound(demo_session):
    BOUND["session"] = demo_session
    use_session(APP, demo_session)
    yield
    BOUND.clear()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
