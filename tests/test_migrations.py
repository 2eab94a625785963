"""Migrations: up → down → up, idempotent head, frozen SQL kept honest, pg_cron jobs."""

from __future__ import annotations

import subprocess

import psycopg

from ltv_db.migrations import (
    REPO_ROOT,
    current_revision,
    downgrade_to,
    frozen_copies,
    retired_sql,
    stale_sql_files,
    upgrade_head,
)
from tests.conftest import run_cli


def _ltv_objects(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT c.relkind::text, c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'ltv'
            UNION ALL
            SELECT 'f', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ltv'
            """
        ).fetchall()
    return {(kind, name) for kind, name in rows}


def _cron_jobs(url: str, dbname: str) -> set[str]:
    with psycopg.connect(url) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = cron_db
    with psycopg.connect(**params) as conn:
        rows = conn.execute("SELECT jobname FROM cron.job WHERE jobname LIKE %s", (f"ltv:{dbname}:%",))
        return {r[0] for r in rows}


def test_up_down_up_restores_the_same_schema(empty_db_url: str) -> None:
    dbname = psycopg.conninfo.conninfo_to_dict(empty_db_url)["dbname"]
    upgrade_head(empty_db_url)
    first = _ltv_objects(empty_db_url)
    assert ("p", "revenue_events") in first
    assert ("r", "customers") in first
    assert _cron_jobs(empty_db_url, dbname) >= {f"ltv:{dbname}:maintain-partitions"}

    downgrade_to(empty_db_url, "base")
    assert _ltv_objects(empty_db_url) == set()
    assert current_revision(empty_db_url) is None
    assert _cron_jobs(empty_db_url, dbname) == set()

    upgrade_head(empty_db_url)
    assert _ltv_objects(empty_db_url) == first


def test_upgrading_at_head_is_a_noop(db_url: str) -> None:
    before = _ltv_objects(db_url)
    head = current_revision(db_url)
    result = run_cli(["migrate"], db_url)
    assert result.returncode == 0, result.stderr
    assert "already up to date" in result.stdout
    assert current_revision(db_url) == head
    assert _ltv_objects(db_url) == before


def test_alembic_cli_works_from_repo_root(empty_db_url: str) -> None:
    env = {"LTV_DATABASE_URL": empty_db_url, "PATH": "/usr/bin:/bin"}
    alembic = str(REPO_ROOT / ".venv" / "bin" / "alembic")
    up = subprocess.run([alembic, "upgrade", "head"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    assert current_revision(empty_db_url) is not None
    down = subprocess.run([alembic, "downgrade", "base"], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert current_revision(empty_db_url) is None


def test_every_sql_file_is_frozen_into_a_revision() -> None:
    assert stale_sql_files() == []
    # and every frozen file still has a source of truth in sql/, unless a revision retired it
    retired = retired_sql()
    assert retired <= set(frozen_copies())
    assert all((REPO_ROOT / "sql" / rel).exists() != (rel in retired) for rel in frozen_copies())


def test_secrets_are_never_printed(db_url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(db_url)
    secret_url = f"postgresql://postgres:s3cr3t-pw@/{params['dbname']}?host={params['host']}"
    result = run_cli(["db", "url"], secret_url)
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    assert ":***@" in result.stdout
