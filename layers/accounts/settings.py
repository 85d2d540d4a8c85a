"""Sign-in settings (env prefix ONEMAP_): whether auth is on, the token key, lock-out rules.

Auth is on unless ``ONEMAP_AUTH=off`` is set explicitly (``onemap demo`` does, for the local demo):
a deployment that forgets the switch is closed, not open.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_CHARS = 32


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    auth: bool = True  # ONEMAP_AUTH=on|off
    secret_key: SecretStr = SecretStr("")  # HS256 key for access tokens; no default on purpose
    token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    lockout_failures: int = Field(default=5, ge=1)  # failed sign-ins in a row before the lock
    lockout_minutes: int = Field(default=15, ge=1)
    min_password_chars: int = Field(default=10, ge=8)

    @property
    def enabled(self) -> bool:
        return self.auth

    def check(self) -> None:
        """Refuse to run with auth on and no (or a short) secret key: there is no default key."""
        if not self.auth:
            return
        key = self.secret_key.get_secret_value()
        if len(key) < MIN_SECRET_CHARS:
            raise RuntimeError(
                "auth is on (ONEMAP_AUTH) but ONEMAP_SECRET_KEY is "
                + ("not set" if not key else f"shorter than {MIN_SECRET_CHARS} characters")
                + ": set it to a long random string (python -c 'import secrets; print(secrets.token_urlsafe(48))'), "
                "or run the local demo with ONEMAP_AUTH=off"
            )


@lru_cache
def auth_settings() -> AuthSettings:
    return AuthSettings()
