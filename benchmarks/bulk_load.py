"""Bulk loader for benchmark databases: the synthetic marketplace without the ingestion engine.

``ltv-db demo-data`` loads through the validating ingestion engine (~10k events/s), which is
right for the demo but makes a 1,000,000-supplier benchmark database take hours. This module
is the setup path shared by ``bench_views.py``, ``bench_live_stats.py`` and ``bench_models.py``:

1. ``ltv_db.demo_data.write_csv`` (two generator processes; cached under ``benchmarks/out/``);
2. ``COPY`` every CSV into unlogged staging tables in schema ``bench``; plans, FX rates,
   acquisition spend, customers and subscriptions converted into the ``ltv`` tables with
   ``INSERT … SELECT``; every event resolved to its final ``ltv.revenue_events`` row (customer
   id, minor units, FX rate, base amount, subscription id, event id) in ``bench.events``, in
   time order, and the monthly partitions created;
3. ``INSERT`` of ``bench.events`` into ``ltv.revenue_events`` and ``ltv.synthetic_truth`` filled
   (``demo_data.store_truth``).

The cluster's ltv pg_cron jobs are deactivated first (``pause_cron_jobs``): the scheduled view
refreshes and refits would otherwise run during the timings.

With ``--fast`` (the default for a fresh database) step 2–3 run with
``session_replication_role = replica``: row triggers (audit log, live statistics, change
notifications) and foreign-key checks are skipped, CHECK constraints still apply, and
``ltv.customer_stats`` is rebuilt afterwards with ``ltv.refresh_customer_stats()``. The
idempotency ledger ``ltv.revenue_event_keys`` is not filled (no benchmark reads it) and the
audit log has no entries for the bulk-loaded rows. ``bench.events`` stays behind for
``bench_live_stats.py``, which reloads the events from it.

    export LTV_HOME=/work/main/.ltv/bench-1m
    .venv/bin/ltv-db db start && .venv/bin/ltv-db migrate
    .venv/bin/python benchmarks/bulk_load.py --suppliers 1000000 --seed 1 --start 2011-01-01 --fit
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
AS_OF = date(2026, 11, 1)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed(label: str, timings: dict[str, float] | None, fn: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    if timings is not None:
        timings[label] = seconds
    log(f"{label}: {seconds:.1f} s")
    return result


def config(suppliers: int, seed: int, start: date | None = None, as_of: date = AS_OF,
           signup_growth: float | None = None):
    from ltv_db import demo_data

    extra: dict[str, Any] = {} if start is None else {"start": start}
    if signup_growth is not None:
        extra["signup_growth"] = signup_growth
    return demo_data.DemoConfig(suppliers=suppliers, seed=seed, as_of=as_of, **extra)


def csv_directory(cfg: Any) -> Path:
    from ltv_db import demo_data

    growth = f"_growth{cfg.signup_growth:g}" if cfg.signup_growth != demo_data.SIGNUP_GROWTH_PER_YEAR else ""
    return (REPO / "benchmarks" / "out"
            / f"marketplace_{cfg.suppliers}_{cfg.seed}_{cfg.start:%Y%m%d}_{cfg.as_of:%Y%m%d}{growth}")


def generate_csv(cfg: Any, timings: dict[str, float] | None = None, workers: int = 2) -> Path:
    """The marketplace's CSVs (generated once per config, then reused)."""
    from ltv_db import demo_data

    directory = csv_directory(cfg)
    if (directory / "truth.json").exists():
        log(f"reusing {directory}")
        return directory
    log(f"generating {cfg.suppliers:,} suppliers (start {cfg.start}) into {directory}")
    timed("generate CSV", timings, lambda: demo_data.write_csv(cfg, directory, workers=workers))
    return directory


def copy_csv(conn: psycopg.Connection, table: str, path: Path) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as copy, \
            path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            copy.write(chunk)


