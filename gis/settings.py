"""Settings, one class per concern, one env prefix (ONEMAP_), cached getters."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where PostGIS is. Empty ``database_url`` means the project-local cluster in ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="ONEMAP_", extra="ignore")

    database_url: str = ""
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
        """The SQLAlchemy URL: the explicit one, or the local cluster's from its state file."""
        if self.database_url:
            return self.database_url
        if not self.state_file.exists():
            raise RuntimeError(
                "no database: run `onemap db up` to start the project's PostGIS, "
                "or set ONEMAP_DATABASE_URL to an existing one"
            )
        state = json.loads(self.state_file.read_text())
        return f"postgresql+psycopg://{state['user']}@127.0.0.1:{state['port']}/{state['database']}"


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


@lru_cache
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@lru_cache
def grid_settings() -> GridSettings:
    return GridSettings()


@lru_cache
def api_settings() -> ApiSettings:
    return ApiSettings()
