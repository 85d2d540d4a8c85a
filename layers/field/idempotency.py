"""Client-made keys for writes a phone may retry (Idempotency-Key): the second attempt answers the first.

``claim`` inserts the key with ``ON CONFLICT DO NOTHING``: the first caller gets None and goes on to
create; a retry gets the id the first one stored. A retry racing the first attempt waits on the key's
row until that transaction ends (PostgreSQL's unique check), then reads what it made.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from gis.errors import Conflict, InvalidInput

MAX_KEY = 100


def check_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1-{MAX_KEY} printable characters")
    return key


def claim(session: Session, *, owner: str, key: str, kind: str) -> int | None:
    """None when this call owns the key (go on and create), else the id made for it before."""
    key = check_key(key)
    won = session.execute(text(
        "INSERT INTO idempotency_keys (owner, key, kind) VALUES (:o, :k, :kind) "
        "ON CONFLICT DO NOTHING RETURNING 1"), {"o": owner, "k": key, "kind": kind}).first()
    if won:
        return None
    row = session.execute(text("SELECT kind, ref_id FROM idempotency_keys WHERE owner = :o AND key = :k"),
                          {"o": owner, "k": key}).one()
    if row.kind != kind or row.ref_id is None:
        raise Conflict(f"Idempotency-Key {key!r} was used for another kind of request ({row.kind})")
    return int(row.ref_id)


def remember(session: Session, *, owner: str, key: str, ref_id: int) -> None:
    session.execute(text("UPDATE idempotency_keys SET ref_id = :r WHERE owner = :o AND key = :k"),
                    {"r": ref_id, "o": owner, "k": check_key(key)})
