"""`ltv-db fit | ltv | backtest | demo`: the model commands (registered by ltv_db.cli)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console

from ltv_db import reports

# Report tables are wide: give them room when stdout is a file or a pipe (CI logs, `| less`).
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True, soft_wrap=True)

DEMO_SUPPLIERS = 50_000
DEMO_SEED = 42
DEMO_AS_OF = date(2026, 11, 1)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _parse_day(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError as exc:
        raise _fail(f"{option} must be a date YYYY-MM-DD, got {value!r}", 2) from exc


def fit(
    cutoff: Annotated[str | None, typer.Option(help="fit on data before this day (YYYY-MM-DD, UTC)")] = None,
    min_customers: Annotated[int, typer.Option(min=1, help="smallest segment fitted on its own")] = 500,
) -> None:
    """Refit sBG, BG/NBD and Gamma-Gamma for every segment inside PostgreSQL.

    Every fit is recorded in ltv.model_fits; converged fits become active, failed or
    non-converged ones never replace the active fit. Exit 1 when no fit converged.
    """
    from ltv_db.db import connect
    from ltv_db.models import refit

    with connect() as conn:
        rows = refit(conn, _parse_day(cutoff, "--cutoff"), min_customers)
        conn.commit()
        reports.print_fits(conn, console, [r["fit_id"] for r in rows])
    if not any(r["activated"] for r in rows):
        raise _fail("no model converged; see the error column", 1)


def ltv(
    customer_ref: Annotated[str, typer.Argument(help="the supplier's external reference")],
    as_of: Annotated[str | None, typer.Option(help="value as of this day (YYYY-MM-DD, UTC); default now")] = None,
) -> None:
    """Show one supplier's LTV: realised margin, predicted recurring and one-off value, P(alive).

    The current value comes through the cached client (ltv_db.client); --as-of computes a
    historical one directly.
    """
    from ltv_db.client import InvalidCustomerRef, LTVClient, ServiceUnavailable
    from ltv_db.db import connect
    from ltv_db.models import CustomerNotFound, customer_ltv

    try:
        if as_of is not None:
            with connect() as conn:
                value = customer_ltv(conn, customer_ref, _parse_day(as_of, "--as-of"))
                base = conn.execute("SELECT base_currency FROM ltv.settings").fetchone()[0]
        else:
            with LTVClient(warm_top_n=0) as client:
                value = client.get_ltv(customer_ref)
                base = client.base_currency()
    except InvalidCustomerRef as exc:
        raise _fail(str(exc), 2) from exc
    except CustomerNotFound as exc:
        raise _fail(str(exc), 4) from exc
    except ServiceUnavailable as exc:
        raise _fail(str(exc), 3) from exc
    reports.print_customer_ltv(console, value, base)


def backtest(
    cutoff: Annotated[str, typer.Option(help="fit on data before this day (YYYY-MM-DD, UTC)")],
    horizon_months: Annotated[int, typer.Option(min=1, help="months after the cutoff to predict")] = 6,
    min_customers: Annotated[int, typer.Option(min=1, help="smallest segment fitted on its own")] = 500,
) -> None:
    """Fit on data before CUTOFF, predict revenue in the following months, compare with actuals."""
    import psycopg

    from ltv_db.db import connect
    from ltv_db.models import backtest as run_backtest

    with connect() as conn:
        try:
            rows = run_backtest(conn, _parse_day(cutoff, "--cutoff"), horizon_months, min_customers)
        except (psycopg.errors.InvalidParameterValue, psycopg.errors.DataException) as exc:
            raise _fail(exc.diag.message_primary or str(exc), 2) from exc
        conn.commit()
    reports.print_backtest(console, rows, cutoff, horizon_months)


def demo(
    suppliers: Annotated[int, typer.Option(min=1000, help="suppliers to generate on first run")] = DEMO_SUPPLIERS,
    seed: Annotated[int, typer.Option(min=0, help="generator seed")] = DEMO_SEED,
) -> None:
    """Start the private cluster, migrate, load a demo marketplace (first run), fit, and report.

    Prints what was loaded, LTV by vendor category and country, and a 6-month backtest.
    Re-running reuses the loaded data.
    """
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ltv_db import demo_data
    from ltv_db.db import connect, resolve_database_url
    from ltv_db.migrations import upgrade_head
    from ltv_db.models import backtest as run_backtest
    from ltv_db.models import refit

    started = time.perf_counter()
    url = resolve_database_url()
    upgrade_head(url)
    as_of = datetime.combine(DEMO_AS_OF, datetime.min.time(), tzinfo=UTC)
    with connect(url) as conn:
        loaded = conn.execute("SELECT count(*) FROM ltv.customers").fetchone()[0]
        if loaded == 0:
            config = demo_data.DemoConfig(suppliers=suppliers, seed=seed, as_of=DEMO_AS_OF)
            columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=err, transient=True) as bar:
                demo_data.load(conn, config, progress=demo_data.RichProgress(bar))
            console.print(f"loaded a demo marketplace of {suppliers:,} suppliers (seed {seed})")
        else:
            console.print(f"using the {loaded:,} suppliers already loaded")
        reports.print_load_summary(conn, console)

        with console.status("fitting models inside PostgreSQL"):
            fits = refit(conn, as_of)
            conn.commit()
        reports.print_fits(conn, console, [f["fit_id"] for f in fits])
        with console.status("scoring every supplier"):
            reports.print_ltv_by_category_country(conn, console, as_of)
        cutoff = as_of - timedelta(days=183)
        cutoff = cutoff.replace(day=1)
        with console.status("backtesting: fit before the cutoff, predict 6 months"):
            rows = run_backtest(conn, cutoff, 6)
            conn.commit()
        reports.print_backtest(console, rows, cutoff.date().isoformat(), 6)
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s")


def register(app: typer.Typer) -> None:
    for command in (fit, ltv, backtest, demo):
        app.command()(command)
