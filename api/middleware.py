"""What every request passes through: body limit, security headers, CORS, audit.

``install(app)`` is called once by ``create_app``. It refuses to build the app with auth on and no
secret key (``AuthSettings.check``). The middleware is plain ASGI (no BaseHTTPMiddleware), so
streamed responses stay streamed:

- **Body limit**: one limit, ``ONEMAP_MAX_BODY_BYTES``, for every request whatever its content type
  (a client that labelled a 41 MB body ``application/octet-stream`` once got the larger upload limit
  and 1.4 GB of server memory). A declared ``Content-Length`` over it is refused at once with 413 and
  the reason; a chunked body is counted as it is read and refused the same way when it passes it.
- **Security headers** on every response (nosniff, no framing, referrer policy); HTML pages also get a
  Content-Security-Policy allowing only 'self' plus the configured tile server. The pages' few inline
  scripts are allowed by their SHA-256 hashes, computed here from the page itself, so nothing inline
  that was not in the template can run. With auth off the pages carry the demo banner.
- **CORS** is closed unless ``ONEMAP_CORS_ORIGINS`` lists origins (comma-separated).
- **Audit**: every write (POST/PUT/PATCH/DELETE) and every GET under /export and /ogc is queued for
  the audit log after the response has been sent; the writer thread stores it in its own
  transaction (``layers.accounts.audit.AuditWriter``), so the log never slows or fails a request.
  The address recorded is the socket peer unless it is a trusted proxy (``api/client_ip.py``). A
  ticket move records the move and the workflow role it was made as; routes add their own facts in
  ``request.state.audit`` (a grid edit: its edit id and the codes it opened and closed).
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jwt
from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from api.auth import COOKIE, DEMO_BANNER
from api.client_ip import client_ip
from layers.accounts import audit
from layers.accounts.settings import AuthSettings, auth_settings
from layers.incidents.workflow import MOVES, Role

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDITED_READS = ("/export", "/ogc")
DOCS = ("/docs", "/redoc")  # FastAPI's own docs pages load Swagger/ReDoc from their CDN: no page CSP there
INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.S | re.I)
BODY_TAG = re.compile(rb"<body[^>]*>", re.I)
MAX_HTML = 2 * 1024 * 1024


class HttpSettings(BaseSettings):
    """HTTP hardening (env prefix ONEMAP_)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    cors_origins: str = ""  # e.g. "https://hall.example.gov.cn,https://ops.example.gov.cn"; empty: closed
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    tile_url: str = ""

    @property
    def origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]


@lru_cache
def http_settings() -> HttpSettings:
    return HttpSettings()


# ----------------------------------------------------------------------------- install

