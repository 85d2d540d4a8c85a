"""Alembic environment: the URL comes from OneMap's settings (or the caller's config)."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import create_engine, pool

from gis.db import Base
from gis.settings import database_settings

# Every module that defines tables on Base.metadata (each layer owns its tables).
MODEL_MODULES = [
    "gis.models",
    "gis.geocode",
    "layers.incidents.models",
    "layers.sensors.models",
    "layers.workers.models",
    "layers.cameras.models",
    "layers.accounts.models",
    "layers.field.models",
    "layers.basedata.models",
    "layers.calls.models",
]
for _name in MODEL_MODULES:
    importlib.import_module(_name)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or database_settings().owner_url()
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
