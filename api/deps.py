"""Request-scoped dependencies as Annotated aliases.

``get_session`` is an async generator on purpose: making a :class:`Session` touches no socket (it
checks a connection out only when the route first queries), so it is made on the event loop, and
only the commit or rollback of a session that actually began a transaction goes to the thread pool.
A route that never touches the database (``GET /resolve`` with a warm index) costs no pool checkout,
no BEGIN/COMMIT round trips and no thread hops for its session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    session: Session = request.app.state.sessions()
    try:
        yield session
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(_finish, session, False)
        else:
            session.close()
        raise
    if session.in_transaction():
        await run_in_threadpool(_finish, session, True)
    else:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
