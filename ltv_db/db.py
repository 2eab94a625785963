"""Resolving and opening database connections."""

from __future__ import annotations

import psycopg

from ltv_db.cluster import LocalPostgres
from ltv_db.config import Settings, load_settings


def local_cluster(settings: Settings | None = None) -> LocalPostgres:
    settings = settings or load_settings()
    return LocalPostgres(settings.home)


def resolve_database_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """LTV_DATABASE_URL if set, else the embedded cluster's URL (started on demand)."""
    settings = settings or load_settings()
    if settings.database_url:
        return settings.database_url
    cluster = local_cluster(settings)
    if start:
        cluster.start()
    return cluster.url(settings.database_name)


APPLICATION_NAME = "ltv-db"  # what pg_stat_activity shows for the CLI's connections


def connect(url: str | None = None, *, autocommit: bool = False,
            application: str = APPLICATION_NAME) -> psycopg.Connection:
    return psycopg.connect(
        url or resolve_database_url(), autocommit=autocommit, application_name=application
    )
