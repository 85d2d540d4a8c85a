"""Photos on a ticket (附件): checked by their bytes, stored with the ticket, each an ``attach`` event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gis.errors import InvalidInput, NotFound
from layers.accounts.scope import Scope
from layers.incidents.models import Attachment
from layers.incidents.store import add_event, aware, get_ticket
from layers.incidents.workflow import Role

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
ATTACHMENT_TYPES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG", "image/webp": b"RIFF"}


def add_attachment(
    session: Session,
    ticket_id: int,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    uploaded_by: str,
    role: str = Role.SYSTEM.value,
    at: datetime | None = None,
    scope: Scope | None = None,
) -> Attachment:
    """A photo (JPEG, PNG or WebP, at most 5 MB) whose bytes match its declared type."""
    at = aware(at)
    ticket = get_ticket(session, ticket_id, scope=scope)
    magic = ATTACHMENT_TYPES.get(content_type)
    if magic is None:
        raise InvalidInput(
            f"attachment type {content_type!r} not accepted; use {', '.join(ATTACHMENT_TYPES)}"
        )
    if not data:
        raise InvalidInput("attachment is empty")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(f"attachment is {len(data)} bytes; the limit is {MAX_ATTACHMENT_BYTES}")
    if not data.startswith(magic):
        raise InvalidInput(f"attachment {filename!r} is not a {content_type} file")
    row = Attachment(
        ticket_id=ticket.id,
        filename=filename[:200],
        content_type=content_type,
        size=len(data),
        data=data,
        uploaded_by=uploaded_by,
        created_at=at,
    )
    session.add(row)
    session.flush()
    add_event(
        session,
        ticket,
        at=at,
        actor=uploaded_by,
        role=role,
        move="attach",
        from_state=ticket.state,
        to_state=ticket.state,
        payload={"attachment_id": row.id, "filename": row.filename, "size": row.size},
    )
    session.flush()
    return row


def get_attachment(session: Session, ticket_id: int, attachment_id: int, *,
                   scope: Scope | None = None) -> Attachment:
    """One photo of one ticket (with ``scope``: of a ticket the caller sees)."""
    if scope is not None:
        get_ticket(session, ticket_id, scope=scope)
    row = session.get(Attachment, attachment_id)
    if row is None or row.ticket_id != ticket_id:
        raise NotFound(f"no attachment {attachment_id} on ticket {ticket_id}")
    return row
