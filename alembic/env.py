"""Alembic environment: resolves the target database the same way the ltv-db CLI does."""

from __future__ import annotations

import logging.config

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool

from ltv_db.db import resolve_database_url

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _target_url() -> str:
    override = context.get_x_argument(as_dictionary=True).get("url")
    return override or config.attributes.get("database_url") or resolve_database_url()


def run_migrations_online() -> None:
    url = _target_url()
    # psycopg parses both URLs and key=value conninfo strings; SQLAlchemy only URLs.
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(url, application_name="ltv-db migrate"),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: migrations run frozen SQL files")
run_migrations_online()
