"""The `ltv-db` command line."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ltv_db.config import load_settings, redact
from ltv_db.ingest import ENTITIES, ENTITY_NAMES

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
err = Console(stderr=True, soft_wrap=True)


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
    files: Annotated[list[str] | None, typer.Argument(help="paths relative to sql/ (default: its FROZEN_SQL)")] = None,
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


# -- synthetic data -------------------------------------------------------------------------------
@app.command("demo-data")
def demo_data(
    suppliers: Annotated[int, typer.Option(min=1, help="number of suppliers")] = 50_000,
    seed: Annotated[int, typer.Option(min=0, help="random seed (same seed, same bytes)")] = 1,
    as_of: Annotated[
        str, typer.Option("--as-of", help="data cut-off YYYY-MM-DD; every timestamp is earlier")
    ] = "2026-11-01",
    csv: Annotated[
        Path | None,
        typer.Option(help="write CSVs + truth.json to this directory instead of loading"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="generator processes")] = 2,
) -> None:
    """Generate a synthetic wedding-supplier marketplace with known true model parameters."""
    import time
    from datetime import date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ltv_db import demo_data as demo

    try:
        config = demo.DemoConfig(suppliers=suppliers, seed=seed, as_of=date.fromisoformat(as_of))
    except ValueError as exc:
        raise _fail(str(exc), 2) from exc
    started = time.perf_counter()
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        progress = demo.RichProgress(bar)
        if csv is not None:
            summary = demo.write_csv(config, csv, workers=workers, progress=progress)
        else:
            from ltv_db.db import connect

            with connect() as conn:
                try:
                    summary = demo.load(conn, config, workers=workers, progress=progress)
                except demo.DemoLoadError as exc:
                    raise _fail(str(exc)) from exc
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{entity} {n:,}" for entity, n in summary.rows.items())
    where = f"wrote {csv}" if csv is not None else "loaded"
    console.print(f"{where}: {counts} (seed {seed}, as of {config.as_of}) in {elapsed:.1f} s")


# -- ingestion ------------------------------------------------------------------------------------
def _ingest_help() -> str:
    headers = [
        f"  {e.name}: {', '.join(e.required)}" + "".join(f" [, {c}]" for c in e.optional) + f"  ({e.description})"
        for e in ENTITIES.values()
    ]
    return "\n\n".join((
        "Load a CSV file of ENTITY as one all-or-nothing batch (unless --jobs splits an events file): bad rows "
        "are quarantined, good rows land.",
        "Headers (the first line; column order is free, extra columns are ignored, a missing required "
        "column refuses the whole file; optional columns in brackets):",
        *headers,
        "Values: timestamps are ISO 8601 with a UTC offset (2024-03-05T10:11:12Z); amounts are positive "
        "decimals in major units (29.00) that must be exact in the currency's minor units.",
        "Idempotent: re-ingesting a file adds nothing. Events are keyed on (source, external_id): an "
        "identical re-sent event is a skipped duplicate, the same key with other content is rejected. The "
        "other entities are upserted on their key: identical rows are duplicates, changed rows are updated. "
        "Every rejected line is kept with its line number, raw text and reason (ltv-db rejects).",
        "Exit codes: 0 nothing rejected; 3 rows rejected but the good ones were loaded; 4 rows rejected and "
        "nothing loaded or updated; 2 usage error (missing file, unknown entity, missing column); 1 "
        "unexpected error (nothing was committed; with --jobs, the message says which chunks were).",
    ))


# The entity choices are the engine's (ltv_db.ingest.ENTITY_NAMES), in its order.
IngestEntity = StrEnum("IngestEntity", [(name, name) for name in ENTITY_NAMES])
INGEST_HELP = _ingest_help()

PROGRESS_MIN_BYTES = 8 << 20  # smaller files finish before a progress bar is worth drawing


@app.command("ingest", help=INGEST_HELP)
def ingest_command(
    entity: Annotated[IngestEntity, typer.Argument(help="what the file holds")],
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8, header first)")],
    jobs: Annotated[int, typer.Option(
        min=1, max=32,
        help="connections that load an events file side by side, a chunk of up to 64 MB per transaction: about "
             "1.7x faster with 2 on two cores, but no longer all or nothing (if a chunk fails, the committed "
             "ones stay and re-running the file loads the rest); smaller files and other entities use one")] = 1,
) -> None:
    import psycopg
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from ltv_db import ingest
    from ltv_db.db import connect

    if not file.is_file():
        raise _fail(escape(f"{file}: no such file"), ingest.EXIT_USAGE)
    size = file.stat().st_size
    columns = (SpinnerColumn(), "{task.description}", BarColumn(), DownloadColumn(), TimeElapsedColumn())
    bar = Progress(*columns, console=err, transient=True, disable=size < PROGRESS_MIN_BYTES)
    task = bar.add_task(f"reading {file.name}", total=size)

    def progress(done: int) -> None:
        bar.update(task, completed=done)
        if done >= size:
            bar.update(task, description="validating and loading")

    try:
        with bar, connect() as conn:
            result = ingest.ingest_file(conn, entity.value, file, progress=progress, jobs=jobs)
    except ingest.IngestError as exc:  # messages quote file content: no rich markup in them
        raise _fail(escape(str(exc)), exc.exit_code) from exc
    except psycopg.Error as exc:
        raise _fail(escape(f"database error, nothing was loaded: {exc}")) from exc

    table = Table(title=Text(f"{entity.value} from {file} — batch {result.batch_id}"), show_header=False)
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("rows read", f"{result.rows_read:,}")
    table.add_row("loaded", f"{result.loaded:,}")
    table.add_row("updated", f"{result.updated:,}")
    table.add_row("duplicates skipped", f"{result.duplicates:,}")
    table.add_row("rejected", f"{result.rejected:,}")
    for reason, n in result.rejects_by_reason.items():
        table.add_row(Text(f"  {reason}"), f"{n:,}")
    console.print(table)
    if result.ignored_columns:
        console.print(Text(f"ignored columns: {', '.join(result.ignored_columns)}"))
    if result.rejected:
        console.print(f"rejected lines: ltv-db rejects --batch {result.batch_id}")
    raise typer.Exit(result.exit_code)


@app.command("rejects")
def rejects_command(
    batch: Annotated[int | None, typer.Option(help="only this batch (default: the latest rejects)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many lines to show")] = 20,
) -> None:
    """Show quarantined input lines: batch, file, line number, reason and the raw text."""
    from rich.table import Table
    from rich.text import Text

    from ltv_db.db import connect
    from ltv_db.ingest import recent_rejects

    with connect() as conn:
        rows = recent_rejects(conn, batch, limit)
    if not rows:
        console.print("no rejected lines" + (f" in batch {batch}" if batch is not None else ""))
        return
    table = Table("batch", "file", "line", "reason", "raw text")
    for row in rows:  # Text: file content is shown as is, never read as rich markup
        table.add_row(str(row.batch_id), Text(row.file_name), str(row.line_no), Text(row.reason),
                      Text(row.raw_line or ""))
    console.print(table)


__import__("ltv_db.cli_client", fromlist=["register"]).register(app)  # segments, serve-metrics, cache (client)
__import__("ltv_db.cli_models", fromlist=["register"]).register(app)  # fit, ltv, backtest, demo


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
