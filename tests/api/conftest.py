import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_session
from tests.api.state import use_session


def _client(session):
    app = create_app(database_url="postgresql+psycopg://unused@127.0.0.1:1/unused")

    def override():
        yield session
        session.flush()

    app.dependency_overrides[get_session] = override
    use_session(app, session)  # audit rows land in the rolled-back session
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(session):
    """The API over the empty test registry (writes rolled back after the test)."""
    return _client(session)


@pytest.fixture
def demo_client(demo_session):
    """The API over the demo city (writes rolled back after the test)."""
    return _client(demo_session)