def load_reference_data(conn: psycopg.Connection, csv_dir: Path, timings: dict[str, float] | None = None) -> None:
    """Plans, FX, acquisition spend, customers, subscriptions into ``ltv``; every event resolved
    into ``bench.events`` (unlogged) and the monthly partitions created. ``conn`` is autocommit;
    whatever triggers run is the caller's choice (``session_replication_role``)."""
    conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    conn.execute("CREATE SCHEMA bench")
    conn.execute(
        """
        CREATE UNLOGGED TABLE bench.plans (plan_code text, tier text, billing_interval text, list_price numeric,
                                          currency text);
        CREATE UNLOGGED TABLE bench.fx (currency text, day date, rate numeric);
        CREATE UNLOGGED TABLE bench.spend (acquisition_channel text, month date, amount numeric, currency text);
        CREATE UNLOGGED TABLE bench.customers (customer_ref text, vendor_category text, country text,
                                              acquisition_channel text, signed_up_at timestamptz);
        CREATE UNLOGGED TABLE bench.subscriptions (subscription_ref text, customer_ref text, plan_code text,
                                                  billing_interval text, started_at timestamptz,
                                                  cancelled_at timestamptz, ended_at timestamptz);
        CREATE UNLOGGED TABLE bench.raw_events (source text, external_id text, customer_ref text,
                                               occurred_at timestamptz, kind text, amount numeric, currency text,
                                               subscription_ref text);
        """
    )

    def copy_all() -> None:
        for table, name in [("plans", "plans"), ("fx", "fx_rates"), ("spend", "acquisition_spend"),
                            ("customers", "customers"), ("subscriptions", "subscriptions"),
                            ("raw_events", "events")]:
            copy_csv(conn, f"bench.{table}", csv_dir / f"{name}.csv")

    timed("COPY CSVs into staging", timings, copy_all)
    timed("INSERT plans, FX, acquisition spend, customers", timings, lambda: conn.execute(
        """
        INSERT INTO ltv.plans
        SELECT p.plan_code, p.tier, p.billing_interval, round(p.list_price * 10 ^ c.exponent)::bigint, p.currency
        FROM bench.plans p JOIN ltv.currencies c USING (currency);
        INSERT INTO ltv.fx_rates SELECT currency, day, rate FROM bench.fx;
        INSERT INTO ltv.acquisition_spend (acquisition_channel, month, currency, amount_minor)
        SELECT s.acquisition_channel, s.month, s.currency, round(s.amount * 10 ^ c.exponent)::bigint
        FROM bench.spend s JOIN ltv.currencies c USING (currency);
        INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
        SELECT customer_ref, vendor_category, country, acquisition_channel, signed_up_at FROM bench.customers;
        ANALYZE ltv.customers;
        """
    ))
    timed("INSERT subscriptions", timings, lambda: conn.execute(
        """
        INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at, cancelled_at, ended_at)
        SELECT c.customer_id, s.subscription_ref, s.plan_code, s.started_at, s.cancelled_at, s.ended_at
        FROM bench.subscriptions s JOIN ltv.customers c USING (customer_ref);
        ANALYZE ltv.subscriptions;
        """
    ))
    timed("resolve events into bench.events + partitions", timings, lambda: conn.execute(
        """
        CREATE UNLOGGED TABLE bench.events AS
        SELECT c.customer_id, e.occurred_at, nextval('ltv.revenue_events_event_id_seq') AS event_id, e.kind,
               round(e.amount * 10 ^ cur.exponent)::bigint AS amount_minor, e.currency::char(3) AS currency,
               coalesce(fx.rate, 1)::numeric(20,10) AS fx_rate,
               round(e.amount * coalesce(fx.rate, 1), 4)::numeric(20,4) AS amount_base,
               e.source, e.external_id, s.subscription_id, NULL::bigint AS batch_id
        FROM (SELECT * FROM bench.raw_events ORDER BY occurred_at) e
        JOIN ltv.customers c USING (customer_ref)
        JOIN ltv.currencies cur ON cur.currency = e.currency
        LEFT JOIN bench.fx fx ON fx.currency = e.currency AND fx.day = (e.occurred_at AT TIME ZONE 'UTC')::date
        LEFT JOIN ltv.subscriptions s ON s.customer_id = c.customer_id AND s.subscription_ref = e.subscription_ref;
        SELECT ltv.create_revenue_partition(m::date)
        FROM generate_series((SELECT date_trunc('month', min(occurred_at)) FROM bench.events),
                             (SELECT date_trunc('month', max(occurred_at)) FROM bench.events), interval '1 month') m;
        ANALYZE bench.events;
        DROP TABLE bench.raw_events;
        """
    ))


