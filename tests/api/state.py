"""Point a test app's background writers at the test's own (rolled-back) session."""

from sqlalchemy.orm import Session

from api import middleware
from layers.accounts.throttle import SignInThrottle, nested_in


def use_session(app, session: Session) -> None:
    """Audit rows and sign-in throttle counts land in ``session``, rolled back after the test."""
    app.state.audit = middleware.SessionAudit(session)
    app.state.sign_in_throttle = SignInThrottle(nested_in(session))
