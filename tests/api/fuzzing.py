"""The app as the schemathesis runs drive it (test_fuzz.py in demo mode, test_fuzz_auth.py signed in):
built at import, since schemathesis reads the schema at collection, with the hardening middleware
installed and a per-request commit/rollback like production (a refused statement must not poison the
next request). Each test binds its own rolled-back demo session into ``bound["session"]``."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI

from api import middleware
from api.app import create_app
from api.deps import get_session
from layers.accounts.settings import AuthSettings


def fuzz_app(auth: AuthSettings) -> tuple[FastAPI, dict[str, Any], Any]:
    """The app, the dict its session is bound through, and its schema without ``/live`` (a stream that
    never ends by itself)."""
    bound: dict[str, Any] = {}

    def per_request():
        session = bound["session"]
        try:
            yield session
            session.commit()  # releases the test's savepoint; the outer transaction is rolled back
        except BaseException:
            session.rollback()
            raise

    app = create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/unused")
    middleware.install(app, auth=auth, http=middleware.HttpSettings())
    app.dependency_overrides[get_session] = per_request
    return app, bound, schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/live")
