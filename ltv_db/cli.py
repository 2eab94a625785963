"""The `ltv-db` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ltv_db.config import load_settings, redact

app = typer.Typer(
    help="ltv_db: customer-lifetime-value engine inside PostgreSQL.\n\n"
    "Uses LTV_DATABASE_URL / LTV_REDIS_URL when set, otherwise private servers under .ltv/.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Manage the embedded private PostgreSQL 15 cluster (.ltv/pg).", no_args_is_help=True)
dev_app = typer.Typer(help="Developer tools (migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dev_app, name="dev")

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


# -- db -------------------------------------------------------------------------------------------
@db_app.command("start")
def db_start() -> None:
    """Initialise (first time) and start the private cluster, with pg_cron preloaded."""
    from ltv_db.cluster import ClusterError
    from ltv_db.db import local_cluster

    cluster = local_cluster()
    try:
        cluster.start()
    except ClusterError as exc:
        raise _fail(str(exc)) from exc
    console.print(f"PostgreSQL running: data {cluster.data_dir}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the private cluster (data is kept)."""
    from ltv_db.db import local_cluster

    local_cluster().stop()
    console.print("PostgreSQL stopped")


@db_app.command("status")
def db_status() -> None:
    """Say whether the private cluster is running (exit 1 when it is not)."""
    from ltv_db.db import local_cluster

    settings = load_settings()
    if settings.database_url:
        console.print(f"LTV_DATABASE_URL is set ({redact(settings.database_url)}); the private cluster is not used")
    cluster = local_cluster(settings)
    running = cluster.is_running()
    console.print(f"private cluster {cluster.data_dir}: {'running' if running else 'stopped'}")
    if not running:
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the database URL every command uses (password redacted)."""
    from ltv_db.db import resolve_database_url

    print(redact(resolve_database_url(start=False)))


# -- migrations -----------------------------------------------------------------------------------
@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Upgrade the database schema (alembic upgrade); a no-op when already there."""
    from ltv_db.db import resolve_database_url
    from ltv_db.migrations import current_revision, upgrade_head

    url = resolve_database_url()
    before = current_revision(url)
    upgrade_head(url, revision)
    after = current_revision(url)
    console.print(f"schema at {after}" + ("" if before != after else " (already up to date)"))


@dev_app.command("freeze-sql")
def dev_freeze_sql(
    revision: Annotated[str, typer.Argument(help="revision id or prefix, e.g. 0002")],
    files: Annotated[list[str], typer.Argument(help="paths relative to sql/")],
) -> None:
    """Freeze today's sql/ files into a revision (what its upgrade() will run)."""
    from ltv_db.migrations import freeze_sql

    for path in freeze_sql(revision, files):
        console.print(f"froze {path}")


@dev_app.command("check-sql")
def dev_check_sql() -> None:
    """Fail when a sql/ file differs from its newest frozen copy in alembic/versions."""
    from ltv_db.migrations import stale_sql_files

    stale = stale_sql_files()
    for rel in stale:
        err.print(f"sql/{rel} is not frozen into any revision as it is now")
    if stale:
        raise typer.Exit(1)
    console.print("every sql/ file matches its newest frozen copy")


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
