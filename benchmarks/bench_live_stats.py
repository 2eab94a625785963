"""Benchmark for issue 4's live statistics: what the statement triggers cost at ingest, and how
fast ``ltv.customer_ltv(id)`` answers from them.

    LTV_HOME=/work/main/.ltv/bench-live .venv/bin/python benchmarks/bench_live_stats.py \
        --suppliers 200000 [--reps 3] [--latency-calls 2000] [--stop]

What it does, in one private cluster (``LTV_HOME``; migrated with ``ltv-db migrate``):

1. Generates the synthetic marketplace (``ltv_db.demo_data.write_csv``; cached under
   ``benchmarks/out/``) and loads plans, FX, customers and subscriptions with plain SQL (COPY
   into staging, then INSERT … SELECT); resolves every event to its final ``revenue_events`` row
   in an unlogged staging table, in time order, and creates the monthly partitions.
2. **Bulk load**: ``INSERT INTO ltv.revenue_events SELECT … FROM staging`` of every event, and a
   ``COPY ltv.revenue_events FROM STDIN`` of the same rows, with the live-statistics INSERT
   trigger enabled and disabled (``ALTER TABLE … DISABLE TRIGGER live_stats_insert``),
   alternating, ``--reps`` times each; ratio of the medians. Between runs the events are
   truncated (which rebuilds the statistics from the subscriptions) and the table vacuumed.
3. **Incremental load**: with everything before the last month already loaded (and its
   statistics built), the last month's events — existing customers, most with history — are
   inserted with the trigger on and off; ratio of the medians.
4. Checks ``ltv.verify_customer_stats()`` is empty after the trigger-enabled loads.
5. **Latency**: refits the models (``ltv.refit_models``), then times ``SELECT * FROM
   ltv.customer_ltv(id)`` for ``--latency-calls`` random customers on one connection (after 100
   warm-up calls), client-side round trip over the Unix socket: p50 / p95 / p99 / max.

Results are printed and appended to ``benchmarks/RESULTS.md`` (section "Live statistics
(issue 4)"; a rerun replaces that section only).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
import psycopg.sql

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Live statistics (issue 4)"
EVENT_COLUMNS = (
    "customer_id, occurred_at, event_id, kind, amount_minor, currency, fx_rate, amount_base, "
    "source, external_id, subscription_id, batch_id"
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def cli(*args: str) -> str:
    exe = Path(sys.executable).with_name("ltv-db")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=REPO, env=os.environ, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"ltv-db {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


# -- data ----------------------------------------------------------------------------------------
def generate_csv(suppliers: int, seed: int) -> Path:
    from ltv_db import demo_data

    directory = REPO / "benchmarks" / "out" / f"live_stats_{suppliers}_{seed}"
    if (directory / "truth.json").exists():
        return directory
    log(f"generating {suppliers:,} suppliers into {directory}")
    config = demo_data.DemoConfig(suppliers=suppliers, seed=seed, as_of=date(2026, 11, 1))
    demo_data.write_csv(config, directory, workers=2)
    return directory


def copy_csv(conn: psycopg.Connection, table: str, path: Path) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as copy, \
            path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            copy.write(chunk)


def load_reference_data(conn: psycopg.Connection, csv_dir: Path) -> None:
    """Plans, FX, customers, subscriptions; every event resolved into bench.events."""
    log("loading plans, fx rates, customers, subscriptions")
    conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    conn.execute("CREATE SCHEMA bench")
    conn.execute(
        """
        CREATE UNLOGGED TABLE bench.plans (plan_code text, tier text, billing_interval text, list_price numeric,
                                          currency text);
        CREATE UNLOGGED TABLE bench.fx (currency text, day date, rate numeric);
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
    for table, name in [("plans", "plans"), ("fx", "fx_rates"), ("customers", "customers"),
                        ("subscriptions", "subscriptions"), ("raw_events", "events")]:
        copy_csv(conn, f"bench.{table}", csv_dir / f"{name}.csv")
    conn.execute(
        """
        INSERT INTO ltv.plans
        SELECT p.plan_code, p.tier, p.billing_interval, round(p.list_price * 10 ^ c.exponent)::bigint, p.currency
        FROM bench.plans p JOIN ltv.currencies c USING (currency);
        INSERT INTO ltv.fx_rates SELECT currency, day, rate FROM bench.fx;
        INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
        SELECT customer_ref, vendor_category, country, acquisition_channel, signed_up_at FROM bench.customers;
        """
    )
    started = time.perf_counter()
    conn.execute(
        """
        INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at, cancelled_at, ended_at)
        SELECT c.customer_id, s.subscription_ref, s.plan_code, s.started_at, s.cancelled_at, s.ended_at
        FROM bench.subscriptions s JOIN ltv.customers c USING (customer_ref)
        """
    )
    log(f"subscriptions loaded in {time.perf_counter() - started:.1f} s (statistics kept by the triggers)")
    log("resolving events")
    conn.execute(
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
    )
    conn.execute("VACUUM ANALYZE ltv.customer_stats, ltv.customers, ltv.subscriptions")


