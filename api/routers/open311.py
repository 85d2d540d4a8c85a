"""Open311 GeoReport v2 (JSON) over the native tickets, so existing Open311 clients can file and follow.

Mapping: ``service_code`` = the 4-digit category code; ``status`` open/closed from the workflow state
(closed = closed or signed off); ``lat``/``long`` WGS84; ``agency_responsible`` = the answerable
department; ``expected_datetime`` = the completion deadline (or the dispatch deadline before dispatch).
POST takes form-encoded fields as Open311 clients send them; such tickets arrive on the ``app``
channel. Errors answer the GeoReport shape ``[{"code": 400, "description": "..."}]``.
Not implemented: ``api_key`` checks, service definitions (every service has ``metadata: false``),
``media_url`` storage (photos go through the native attachments endpoint).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.auth import ScopeDep, WriteScope
from api.deps import SessionDep
from api.errors import STATUS
from api.schemas.errors import open311_responses
from gis.errors import InvalidInput, NotFound, OneMapError
from gis.settings import CITY_TZ
from layers.accounts.scope import Scope
from layers.incidents.categories import get_department, load_categories
from layers.incidents.intake import create_ticket
from layers.incidents.read import find_tickets, lonlat
from layers.incidents.store import get_ticket
from layers.incidents.workflow import TERMINAL

if TYPE_CHECKING:
    from layers.incidents.models import Ticket

router = APIRouter(prefix="/open311/v2", tags=["open311"], responses=open311_responses())


def _error(exc: OneMapError) -> JSONResponse:
    status = next(code for cls, code in STATUS if isinstance(exc, cls))
    return JSONResponse([{"code": status, "description": exc.message}], status_code=status)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(CITY_TZ).isoformat(timespec="seconds")


PUBLIC_FIELDS = frozenset({
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url"})


def _request(t: Ticket) -> dict[str, Any]:
    """One ticket as a GeoReport v2 service request: public fields only (never the reporter's name
    or phone, which GeoReport does not define and a public client must never see)."""
    return {k: v for k, v in _fields(t).items() if k in PUBLIC_FIELDS}  # an allow-list, not a deny-list


def _fields(t: Ticket) -> dict[str, Any]:
    lon, lat = lonlat(t)
    closed = t.state in {s.value for s in TERMINAL}
    notes = f"duplicate of {t.duplicate_of}" if t.duplicate_of else t.state
    return {
        "service_request_id": str(t.id),
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": load_categories()[t.category].name,
        "service_code": t.category,
        "description": t.description,
        "agency_responsible": get_department(t.department).name,
        "service_notice": None,
        "requested_datetime": _time(t.created_at),
        "updated_datetime": _time(t.updated_at),
        "expected_datetime": _time(t.complete_due or t.dispatch_due),
        "address": t.address,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": None,
    }


@router.get("/services.json")
@router.get("/services")
def services() -> list[dict[str, Any]]:
    """Every category as a service (service_code = 4-digit category code)."""
    return [
        {
            "service_code": c.code,
            "service_name": c.name,
            "description": c.acceptance_condition,
            "metadata": False,
            "type": "realtime",
            "keywords": c.major_name,
            "group": c.major_name,
        }
        for c in load_categories().values()
    ]


def _float(form: dict[str, str], key: str) -> float | None:
    value = (form.get(key) or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{key} must be a number, got {value!r}") from None


def _create(session: Any, form: dict[str, str], scope: Scope) -> list[dict[str, Any]]:
    """File one request; duplicates are looked for only among the tickets the caller sees."""
    code = (form.get("service_code") or "").strip()
    if not code:
        raise InvalidInput("service_code is required")
    lat, lon = _float(form, "lat"), _float(form, "long")
    name = " ".join(x for x in (form.get("last_name"), form.get("first_name")) if x) or None
    category = load_categories().get(code)
    description = (form.get("description") or "").strip() or (category.name if category else "")
    ticket = create_ticket(
        session,
        channel="app",
        category=code,
        description=description,
        lon=lon,
        lat=lat,
        address=form.get("address_string"),
        reporter_name=name,
        reporter_phone=form.get("phone"),
        source_ref=form.get("device_id") or form.get("account_id"),
        actor="open311",
        scope=scope,
    )
    notice = f"unplaced: {ticket.unplaced_reason}" if ticket.unplaced else ""
    return [
        {
            "service_request_id": str(ticket.id),
            "service_notice": notice,
            "account_id": form.get("account_id"),
        }
    ]


@router.post("/requests.json", status_code=201, response_model=None)
@router.post("/requests", status_code=201, response_model=None)
async def post_request(
    request: Request, session: SessionDep, scope: WriteScope
) -> list[dict[str, Any]] | JSONResponse:
    """File a request (form-encoded: service_code, lat, long, address_string, description, ...).
    The form is read here; resolving and storing run in the thread pool, off the event loop."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    try:
        return await run_in_threadpool(_create, session, form, scope)
    except OneMapError as exc:
        return _error(exc)


def _dt(value: str | None, key: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{key} must be an ISO 8601 datetime, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CITY_TZ)


MAX_ID = 2**63 - 1


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(
            f"service_request_id must be ids separated by commas: {text!r}"
        ) from None
    return [i for i in ids if 0 < i <= MAX_ID]  # no ticket has any other id


@router.get("/requests.json", response_model=None)
@router.get("/requests", response_model=None)
def get_requests(
    session: SessionDep,
    scope: ScopeDep,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]] | JSONResponse:
    """Requests newest first (at most 1,000), filtered as GeoReport v2 says."""
    try:
        if status not in (None, "", "open", "closed"):
            raise InvalidInput(f"status must be open or closed, got {status!r}")
        ids = _ids(service_request_id) if service_request_id else None
        rows = find_tickets(
            session,
            ids=ids,
            category=service_code,
            since=_dt(start_date, "start_date"),
            until=_dt(end_date, "end_date"),
            is_open=None if not status else status == "open",
            scope=scope,
        )
    except OneMapError as exc:
        return _error(exc)
    return [_request(t) for t in rows]


@router.get("/requests/{request_id}", response_model=None)
def get_request(request_id: str, session: SessionDep, scope: ScopeDep) -> list[dict[str, Any]] | JSONResponse:
    """One request (``/requests/123.json`` or ``/requests/123``), as a one-element list."""
    try:
        ident = request_id.removesuffix(".json")
        if not ident.isdigit() or int(ident) > MAX_ID:
            raise NotFound(f"no service request {request_id}")
        return [_request(get_ticket(session, int(ident), scope=scope))]
    except OneMapError as exc:
        return _error(exc)
