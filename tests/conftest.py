"""Fixtures: a private PostgreSQL 15 cluster (pg_cron preloaded) and a private redis-server,
started for the test session; a fresh database per test, cloned from a migrated template.

Set LTV_TEST_DATABASE_URL to run against an existing server instead (it must preload pg_cron
and allow CREATE DATABASE). Nothing here skips: a missing service is a test failure.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ltv_db.cluster import LocalPostgres
from ltv_db.migrations import upgrade_head
from ltv_db.redis_server import LocalRedis

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DB = "ltv_test_template"
_db_counter = itertools.count()


def shared_data_dir() -> Path:
    """Reference data shipped beside the project (../shared/data) or where LTV_SHARED_DATA says."""
    path = Path(os.environ.get("LTV_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        raise RuntimeError(f"reference data not found at {path}; set LTV_SHARED_DATA")
    return path


def with_dbname(url: str, dbname: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def test_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Under the repo (not /tmp) so the server user can reach it; unique per session.
    home = REPO_ROOT / ".ltv" / f"test-{os.getpid()}"
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def pg_server_url(test_home: Path) -> Iterator[str]:
    """URL of the server's maintenance database (`postgres`)."""
    external = os.environ.get("LTV_TEST_DATABASE_URL")
    if external:
        yield with_dbname(external, "postgres")
        return
    cluster = LocalPostgres(test_home, ephemeral=True)
    cluster.start()
    try:
        yield cluster.url("postgres")
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def template_url(pg_server_url: str) -> str:
    """A database migrated to head, cloned for every test."""
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    url = with_dbname(pg_server_url, TEMPLATE_DB)
    upgrade_head(url)
    # The migration scheduled pg_cron jobs for the template; a job connected to it would make
    # CREATE DATABASE ... TEMPLATE fail ("being accessed by other users"). Tests that check the
    # jobs migrate a database of their own.
    with psycopg.connect(url) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
    with psycopg.connect(with_dbname(pg_server_url, cron_db), autocommit=True) as cron:
        cron.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %s", (f"ltv:{TEMPLATE_DB}:%",))
    return url


def create_database(server_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if template:
            create = sql.SQL("CREATE DATABASE {} TEMPLATE {}")
            conn.execute(create.format(sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_dbname(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(pg_server_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    name = f"ltv_test_{os.getpid()}_{next(_db_counter)}"
    url = create_database(pg_server_url, name, TEMPLATE_DB)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"ltv_empty_{os.getpid()}_{next(_db_counter)}"
    url = create_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def redis_server(test_home: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(test_home)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: LocalRedis) -> str:
    if not redis_server.is_running():
        redis_server.start()
    return redis_server.url()


def run_cli(args: list[str], database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real `ltv-db` console script against ``database_url``."""
    environ = {**os.environ, "LTV_DATABASE_URL": database_url, **env}
    exe = Path(sys.executable).with_name("ltv-db")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=environ, cwd=REPO_ROOT)


def wait_for_lock_wait(conn: psycopg.Connection, pid: int | None = None, timeout: float = 30.0) -> None:
    """Return once backend ``pid`` (any backend of this database when None) waits for a lock —
    the moment a concurrency test lets the writer it blocks go on; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not conn.execute(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND (%(pid)s::int IS NULL OR pid = %(pid)s::int)",
        {"pid": pid},
    ).fetchone()[0]:
        assert time.monotonic() < deadline, f"no backend ({pid or 'any'}) waited for a lock within {timeout} s"
        time.sleep(0.02)
