"""Public reporting (随手拍): a citizen reports without an account and follows the report by a code.

Abuse resistance without a captcha, each check cheap and explained in its refusal:
- a honeypot field (``website``) people never see and bots fill in;
- a minimum fill time: the form carries a signed time stamp (``form_token``); a form sent back faster
  than ``min_fill_s`` or older than ``max_form_age_s`` is refused, and a forged stamp fails the HMAC;
- size limits: description, name, photo (the ticket layer's 5 MB and image checks);
- rate limits per IP address (per hour and per day) and for the whole city (per minute), counted on
  the stored reports, so every server process agrees;
- duplicate suppression: the same text from the same address within ``duplicate_minutes`` answers the
  first report's code instead of opening another ticket.
IP addresses are stored only as keyed hashes. The follow-up page shows the report's own status
history (in Chinese) and nothing else: no other ticket, no phone, no handler's name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import geopandas as gpd
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.orm import Session

from gis import registry
from gis.errors import Conflict, InvalidInput, NotFound
from gis.errors import RateLimited as TooMany
from layers.field.phone import STATE_NAMES
from layers.incidents.attachments import add_attachment
from layers.incidents.categories import load_categories
from layers.incidents.intake import intake
from layers.incidents.moves import apply_move
from layers.incidents.store import get_ticket
from layers.incidents.workflow import State

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read out over the phone
CODE_LENGTH = 10
PUBLIC_ACTOR = "public"
MOVE_TEXT = {"receive": "已受理，等待分派", "dispatch": "已派往处理单位", "grab": "已由镇街接单",
             "sign": "处理单位已签收", "start": "正在处置", "complete": "已办结，等待审核",
             "review_pass": "审核通过，请您评价", "review_fail": "审核未通过，重新处置",
             "revisit": "已收到您的评价", "close": "已结案", "sign_off": "已销号结案",
             "return": "转交上级重新分派", "split": "已分派到村/社区", "join": "多部门联合处置",
             "reject": "未予立案", "extend": "处置期限已延长", "check": "已核实现场情况"}


class PublicSettings(BaseSettings):
    """Limits of the public page (ONEMAP_PUBLIC_*)."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_PUBLIC_", extra="ignore")

    per_ip_hour: int = 5
    per_ip_day: int = 20
    global_minute: int = 60
    min_fill_s: float = 5.0
    max_form_age_s: float = 2 * 3600.0
    duplicate_minutes: int = 30
    max_description: int = 1000


_PROCESS_KEY = secrets.token_bytes(32)


def _key() -> bytes:
    """The HMAC key: the sign-in secret when set (shared by every process), else this process's own."""
    secret = os.environ.get("ONEMAP_SECRET_KEY")
    return hashlib.sha256(b"public-report:" + secret.encode()).digest() if secret else _PROCESS_KEY


def _sign(message: str) -> str:
    return hmac.new(_key(), message.encode(), hashlib.sha256).hexdigest()[:32]


def form_token(now: float | None = None) -> str:
    """A signed time stamp the page carries; see ``check_form``."""
    stamp = f"{(now if now is not None else time.time()):.3f}"
    return f"{stamp}.{_sign(stamp)}"


def ip_hash(ip: str) -> str:
    return _sign(f"ip:{ip}")


def check_form(token: str, honeypot: str, settings: PublicSettings, now: float | None = None) -> None:
    if honeypot.strip():
        raise InvalidInput("this form was filled in by a program (leave the hidden field empty)")
    stamp, _, signature = (token or "").rpartition(".")
    if not signature or not hmac.compare_digest(signature, _sign(stamp)):
        raise InvalidInput("the form is not one this site gave out: reload the page and try again")
    age = (now if now is not None else time.time()) - float(stamp)
    if age < settings.min_fill_s:
        raise InvalidInput(f"sent {age:.1f} s after the page opened: too fast for a person, wait a moment")
    if age > settings.max_form_age_s:
        raise InvalidInput("the form is too old: reload the page and send it again")


def _rate_limits(session: Session, ip: str, settings: PublicSettings, now: datetime) -> None:
    row = session.execute(text(
        "SELECT count(*) FILTER (WHERE ip_hash = :ip AND created_at > :hour), "
        "count(*) FILTER (WHERE ip_hash = :ip AND created_at > :day), "
        "count(*) FILTER (WHERE created_at > :minute) FROM public_reports WHERE created_at > :day"),
        {"ip": ip, "hour": now - timedelta(hours=1), "day": now - timedelta(days=1),
         "minute": now - timedelta(minutes=1)}).one()
    if row[0] >= settings.per_ip_hour:
        raise TooMany(f"at most {settings.per_ip_hour} reports an hour from one address", detail={"retry_after": 3600})
    if row[1] >= settings.per_ip_day:
        raise TooMany(f"at most {settings.per_ip_day} reports a day from one address", detail={"retry_after": 86400})
    if row[2] >= settings.global_minute:
        raise TooMany("the reporting service is busy: try again in a minute", detail={"retry_after": 60})


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


@dataclass(frozen=True)
class Photo:
    filename: str
    content_type: str
    data: bytes


