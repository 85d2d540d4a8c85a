"""Passwords, lock-out and access tokens.

- Passwords are hashed with argon2id (argon2-cffi's defaults); a hash made with older parameters is
  upgraded on the next successful sign-in.
- Failed sign-ins are throttled per (account, address), per account and per address
  (``layers.accounts.throttle``), never by locking the account itself: a lock per account let anyone
  outside freeze the city administrator by failing five times.
- New passwords (``onemap users add/reset``) are refused when short, on the shipped list of common
  passwords (``data/common-passwords.txt``), or built from the username.
- Tokens are short-lived HS256 JWTs (PyJWT) signed with ``ONEMAP_SECRET_KEY``; they carry the user's
  ``token_version`` so a password reset or a disable revokes every token issued before it.
- An unknown username costs the same hash as a wrong password (no timing hint that it exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gis.db import SIDE
from gis.errors import Conflict, InvalidInput, NotFound, OneMapError
from layers.accounts.models import User
from layers.accounts.scope import Scope, validate_assignment
from layers.accounts.settings import AuthSettings, auth_settings

ALGORITHM = "HS256"
ISSUER = "onemap"
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("not a real password, used to spend the same time on unknown names")
WRONG = "incorrect username or password"
COMMON = Path(__file__).resolve().parent / "data" / "common-passwords.txt"


class AuthError(OneMapError):
    """Sign-in refused or token not valid; the API answers 401."""


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: datetime
    token_type: str = "bearer"


def now_utc() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- passwords

def hash_password(password: str, settings: AuthSettings | None = None) -> str:
    settings = settings or auth_settings()
    if len(password) < settings.min_password_chars:
        raise InvalidInput(f"password too short: at least {settings.min_password_chars} characters")
    return _HASHER.hash(password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased (one a line; ``#`` starts a comment)."""
    lines = COMMON.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def check_new_password(password: str, username: str = "", settings: AuthSettings | None = None) -> None:
    """Refuse a password an attacker would try first: short, common, or the username dressed up."""
    settings = settings or auth_settings()
    if len(password) < settings.min_password_chars:
        raise InvalidInput(f"password too short: at least {settings.min_password_chars} characters")
    folded = password.strip().lower()
    if folded in common_passwords():
        raise InvalidInput("password is on the list of common passwords: choose another (a few unrelated words work well)")
    name = username.strip().lower()
    if name and len(name) >= 3 and (name in folded or folded in name):
        raise InvalidInput("password must not contain the username")
    if len(set(folded)) <= 2:
        raise InvalidInput("password repeats one or two characters: choose another")


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# ----------------------------------------------------------------------------- users

def get_user(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def create_user(session: Session, *, username: str, password: str, role: str, area_code: str | None = None,
                department: str | None = None, grid_codes: list[str] | None = None, display_name: str = "",
                settings: AuthSettings | None = None) -> User:
    """A new account; its role must carry what scopes it (area level, department, grids)."""
    username = username.strip()
    if not username or len(username) > 64 or any(ch.isspace() for ch in username):
        raise InvalidInput("username must be 1-64 characters without spaces")
    grid_codes = list(grid_codes or [])
    validate_assignment(role, area_code, department, grid_codes)
    if session.scalar(select(func.count()).select_from(User).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, display_name=display_name or username, role=role, area_code=area_code or None,
                department=department or None, grid_codes=grid_codes,
                password_hash=_checked_hash(password, username, settings), disabled=False, failed_attempts=0,
                token_version=0)
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str, settings: AuthSettings | None = None) -> User:
    """Reset a password: clears the lock and revokes every token issued before."""
    user = get_user(session, username)
    user.password_hash = _checked_hash(password, username, settings)
    user.failed_attempts = 0
    user.locked_until = None
    user.token_version += 1
    user.updated_at = now_utc()
    return user


def _checked_hash(password: str, username: str, settings: AuthSettings | None) -> str:
    check_new_password(password, username, settings)
    return hash_password(password, settings)


def set_disabled(session: Session, username: str, disabled: bool = True) -> User:
    user = get_user(session, username)
    user.disabled = disabled
    user.token_version += 1
    user.updated_at = now_utc()
    return user


def scope_of(user: User) -> Scope:
    return Scope.for_role(user.role, user=user.username, area_code=user.area_code, department=user.department,
                          grid_codes=tuple(user.grid_codes or ()))


# ----------------------------------------------------------------------------- sign-in

def authenticate(session: Session, username: str, password: str, *, now: datetime | None = None,
                 settings: AuthSettings | None = None) -> User:
    """The user if the password is right and the account usable, else AuthError with one message for
    an unknown name and a wrong password alike. Nothing is written on failure (the throttle counts);
    the caller commits a success (a rehashed password)."""
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:  # the same argon2 work as a real check: no timing hint that the name is unknown
        verify_password(_DUMMY_HASH, password)
        raise AuthError(WRONG)
    if not verify_password(user.password_hash, password):
        raise AuthError(WRONG)
    if user.disabled:
        raise AuthError("account disabled")
    if user.failed_attempts or user.locked_until is not None:  # left by the old per-account lock
        user.failed_attempts, user.locked_until = 0, None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return user


# ----------------------------------------------------------------------------- tokens

def _key(settings: AuthSettings) -> str:
    settings.check()
    return settings.secret_key.get_secret_value()


def issue_token(user: User, *, now: datetime | None = None, settings: AuthSettings | None = None) -> Token:
    settings = settings or auth_settings()
    now = now or now_utc()
    expires = now + timedelta(minutes=settings.token_minutes)
    claims = {"sub": user.username, "role": user.role, "ver": user.token_version, "iss": ISSUER,
              "iat": int(now.timestamp()), "exp": int(expires.timestamp())}
    return Token(jwt.encode(claims, _key(settings), algorithm=ALGORITHM), expires)


def decode_token(token: str, *, settings: AuthSettings | None = None) -> dict[str, Any]:
    """The token's claims, or AuthError if it is forged, expired or malformed."""
    settings = settings or auth_settings()
    try:
        return jwt.decode(token, _key(settings), algorithms=[ALGORITHM], issuer=ISSUER,
                          options={"require": ["sub", "exp", "iat", "iss"]})
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired: sign in again") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("token not valid") from exc


ACCOUNT_COLUMNS = ("id", "username", "display_name", "role", "area_code", "department", "grid_codes", "disabled",
                   "token_version")
ACCOUNT_SQL = f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM users WHERE username = %(u)s"


def user_for_token(session: Session, token: str, *, settings: AuthSettings | None = None) -> User:
    """The live account behind a token: refused if disabled, removed or the token was revoked.

    Asked of the database on every request (a disabled account or a revoked token stops at once), on
    a side connection (``gis.db.SIDE``) unless the session is already in a transaction: the answer is
    a detached :class:`User` holding what scoping needs, not the session's object (routes that change
    an account load it themselves)."""
    claims = decode_token(token, settings=settings)
    row = SIDE.fetchone(session, ACCOUNT_SQL, {"u": claims["sub"]})
    user = None if row is None else User(**dict(zip(ACCOUNT_COLUMNS, row, strict=True)))
    if user is None or user.disabled:
        raise AuthError("account disabled or removed")
    if claims.get("ver") != user.token_version:
        raise AuthError("token revoked: sign in again")
    return user