def install(app: FastAPI, *, auth: AuthSettings | None = None, http: HttpSettings | None = None) -> None:
    """Check the settings and wrap the app; idempotent.

    ``create_app`` installs with the environment's settings; a later call with explicit settings
    (tests, an embedding server) replaces that layer before the app starts instead of being ignored,
    so auth given here is the auth the routes see."""
    if getattr(app.state, "hardened", False):
        if auth is None and http is None:
            return
        app.user_middleware = [m for m in app.user_middleware if m.cls not in (Guard, CORSMiddleware)]
    auth = auth or auth_settings()
    auth.check()
    http = http or http_settings()
    app.state.auth_settings = auth
    app.state.audit = writer_for(app.state.sessions)
    tile_url = http.tile_url or getattr(getattr(app.state, "settings", None), "tile_url", "")
    app.add_middleware(Guard, auth=auth, http=http, csp=content_security_policy(tile_url))
    if http.origins:
        app.add_middleware(CORSMiddleware, allow_origins=http.origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.state.hardened = True


_WRITERS: dict[int, audit.AuditWriter] = {}
_WRITERS_LOCK = threading.Lock()


def writer_for(sessions: Callable[[], Session]) -> audit.AuditWriter:
    """One audit writer (one thread) per engine, shared by every app built on it."""
    bind = getattr(sessions, "kw", {}).get("bind")
    key = id(bind) if bind is not None else id(sessions)
    with _WRITERS_LOCK:
        if key not in _WRITERS:
            if not _WRITERS:
                atexit.register(_close_writers)
            _WRITERS[key] = audit.AuditWriter(sessions)
        return _WRITERS[key]


def _close_writers() -> None:
    """At interpreter exit: a last chance to store queued audit entries, then quiet."""
    for writer in list(_WRITERS.values()):
        writer.close(timeout=2.0)


class SessionAudit:
    """An audit sink that writes into one given session at once (tests: the rolled-back session)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def submit(self, entry: dict[str, Any]) -> None:
        try:
            with self.session.begin_nested():
                audit.write(self.session, [entry])
        except Exception:  # noqa: BLE001 - same promise as the real writer: never fail the request
            pass

    def flush(self, timeout: float = 0) -> bool:
        return True


def content_security_policy(tile_url: str = "") -> str:
    """'self' plus the tile server's origin for images and fetches; nothing else."""
    tiles = _origin(tile_url)
    extra = f" {tiles}" if tiles else ""
    return "; ".join([
        "default-src 'self'",
        f"img-src 'self' data: blob:{extra}",
        f"connect-src 'self'{extra}",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",  # Leaflet and the legend set style attributes; not scripts
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _origin(url: str) -> str:
    """The origin of a tile URL template; ``{s}`` subdomains become a wildcard."""
    if not url:
        return ""
    parts = urlsplit(url.replace("{s}.", "sub.", 1))
    if not parts.scheme or not parts.netloc:
        return ""
    host = parts.netloc.replace("sub.", "*.", 1) if "{s}." in url else parts.netloc
    return f"{parts.scheme}://{host}"


# ----------------------------------------------------------------------------- the middleware

class Guard:
    """Body limit, headers, audit — one pure-ASGI layer."""

    def __init__(self, app: Callable, *, auth: AuthSettings, http: HttpSettings, csp: str) -> None:
        self.app = app
        self.auth = auth
        self.limit = http.max_body_bytes
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope):
            await self._refuse(scope, send, 400, "InvalidInput", "the URL holds a NUL byte (%00); no field may")
            return
        limit = self._limit(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send, limit)
            return
        state = scope.setdefault("state", {})
        record = _Record(scope, time.perf_counter())
        try:
            await self.app(scope, self._counting(_keeping(receive, record), limit), self._sending(scope, send, record))
        except Exception:
            if record.audited:  # the error handler outside answers 500; the attempt is still recorded
                record.status = record.status or 500
                self._audit(scope, state, record)
            raise
        if record.audited and record.status is not None:
            self._audit(scope, state, record)

    # --- body limit

    def _limit(self, scope: Scope) -> int:
        """The same for every content type: the client's label must not choose the limit."""
        return self.limit

    def _counting(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, detail=_too_large_text(limit))
            return message
        return counted

    async def _too_large(self, scope: Scope, send: Send, limit: int) -> None:
        await self._refuse(scope, send, 413, "PayloadTooLarge", _too_large_text(limit))

    async def _refuse(self, scope: Scope, send: Send, status: int, error: str, detail: str) -> None:
        body = json.dumps({"error": error, "detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *self._headers(scope, html=False)]})
        await send({"type": "http.response.body", "body": body})
        if _should_audit(scope):
            self._audit(scope, scope.setdefault("state", {}), _Record(scope, time.perf_counter(), status=status))

    # --- headers and pages

    def _headers(self, scope: Scope, *, html: bool) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                   (b"referrer-policy", b"strict-origin-when-cross-origin")]
        if html and not scope["path"].startswith(DOCS):
            headers.append((b"content-security-policy", self.csp.encode()))
        elif not html:
            headers.append((b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"))
        return headers

    def _sending(self, scope: Scope, send: Send, record: _Record) -> Send:
        held: dict[str, Any] = {}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-frame-options"]
                kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                html = kind.startswith(b"text/html")
                own = [k for k, _ in headers if k.lower() == b"content-security-policy"]
                added = self._headers(scope, html=html)
                if own and not html:  # a route's own policy (the phone's service worker) is kept, not narrowed
                    added = [(k, v) for k, v in added if k != b"content-security-policy"]
                message = {**message, "headers": headers + added}
                if html and not scope["path"].startswith(DOCS):
                    held["start"], held["body"] = message, b""
                    return
                await send(message)
            elif message["type"] == "http.response.body":
                if record.audited and not record.body_seen:
                    record.first_body = message.get("body", b"")[:65536]
                    record.body_seen = True
                if "start" in held:
                    held["body"] += message.get("body", b"")
                    if message.get("more_body") and len(held["body"]) < MAX_HTML:
                        return
                    await self._send_page(held, message.get("more_body", False), send)
                    held.pop("start")
                    return
                await send(message)
            else:
                await send(message)
        return sending

    async def _send_page(self, held: dict[str, Any], more: bool, send: Send) -> None:
        start, body = held["start"], held["body"]
        if not more:
            body = self._banner(body)
        hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m).digest()).decode()}'"
                          for m in INLINE_SCRIPT.findall(body))
        csp = self.csp.replace("default-src 'self'", f"default-src 'self'; script-src 'self' {hashes}".rstrip())
        headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-security-policy")]
        headers.append((b"content-security-policy", csp.encode()))
        if not more:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": more})

    def _banner(self, body: bytes) -> bytes:
        if self.auth.enabled:
            return body
        banner = (f'<div id="demo-banner" role="status" style="position:fixed;left:50%;bottom:8px;z-index:10000;'
                  f'transform:translateX(-50%);background:#b45309;color:#fff;padding:2px 12px;border-radius:4px;'
                  f'font-size:13px;pointer-events:none">{DEMO_BANNER}</div>').encode()
        return BODY_TAG.sub(lambda m: m.group(0) + banner, body, count=1)

    # --- audit

    def _audit(self, scope: Scope, state: dict[str, Any], record: _Record) -> None:
        app = scope.get("app")
        sink = getattr(getattr(app, "state", None), "audit", None)
        if sink is None:
            return
        sink.submit(_entry(scope, state, record, self.auth))


class _Record:
    """What the middleware learns about one request while passing it through."""

    def __init__(self, scope: Scope, started: float, status: int | None = None) -> None:
        self.started = started
        self.status = status
        self.audited = _should_audit(scope)
        self.first_body = b""
        self.body_seen = False
        self.keep_request = _is_move(scope)
        self.request_body = b""


MOVE_PATH = re.compile(r"^/tickets/\d+/([a-z_]+)$")
KEPT_REQUEST = 16384  # a move's body is a few hundred bytes; enough to read its role
WORKFLOW_ROLES = frozenset(Role) - {Role.SYSTEM}


def _is_move(scope: Scope) -> bool:
    """``POST /tickets/{id}/{move}`` for one of the workflow's moves (not attachments, not place)."""
    found = MOVE_PATH.match(scope["path"]) if scope["method"] == "POST" else None
    return found is not None and found.group(1) in MOVES


def _keeping(receive: Receive, record: _Record) -> Receive:
    """Keep the start of a ticket move's request body for its audit entry (which role it asked for)."""
    if not record.keep_request:
        return receive

    async def kept() -> Message:
        message = await receive()
        if message["type"] == "http.request" and len(record.request_body) < KEPT_REQUEST:
            record.request_body += message.get("body", b"")[:KEPT_REQUEST - len(record.request_body)]
        return message
    return kept


def _move_detail(scope: Scope, account: str | None, record: _Record, auth: AuthSettings) -> dict[str, Any]:
    """A ticket move: the move and the workflow role it was made as (contract 1: the account's role when
    signed in, where a body ``role`` must equal it; the body's role, default district, in the demo).
    When the body asked for another role than the account's, both are recorded."""
    move = scope["path"].rsplit("/", 1)[-1]
    try:
        body = json.loads(record.request_body) if record.request_body[:1] == b"{" else {}
    except ValueError:
        body = {}
    asked = body.get("role") if isinstance(body, dict) and isinstance(body.get("role"), str) else None
    derived = account if auth.enabled and account in WORKFLOW_ROLES else None
    detail: dict[str, Any] = {"move": move, "workflow_role": asked or derived or (None if auth.enabled else "district")}
    if asked and auth.enabled and asked != derived:
        detail["account_workflow_role"] = derived
    return detail


def _should_audit(scope: Scope) -> bool:
    method = scope["method"]
    return method in WRITES or (method == "GET" and scope["path"].startswith(AUDITED_READS))


def _has_nul(scope: Scope) -> bool:
    """PostgreSQL text cannot hold NUL: refuse it at the door instead of failing deep inside."""
    query = scope.get("query_string", b"").lower()
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _too_large_text(limit: int) -> str:
    return f"request body over the limit of {limit:,} bytes; split it or upload a smaller file"


def _token_user(scope: Scope, auth: AuthSettings) -> tuple[str | None, str | None]:
    """Who a token names, for routes that did not resolve the caller themselves (signature checked)."""
    raw = _header(scope, b"authorization") or ""
    token = raw[7:] if raw.lower().startswith("bearer ") else _cookie(scope, COOKIE)
    if not token or not auth.enabled:
        return None, None
    try:
        claims = jwt.decode(token, auth.secret_key.get_secret_value(), algorithms=["HS256"])
    except jwt.PyJWTError:
        return None, None
    return str(claims.get("sub")), claims.get("role")


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie") or ""
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _object(scope: Scope, state: dict[str, Any], record: _Record) -> str | None:
    given = (state.get("audit") or {}).get("object")
    if given:
        return str(given)
    params = scope.get("path_params") or {}
    if params:
        return " ".join(f"{k}={v}" for k, v in params.items())
    try:
        body = json.loads(record.first_body) if record.first_body[:1] == b"{" else None
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("id") is not None:
        return f"id={body['id']}"
    return None


def _entry(scope: Scope, state: dict[str, Any], record: _Record, auth: AuthSettings) -> dict[str, Any]:
    user, role = state.get("user"), state.get("role")
    if "user" not in state:  # a route that did not resolve the caller: the token's name, if it is valid
        user, role = _token_user(scope, auth)
    endpoint = scope.get("endpoint")
    detail: dict[str, Any] = {"ms": round((time.perf_counter() - record.started) * 1000, 1)}
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        detail["query"] = dict(parse_qsl(query, keep_blank_values=True))
    for name in (b"content-length", b"user-agent", b"x-forwarded-for"):
        value = _header(scope, name)
        if value:
            detail[name.decode()] = value[:200]
    if record.keep_request:
        detail.update(_move_detail(scope, role, record, auth))
    detail.update({k: v for k, v in (state.get("audit") or {}).items() if k != "object"})
    return {"at": datetime.now(UTC), "username": user, "role": role, "method": scope["method"],
            "path": scope["path"], "status": record.status, "ip": client_ip(scope),
            "action": getattr(endpoint, "__name__", None), "object": _object(scope, state, record),
            "detail": detail}
