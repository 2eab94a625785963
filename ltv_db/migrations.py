"""How migrations install SQL without rewriting history.

`sql/` holds today's source of truth for replaceable objects (functions, views). A revision
never reads `sql/` at upgrade time: `ltv-db dev freeze-sql REV` copies the files a revision
lists into `alembic/versions/<REV>/sql/`, and upgrade() runs those frozen copies. So upgrading
an old database replays each revision's SQL as it was written, and a test checks that every
file in `sql/` equals its newest frozen copy (nobody forgets to freeze a change).

Each revision directory may also hold `upgrade.sql` (DDL run before the frozen files) and
`downgrade.sql`. pg_cron jobs a revision owns are declared in the revision module as
:class:`CronJob` values and registered with ``cron.schedule_in_database`` in whichever database
``cron.database_name`` names (pg_cron 1.4 lives in exactly one database).
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = REPO_ROOT / "sql"
VERSIONS_DIR = REPO_ROOT / "alembic" / "versions"
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


@dataclass(frozen=True)
class CronJob:
    """A pg_cron job: ``name`` is unique per target database (prefixed with it on install)."""

    name: str
    schedule: str
    command: str
    in_cron_database: bool = False  # e.g. purging cron.job_run_details


def _revision_dir(revision_file: str) -> Path:
    path = Path(revision_file)
    return path.with_suffix("")


def _dbapi(op_module=None) -> psycopg.Connection:
    from alembic import op

    return (op_module or op).get_bind().connection.dbapi_connection


def _run_file(conn: psycopg.Connection, path: Path) -> None:
    # No parameters: psycopg sends the whole file as one simple query, `%` and `:` untouched.
    with conn.cursor() as cur:
        cur.execute(path.read_text())


def upgrade(revision_file: str, frozen_sql: list[str], jobs: list[CronJob] | None = None) -> None:
    rev_dir = _revision_dir(revision_file)
    conn = _dbapi()
    if (rev_dir / "upgrade.sql").exists():
        _run_file(conn, rev_dir / "upgrade.sql")
    for rel in frozen_sql:
        frozen = rev_dir / "sql" / rel
        if not frozen.exists():
            raise FileNotFoundError(f"{frozen} missing: run `ltv-db dev freeze-sql {rev_dir.name}`")
        _run_file(conn, frozen)
    if jobs:
        schedule_jobs(conn, jobs)


def run_statement(statement: str) -> None:
    """Run one literal SQL statement inside the current migration."""
    _dbapi().execute(statement)


def downgrade(revision_file: str, jobs: list[CronJob] | None = None) -> None:
    rev_dir = _revision_dir(revision_file)
    conn = _dbapi()
    if jobs:
        unschedule_jobs(conn, jobs)
    if (rev_dir / "downgrade.sql").exists():
        _run_file(conn, rev_dir / "downgrade.sql")


def reinstall_earlier_copies(revision: str, files: list[str] | None = None) -> None:
    """Run, for each sql/ file, the newest frozen copy of a revision older than ``revision``.

    What a downgrade needs after ``downgrade.sql`` when the revision re-froze functions: CREATE
    OR REPLACE with the earlier text restores the earlier body and resets every attribute the
    later revision changed (SECURITY DEFINER, SET options). ``files`` limits it to those
    sql/-relative paths; by default every function file is reinstalled, in the order the
    revisions declared them.
    """
    newest: dict[str, tuple[int, int, Path]] = {}
    earlier = [module for module in _revision_modules() if module.stem < revision]
    for rank, module in enumerate(earlier):
        for position, rel in enumerate(declared_sql(module.stem)):
            frozen = module.with_suffix("") / "sql" / rel
            wanted = rel in files if files is not None else rel.startswith("functions/")
            if wanted and frozen.exists():
                newest[rel] = (rank, position, frozen)
    for _rank, _position, frozen in sorted(newest.values()):
        run_statement(frozen.read_text())


# -- pg_cron -------------------------------------------------------------------------------------
def job_name(database: str, job: CronJob) -> str:
    return f"ltv:{database}:{job.name}"


def _cron_connection(conn: psycopg.Connection) -> tuple[psycopg.Connection | None, bool]:
    """A connection to the pg_cron database (``conn`` itself when it is that database)."""
    cron_db = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
    if not cron_db:
        return None, False
    if cron_db == conn.info.dbname:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        return conn, False
    params = conn.info.get_parameters()
    params["dbname"] = cron_db
    other = psycopg.connect(**params, autocommit=True)
    other.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    return other, True


def schedule_jobs(conn: psycopg.Connection, jobs: list[CronJob]) -> None:
    cron, owned = _cron_connection(conn)
    if cron is None:
        raise RuntimeError(
            "pg_cron is not loaded on this server (shared_preload_libraries = 'pg_cron' and "
            "cron.database_name are required); ltv_db schedules its maintenance with it"
        )
    target = conn.info.dbname
    try:
        for job in jobs:
            database = cron.info.dbname if job.in_cron_database else target
            cron.execute(
                "SELECT cron.schedule_in_database(%s, %s, %s, %s)",
                (job_name(target, job), job.schedule, job.command, database),
            )
    finally:
        if owned:
            cron.close()


def unschedule_jobs(conn: psycopg.Connection, jobs: list[CronJob]) -> None:
    cron, owned = _cron_connection(conn)
    if cron is None:
        return
    target = conn.info.dbname
    try:
        for job in jobs:
            cron.execute(
                "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s",
                (job_name(target, job),),
            )
    finally:
        if owned:
            cron.close()


# -- alembic entry points used by the CLI and the tests ---------------------------------------
def alembic_config(database_url: str):
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade_head(database_url: str, target: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), target)


def downgrade_to(database_url: str, target: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), target)


def current_revision(database_url: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('public.alembic_version')").fetchone()[0]
        if exists is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


# -- keeping frozen copies honest -----------------------------------------------------------
def _revision_modules() -> list[Path]:
    return sorted(VERSIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.py"))


def frozen_copies() -> dict[str, Path]:
    """For each sql/ file, its newest frozen copy (revisions sort by their numeric prefix)."""
    newest: dict[str, Path] = {}
    for module in _revision_modules():
        frozen_root = module.with_suffix("") / "sql"
        for path in frozen_root.rglob("*.sql"):
            newest[str(path.relative_to(frozen_root))] = path
    return newest


def stale_sql_files() -> list[str]:
    """sql/ files whose content differs from (or is missing in) their newest frozen copy."""
    newest = frozen_copies()
    stale = []
    for path in sorted(SQL_DIR.rglob("*.sql")):
        rel = str(path.relative_to(SQL_DIR))
        frozen = newest.get(rel)
        if frozen is None or not filecmp.cmp(path, frozen, shallow=False):
            stale.append(rel)
    return stale


def _revision_module(revision: str) -> Path:
    matches = [m for m in _revision_modules() if m.stem == revision or m.stem.startswith(f"{revision}_")]
    if len(matches) != 1:
        raise ValueError(f"no single revision matches {revision!r}")
    return matches[0]


def _revision_list(revision: str, name: str) -> list[str]:
    """A list a revision module declares (empty when it declares none)."""
    import importlib.util

    module_path = _revision_module(revision)
    spec = importlib.util.spec_from_file_location(f"ltv_revision_{module_path.stem}", module_path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return list(getattr(module, name, []))


def declared_sql(revision: str) -> list[str]:
    """The FROZEN_SQL list a revision module declares."""
    return _revision_list(revision, "FROZEN_SQL")


def retired_sql() -> set[str]:
    """sql/ files that a revision retired (RETIRED_SQL: its upgrade.sql drops what they defined).
    Their frozen copies stay, for the revisions before it and for downgrades."""
    return {rel for module in _revision_modules() for rel in _revision_list(module.stem, "RETIRED_SQL")}


def freeze_sql(revision: str, files: list[str] | None = None) -> list[Path]:
    """Copy ``files`` (relative to sql/; default: the revision's FROZEN_SQL) into its frozen directory."""
    dest_root = _revision_module(revision).with_suffix("") / "sql"
    files = files or declared_sql(revision)
    written = []
    for rel in files:
        dest = dest_root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SQL_DIR / rel, dest)
        written.append(dest)
    return written


__all__ = ["CronJob", "upgrade", "downgrade", "upgrade_head", "downgrade_to", "sql"]