EVENT_COLUMNS = (
    "customer_id, occurred_at, event_id, kind, amount_minor, currency, fx_rate, amount_base, "
    "source, external_id, subscription_id, batch_id"
)


def load_events(conn: psycopg.Connection, timings: dict[str, float] | None = None) -> None:
    timed("INSERT bench.events into ltv.revenue_events", timings, lambda: conn.execute(
        f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.events"
    ))


def store_truth(conn: psycopg.Connection, csv_dir: Path) -> None:
    import json

    from ltv_db import demo_data

    demo_data.store_truth(conn, json.loads((csv_dir / "truth.json").read_text()))


def bulk_load(url: str, cfg: Any, timings: dict[str, float] | None = None) -> dict[str, int]:
    """Generate (or reuse) the CSVs and load them into the empty database at ``url``."""
    timings = {} if timings is None else timings
    pause_cron_jobs(url)
    csv_dir = generate_csv(cfg, timings)
    with psycopg.connect(url, autocommit=True, application_name="bulk_load") as conn:
        if conn.execute("SELECT count(*) FROM ltv.customers").fetchone()[0]:
            raise SystemExit("ltv.customers is not empty: bulk_load needs a freshly migrated database")
        conn.execute("SET session_replication_role = replica")  # no row triggers, no FK checks
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        load_reference_data(conn, csv_dir, timings)
        load_events(conn, timings)
        conn.execute("RESET session_replication_role")
        store_truth(conn, csv_dir)
        timed("ltv.refresh_customer_stats()", timings, lambda: conn.execute("SELECT ltv.refresh_customer_stats()"))
        timed("VACUUM ANALYZE", timings, lambda: conn.execute("VACUUM ANALYZE"))
        counts = dict(zip(
            ("customers", "subscriptions", "revenue_events"),
            conn.execute("SELECT (SELECT count(*) FROM ltv.customers), (SELECT count(*) FROM ltv.subscriptions), "
                         "(SELECT count(*) FROM ltv.revenue_events)").fetchone(),
            strict=True,
        ))
    log(f"loaded {counts}")
    return counts


def pause_cron_jobs(url: str) -> int:
    """Deactivate the ltv pg_cron jobs of this cluster (a benchmark database must not refresh its
    views or refit behind the timings' back: at 1,000,000 suppliers the 15-minute view refresh
    would run all the time). pg_cron lives in the ``postgres`` database; ``ltv-db migrate``
    re-registers the jobs, so callers pause again after migrating. Returns the jobs paused."""
    cron_url = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(cron_url, autocommit=True) as conn:
        paused = conn.execute("UPDATE cron.job SET active = false WHERE jobname LIKE 'ltv:%' AND active").rowcount
        conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_cron worker'")
    return paused


def refit(url: str, timings: dict[str, float] | None = None) -> int:
    """``ltv.refit_models(now(), 500)`` (what ``ltv-db fit`` runs); the number of fits activated."""
    with psycopg.connect(url, autocommit=True, application_name="bulk_load") as conn:
        conn.execute("SET jit = off")
        fits = timed("ltv.refit_models(now(), 500)", timings, lambda: conn.execute(
            "SELECT activated FROM ltv.refit_models(now(), 500)").fetchall())
    return sum(1 for (activated,) in fits if activated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suppliers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=None,
                        help="first day of the marketplace's history (default: the generator's, 2021-01-01)")
    parser.add_argument("--signup-growth", type=float, default=None,
                        help="yearly growth of the signup rate (default: the generator's, 0.30); "
                             "0 = a mature marketplace with longer histories (20 M events at 1M suppliers from 2011)")
    parser.add_argument("--fit", action="store_true", help="refit the models afterwards (ltv.refit_models)")
    args = parser.parse_args()
    from ltv_db.db import resolve_database_url

    url = resolve_database_url()
    cfg = config(args.suppliers, args.seed, args.start, signup_growth=args.signup_growth)
    timings: dict[str, float] = {}
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    counts = bulk_load(url, cfg, timings)
    if args.fit:
        log(f"{refit(url, timings)} fits activated")
    log(f"total {time.perf_counter() - started:.0f} s; load average {load_start:.1f} → {os.getloadavg()[0]:.1f}")
    print({**counts, **{k: round(v, 1) for k, v in timings.items()}})


if __name__ == "__main__":
    main()
