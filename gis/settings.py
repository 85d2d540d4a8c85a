"""Settings, one class per concern, one env prefix (ONEMAP_), cached getters."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where PostGIS is. Empty ``database_url`` means the project-local cluster in ``data_dir``.

    Two roles: the application connects as ``database_url`` (ONEMAP_DATABASE_URL), a role with table
    privileges only; migrations connect as ``owner_database_url`` (ONEMAP_OWNER_DATABASE_URL), the
    role that owns the schema. With only ONEMAP_DATABASE_URL set, both are that one role, which then
    owns the audit log and could rewrite it (``single_role`` says so; the CLI warns).
    """

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    database_url: str = ""
    owner_database_url: str = ""
    data_dir: Path = Field(default=PROJECT_ROOT / ".onemap")
    pg_bin: Path | None = None  # folder with initdb/pg_ctl; found automatically when unset
    # Connections each server process keeps open. Few and kept: a connection made under a burst and
    # closed after it (SQLAlchemy's overflow) costs a new PostgreSQL backend each time (fork, catalog
    # caches, loading PostGIS: tens of ms of CPU), which at 200 requests/s on 2 cores became seconds
    # of stalls. Requests beyond the pool wait for a connection (pool_timeout) instead.
    pool_size: int = Field(default=12, ge=1)
    pool_overflow: int = Field(default=2, ge=0)

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "db.json"

    def url(self) -> str:
        """The application's SQLAlchemy URL: the explicit one, or the local cluster's app role."""
        if self.database_url:
            return self.database_url
        state = self._local_state()
        user = state.get("app_user", state["user"])  # a cluster from before the app role: its owner
        return f"postgresql+psycopg://{user}@127.0.0.1:{state['port']}/{state['database']}"

    def owner_url(self) -> str:
        """The migrations' URL: ONEMAP_OWNER_DATABASE_URL, the local cluster's owner, or (one URL
        given) ONEMAP_DATABASE_URL itself."""
        if self.owner_database_url:
            return self.owner_database_url
        if self.database_url:
            return self.database_url
        state = self._local_state()
        return f"postgresql+psycopg://{state['user']}@127.0.0.1:{state['port']}/{state['database']}"

    def app_role(self) -> str | None:
        """The role to grant the application's privileges to; None when the app connects as the owner."""
        app, owner = _username(self.url()), _username(self.owner_url())
        return app if app and app != owner else None

    @property
    def single_role(self) -> bool:
        """Only ONEMAP_DATABASE_URL is set: the application runs as the schema's owner."""
        return bool(self.database_url) and not self.owner_database_url

    def _local_state(self) -> dict:
        if not self.state_file.exists():
            raise RuntimeError(
                "no database: run `onemap db up` to start the project's PostGIS, "
                "or set ONEMAP_DATABASE_URL to an existing one"
            )
        return json.loads(self.state_file.read_text())


SINGLE_ROLE_WARNING = (
    "only ONEMAP_DATABASE_URL is set, so the application connects as the role that owns the schema: "
    "it could rewrite the audit log. Create a role with login only (CREATE ROLE onemap_app LOGIN PASSWORD ...), "
    "set ONEMAP_DATABASE_URL to it and ONEMAP_OWNER_DATABASE_URL to the owner, then run `onemap db migrate`"
)


def _username(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).username


class GridSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    snap_m: float = 50.0  # resolver: snap points this close to the nearest grid
    tolerance_m2: float = 1.0  # topology: overlaps and gaps below this are ignored
    max_upload_bytes: int = 200 * 1024 * 1024


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    tile_url: str = ""  # optional base map, e.g. a command hall's own tile server
    tile_crs: str = "wgs84"  # "gcj02" for Amap-style tiles: overlays are shifted to match
    max_batch: int = 100_000  # POST /resolve rows
    cards_every_s: int = Field(default=300, ge=0)  # the card refresh job's period; 0: not run by this server


class CitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEMAP_CITY_", extra="ignore")

    tz: str = "Asia/Shanghai"  # ONEMAP_CITY_TZ: local days, months, deadlines and exported times


def city_tz() -> ZoneInfo:
    """The city's time zone (``ONEMAP_CITY_TZ``); a name the tz database does not know is refused."""
    name = CitySettings().tz
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"ONEMAP_CITY_TZ={name!r} is not a time zone name such as Asia/Shanghai") from exc


CITY_TZ = city_tz()  # read once at start-up: every local day, month and deadline uses it


@lru_cache
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@lru_cache
def grid_settings() -> GridSettings:
    return GridSettings()


@lru_cache
def api_settings() -> ApiSettings:
    return ApiSettings()