def submit(session: Session, *, ip: str, category: str, description: str, lon: float | None, lat: float | None,
           address: str | None = None, name: str | None = None, phone: str | None = None,
           photo: Photo | None = None, token: str = "", honeypot: str = "",
           settings: PublicSettings | None = None) -> dict[str, Any]:
    """Check, rate-limit, de-duplicate, then receive the report as an ``app`` ticket; answers the code."""
    settings = settings or PublicSettings()
    check_form(token, honeypot, settings)
    description = (description or "").strip()
    if not description:
        raise InvalidInput("describe the problem (问题描述)")
    if len(description) > settings.max_description:
        raise InvalidInput(f"the description is longer than {settings.max_description} characters")
    if lon is None or lat is None:
        if not (address or "").strip():
            raise InvalidInput("give the place: pick it on the map, use your location, or type an address")
    if phone and not phone.replace(" ", "").replace("-", "").lstrip("+").isdigit():
        raise InvalidInput("the phone number may hold digits only")
    now = datetime.now(UTC)
    who = ip_hash(ip)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"public:{who}"})
    content = hashlib.sha256(f"{category}|{description}".encode()).hexdigest()
    earlier = session.execute(text(
        "SELECT code FROM public_reports WHERE ip_hash = :ip AND content_hash = :h AND created_at > :since "
        "ORDER BY created_at LIMIT 1"),
        {"ip": who, "h": content, "since": now - timedelta(minutes=settings.duplicate_minutes)}).scalar()
    if earlier:
        return {"code": earlier, "duplicate": True}
    _rate_limits(session, who, settings, now)
    ticket, _ = intake(session, channel="app", category=category, description=description, lon=lon, lat=lat,
                         address=(address or "").strip() or None, reporter_name=(name or "").strip()[:50] or None,
                         reporter_phone=(phone or "").strip()[:30] or None, source_ref="随手拍",
                         actor=PUBLIC_ACTOR, at=now)
    if photo is not None and photo.data:
        add_attachment(session, ticket.id, filename=photo.filename, content_type=photo.content_type,
                         data=photo.data, uploaded_by=PUBLIC_ACTOR, at=now)
    code = _new_code()
    session.execute(text("INSERT INTO public_reports (code, ticket_id, ip_hash, content_hash, created_at) "
                         "VALUES (:c, :t, :ip, :h, :at)"),
                    {"c": code, "t": ticket.id, "ip": who, "h": content, "at": now})
    return {"code": code, "duplicate": False}


def _ticket_of(session: Session, code: str) -> int:
    code = (code or "").strip().upper()
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        raise NotFound("no report with this code")
    ticket_id = session.execute(text("SELECT ticket_id FROM public_reports WHERE code = :c"), {"c": code}).scalar()
    if ticket_id is None:
        raise NotFound("no report with this code")
    return int(ticket_id)


def _event_text(move: str, to_state: str) -> str:
    """The Chinese line of one move; an unsatisfied revisit says the report went back (二次办理)."""
    if move == "revisit" and to_state == State.HANDLING:
        return "您的评价：不满意，已退回处理单位重新办理"
    return MOVE_TEXT[move]


def follow(session: Session, code: str) -> dict[str, Any]:
    """What the citizen may see of their own report: category, place names, state and history."""
    ticket_id = _ticket_of(session, code)
    t = get_ticket(session, ticket_id)
    events = session.execute(text(
        "SELECT at, move, to_state, payload FROM ticket_events WHERE ticket_id = :t ORDER BY at, id"),
        {"t": ticket_id}).all()
    history = [{"at": e.at.isoformat(), "text": _event_text(e.move, e.to_state),
                "state_name": STATE_NAMES.get(e.to_state, e.to_state)}
               for e in events if e.move in MOVE_TEXT]
    found = registry.area_names(session, [c for c in (t.village_code, t.town_code) if c])
    names = (found.get(t.village_code or ""), found.get(t.town_code or ""))
    cats = load_categories()
    return {"code": code.strip().upper(), "category_name": cats[t.category].name if t.category in cats else "",
            "description": t.description, "village_name": names[0], "town_name": names[1],
            "state": t.state, "state_name": STATE_NAMES.get(t.state, t.state),
            "duplicate": t.duplicate_of is not None,
            "can_rate": t.state == State.REVIEWED, "satisfied": t.satisfied, "rework": t.rework_count or 0,
            "created_at": t.created_at.isoformat(), "history": history}


def rate(session: Session, code: str, satisfaction: int) -> dict[str, Any]:
    """回访 by the citizen: 1-5 (3 and up satisfied) on a reviewed ticket; unsatisfied (1-2) sends it back.

    Every review asks again: after a second handling is reviewed the citizen rates that one too (the
    workflow's revisit moves reviewed → handling, 二次办理, on a low score, and the service refuses to
    close a citizen's ticket from reviewed without a revisit)."""
    ticket_id = _ticket_of(session, code)
    t = get_ticket(session, ticket_id)
    if t.state != State.REVIEWED:
        why = "it has not been handled and reviewed yet" if t.state not in ("revisited", "closed") else \
            "it has been rated already"
        raise Conflict(f"this report cannot be rated now: {why}", detail={"state": t.state})
    if not isinstance(satisfaction, int) or isinstance(satisfaction, bool) or not 1 <= satisfaction <= 5:
        raise InvalidInput("satisfaction must be 1-5")
    apply_move(session, ticket_id, "revisit", actor=f"{PUBLIC_ACTOR}:{code.strip().upper()}", role="district",
                 note="市民在随手拍查询页评价", payload={"satisfaction": satisfaction, "by": "citizen"})
    return follow(session, code)


def town_outlines(session: Session, *, tolerance_deg: float = 0.0002) -> gpd.GeoDataFrame:
    """The public page's base map: the towns/streets (镇/街道) as simplified outlines with their names.

    Town names and boundaries are public; grids (their names, workers) and tickets are not, so nothing
    below the town level is drawn, and only ``name`` and the outline leave the server."""
    frame = registry.load_areas(session, level="town")[["name", "geometry"]].copy()
    frame["geometry"] = frame.geometry.simplify(tolerance_deg, preserve_topology=True)
    return frame