# -- timing helpers ------------------------------------------------------------------------------
def set_trigger(conn: psycopg.Connection, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    conn.execute(f"ALTER TABLE ltv.revenue_events {action} TRIGGER live_stats_insert")


def settle(conn: psycopg.Connection) -> None:
    conn.execute("VACUUM ANALYZE ltv.customer_stats")
    conn.execute("CHECKPOINT")


def timed(conn: psycopg.Connection, statement: str) -> float:
    started = time.perf_counter()
    conn.execute(statement)
    return time.perf_counter() - started


def timed_copy(conn: psycopg.Connection, rows_sql: str) -> float:
    """COPY the rows of ``rows_sql`` into ltv.revenue_events through a client round trip."""
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({rows_sql}) TO STDOUT") as out:
        for chunk in out:
            buffer += chunk
    started = time.perf_counter()
    with conn.cursor() as cur, cur.copy(f"COPY ltv.revenue_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
        view = memoryview(buffer)
        for offset in range(0, len(view), 1 << 20):
            copy.write(view[offset:offset + (1 << 20)])
    return time.perf_counter() - started


def empty_events(conn: psycopg.Connection) -> None:
    # the TRUNCATE trigger rebuilds the statistics (from the subscriptions alone)
    conn.execute("TRUNCATE ltv.revenue_events")
    settle(conn)


# -- scenarios -----------------------------------------------------------------------------------
def bench_bulk(conn: psycopg.Connection, reps: int) -> dict:
    n_events, n_customers = conn.execute("SELECT count(*), count(DISTINCT customer_id) FROM bench.events").fetchone()
    log(f"bulk load: {n_events:,} events over {n_customers:,} customers, {reps} reps each way")
    insert_sql = f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.events"
    rows_sql = f"SELECT {EVENT_COLUMNS} FROM bench.events"
    times: dict[str, list[float]] = {"insert_on": [], "insert_off": [], "copy_on": [], "copy_off": []}
    empty_events(conn)
    for rep in range(reps):
        for enabled in (False, True) if rep % 2 == 0 else (True, False):
            key = "on" if enabled else "off"
            set_trigger(conn, enabled)
            times[f"insert_{key}"].append(timed(conn, insert_sql))
            log(f"  INSERT … SELECT, trigger {key}: {times[f'insert_{key}'][-1]:.1f} s")
            if enabled and rep == 0:
                diffs = conn.execute("SELECT count(*) FROM ltv.verify_customer_stats()").fetchone()[0]
                log(f"  verify_customer_stats() after the bulk INSERT: {diffs} differences")
                assert diffs == 0
            set_trigger(conn, True)
            empty_events(conn)
            set_trigger(conn, enabled)
            times[f"copy_{key}"].append(timed_copy(conn, rows_sql))
            log(f"  COPY FROM STDIN,  trigger {key}: {times[f'copy_{key}'][-1]:.1f} s")
            set_trigger(conn, True)
            empty_events(conn)
    return {"events": n_events, "customers": n_customers, **{k: statistics.median(v) for k, v in times.items()},
            "runs": times}


def bench_incremental(conn: psycopg.Connection, reps: int) -> dict:
    split = conn.execute("SELECT date_trunc('month', max(occurred_at)) FROM bench.events").fetchone()[0]
    log(f"incremental load: history before {split:%Y-%m-%d} loaded, then the last month")
    set_trigger(conn, False)
    conn.execute(f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.events "
                 "WHERE occurred_at < %s", (split,))
    set_trigger(conn, True)
    conn.execute("SELECT ltv.refresh_customer_stats()")
    conn.execute("CREATE UNLOGGED TABLE bench.last_month AS SELECT * FROM bench.events WHERE occurred_at >= %s",
                 (split,))
    n_events, n_customers, with_history = conn.execute(
        """SELECT count(*), count(DISTINCT l.customer_id),
                  count(DISTINCT l.customer_id) FILTER (WHERE s.event_count > 0)
           FROM bench.last_month l LEFT JOIN ltv.customer_stats s USING (customer_id)"""
    ).fetchone()
    log(f"  {n_events:,} events over {n_customers:,} customers ({with_history:,} with earlier events)")
    ids = [r[0] for r in conn.execute("SELECT DISTINCT customer_id FROM bench.last_month")]
    settle(conn)
    insert_sql = f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.last_month"
    times: dict[str, list[float]] = {"on": [], "off": []}
    for rep in range(reps):
        for enabled in (False, True) if rep % 2 == 0 else (True, False):
            key = "on" if enabled else "off"
            set_trigger(conn, enabled)
            times[key].append(timed(conn, insert_sql))
            log(f"  INSERT … SELECT, trigger {key}: {times[key][-1]:.2f} s")
            if enabled and rep == 0:
                diffs = conn.execute("SELECT count(*) FROM ltv.verify_customer_stats()").fetchone()[0]
                log(f"  verify_customer_stats(): {diffs} differences")
                assert diffs == 0
            # take the month out again without the triggers, then repair those customers' rows
            conn.execute("ALTER TABLE ltv.revenue_events DISABLE TRIGGER live_stats_delete")
            conn.execute("DELETE FROM ltv.revenue_events WHERE occurred_at >= %s", (split,))
            conn.execute("ALTER TABLE ltv.revenue_events ENABLE TRIGGER live_stats_delete")
            set_trigger(conn, True)
            conn.execute("SELECT ltv.refresh_customer_stats(%s)", (ids,))
            conn.execute("VACUUM ANALYZE ltv.revenue_events")
            settle(conn)
    return {"events": n_events, "customers": n_customers, "with_history": with_history,
            "on": statistics.median(times["on"]), "off": statistics.median(times["off"]), "runs": times}


def bench_latency(conn: psycopg.Connection, calls: int) -> dict:
    # after bench_incremental everything but the last month is loaded
    conn.execute(f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.last_month")
    conn.execute("VACUUM ANALYZE")
    log("refitting models (ltv.refit_models)")
    started = time.perf_counter()
    fits = conn.execute("SELECT model, segment, activated FROM ltv.refit_models(now(), 500)").fetchall()
    refit_s = time.perf_counter() - started
    active = sum(1 for f in fits if f[2])
    log(f"  {len(fits)} fits, {active} activated, in {refit_s:.0f} s")
    ids = [r[0] for r in conn.execute("SELECT customer_id FROM ltv.customers")]
    rng = random.Random(4)
    sample = rng.sample(ids, min(calls, len(ids)))
    for cid in rng.sample(ids, 100):  # warm-up: plans cached, buffers warm
        conn.execute("SELECT * FROM ltv.customer_ltv(%s)", (cid,)).fetchall()
    timings = []
    for cid in sample:
        started = time.perf_counter()
        conn.execute("SELECT * FROM ltv.customer_ltv(%s)", (cid,)).fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()

    def pct(p: float) -> float:
        return timings[min(len(timings) - 1, int(round(p / 100 * len(timings))) - 1)]

    return {"calls": len(timings), "p50": pct(50), "p95": pct(95), "p99": pct(99), "max": timings[-1],
            "fits": len(fits), "active": active, "refit_s": refit_s,
            "customers": len(ids),
            "events": conn.execute("SELECT count(*) FROM ltv.revenue_events").fetchone()[0]}


# -- report --------------------------------------------------------------------------------------
def write_results(args: argparse.Namespace, bulk: dict, incremental: dict, latency: dict) -> str:
    def ratio(on: float, off: float) -> str:
        return f"{on / off:.2f}×"

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    cpu = os.cpu_count()
    lines = [
        SECTION,
        "",
        f"Command: `LTV_HOME=.ltv/bench-live .venv/bin/python benchmarks/bench_live_stats.py --suppliers "
        f"{args.suppliers} --reps {args.reps} --latency-calls {args.latency_calls}` "
        f"({time.strftime('%Y-%m-%d')}, {cpu} CPUs, PostgreSQL 15 private cluster with the default ltv_db settings, "
        "durable: fsync on). Synthetic marketplace from `ltv_db.demo_data` (seed 1), loaded with plain SQL "
        "(COPY into staging, INSERT … SELECT).",
        "",
        "**Ingest with vs without the live-statistics trigger** (target ≤ 1.5×; `live_stats_insert` disabled "
        "with `ALTER TABLE … DISABLE TRIGGER` for the baseline; same run, alternating, median of "
        f"{args.reps}; seconds):",
        "",
        "| load | events | customers | without | with | ratio |",
        "|---|---:|---:|---:|---:|---:|",
        f"| bulk `INSERT … SELECT` into empty `revenue_events` | {bulk['events']:,} | {bulk['customers']:,} | "
        f"{bulk['insert_off']:.1f} | {bulk['insert_on']:.1f} | **{ratio(bulk['insert_on'], bulk['insert_off'])}** |",
        f"| bulk `COPY … FROM STDIN` into empty `revenue_events` | {bulk['events']:,} | {bulk['customers']:,} | "
        f"{bulk['copy_off']:.1f} | {bulk['copy_on']:.1f} | **{ratio(bulk['copy_on'], bulk['copy_off'])}** |",
        f"| last month `INSERT … SELECT` onto the earlier history | {incremental['events']:,} | "
        f"{incremental['customers']:,} ({incremental['with_history']:,} with history) | "
        f"{incremental['off']:.2f} | {incremental['on']:.2f} | **{ratio(incremental['on'], incremental['off'])}** |",
        "",
        f"Runs (s): INSERT without {runs(bulk['runs']['insert_off'])}, with {runs(bulk['runs']['insert_on'])}; "
        f"COPY without {runs(bulk['runs']['copy_off'])}, with {runs(bulk['runs']['copy_on'])}; "
        f"last month without {runs(incremental['runs']['off'])}, with {runs(incremental['runs']['on'])}. "
        "`ltv.verify_customer_stats()` returned no difference after the trigger-maintained loads.",
        "",
        f"**`ltv.customer_ltv(id)` latency** (target p99 ≤ 5 ms): {latency['calls']:,} random customers of "
        f"{latency['customers']:,} ({latency['events']:,} events), one connection, after 100 warm-up calls, "
        f"client-side round trip over the Unix socket, with {latency['active']} active fits "
        f"(`ltv.refit_models` took {latency['refit_s']:.0f} s):",
        "",
        "| p50 | p95 | p99 | max |",
        "|---:|---:|---:|---:|",
        f"| {latency['p50']:.2f} ms | {latency['p95']:.2f} ms | **{latency['p99']:.2f} ms** "
        f"| {latency['max']:.2f} ms |",
        "",
    ]
    section = "\n".join(lines)
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in existing:
        before, rest = existing.split(SECTION, 1)
        after = rest.split("\n## ", 1)
        existing = before.rstrip("\n") + "\n\n" + (("## " + after[1]) if len(after) > 1 else "")
    RESULTS.write_text(existing.rstrip("\n") + "\n\n" + section)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suppliers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    parser.add_argument("--stop", action="store_true", help="stop the private cluster at the end")
    args = parser.parse_args()
    if not os.environ.get("LTV_HOME") and not os.environ.get("LTV_DATABASE_URL"):
        os.environ["LTV_HOME"] = str(REPO / ".ltv" / "bench-live")

    from ltv_db.db import resolve_database_url

    csv_dir = generate_csv(args.suppliers, args.seed)
    url = resolve_database_url()  # starts the private cluster when LTV_DATABASE_URL is unset
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    maintenance = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:  # a fresh database every run
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(dbname)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
    cli("migrate")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            load_reference_data(conn, csv_dir)
            bulk = bench_bulk(conn, args.reps)
            incremental = bench_incremental(conn, args.reps)
            latency = bench_latency(conn, args.latency_calls)
        section = write_results(args, bulk, incremental, latency) if not args.no_write else ""
        print(section or f"{bulk}\n{incremental}\n{latency}")
    finally:
        if args.stop:
            cli("db", "stop")


if __name__ == "__main__":
    main()
