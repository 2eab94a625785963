"""Benchmark of ltv.mrr_movements' incremental maintenance (issue 4): what a refresh costs after
a day and after a week of payments, with nothing new, and when a month closes — against
deriving every customer's rows from scratch (``ltv.mrr_movement_rows`` for everyone, the work a
REFRESH MATERIALIZED VIEW did on every refresh) and a bare per-customer GROUP BY over the same
events, both measured in the same run.

Needs the benchmark database (benchmarks/bulk_load.py) migrated to 0010 or later, whose
migration filled the view::

    export LTV_HOME=/work/main/.ltv/bench-1m
    .venv/bin/python benchmarks/bench_mrr.py           # prints a markdown section

Every step is one transaction that is rolled back afterwards, so the database is left as it
was (the held-out events are deleted and re-inserted inside it; the triggers queue their
customers exactly as an ingest would). Each refresh is checked: the queue is empty after it,
and ``--verify`` also compares the whole view with a from-scratch derivation
(``ltv.verify_mrr_movements``: another full derivation, two minutes at 20 M events).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from ltv_db.db import resolve_database_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_load  # noqa: E402

BARE = "SELECT customer_id, count(*), sum(amount_base) FROM ltv.revenue_events GROUP BY customer_id"
EVENT_COLUMNS = ("event_id, customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base, "
                 "source, external_id, subscription_id, batch_id")
def timed(conn: psycopg.Connection, sql: str, params: tuple = ()) -> tuple[float, tuple]:
    started = time.perf_counter()
    row = conn.execute(sql, params).fetchone()
    return time.perf_counter() - started, row


def refresh(conn: psycopg.Connection, as_of: datetime, verify: bool) -> dict:
    seconds, (recomputed, deleted, inserted) = timed(conn, "SELECT * FROM ltv.refresh_mrr_movements(%s)", (as_of,))
    assert conn.execute("SELECT count(*) FROM ltv.mrr_stale_customers").fetchone()[0] == 0
    result = {"seconds": seconds, "recomputed": recomputed, "deleted": deleted, "inserted": inserted}
    if verify:
        mismatches = conn.execute("SELECT count(*) FROM ltv.verify_mrr_movements()").fetchone()[0]
        assert mismatches == 0, (mismatches, result)
    return result


def held_out_refresh(conn: psycopg.Connection, since: datetime, as_of: datetime, verify: bool) -> dict:
    """Delete the events since a moment, bring the view up to date without them, put them back
    (one INSERT, as an ingest does), and time the refresh that catches up with them."""
    conn.execute(f"CREATE TEMP TABLE held_out ON COMMIT DROP AS SELECT {EVENT_COLUMNS} FROM ltv.revenue_events "
                 "WHERE occurred_at >= %s", (since,))
    events = conn.execute("DELETE FROM ltv.revenue_events WHERE occurred_at >= %s", (since,)).rowcount
    refresh(conn, as_of, verify=False)
    conn.execute(f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) "
                 f"SELECT {EVENT_COLUMNS} FROM held_out")
    return {"events": events, **refresh(conn, as_of, verify)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="default: LTV_DATABASE_URL or the private cluster")
    parser.add_argument("--verify", action="store_true", help="compare the view with a full derivation after each step")
    args = parser.parse_args()
    url = args.database_url or resolve_database_url()
    bulk_load.pause_cron_jobs(url)  # the scheduled refreshes must not run during the timings
    started_at, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0]
    with psycopg.connect(url, application_name="bench_mrr") as conn:
        customers, events, rows, last_event = conn.execute(
            "SELECT (SELECT count(*) FROM ltv.customers), (SELECT count(*) FROM ltv.revenue_events), "
            "(SELECT count(*) FROM ltv.mrr_movements), (SELECT max(occurred_at) FROM ltv.revenue_events)"
        ).fetchone()
        conn.rollback()
        print(f"# {customers:,} customers, {events:,} events, {rows:,} rows in ltv.mrr_movements", flush=True)
        now = conn.execute("SELECT now()").fetchone()[0]
        conn.rollback()
        steps: dict[str, dict] = {}

        def step(name: str, fn) -> None:
            steps[name] = fn()
            conn.rollback()
            print(f"{name}: {steps[name]}", flush=True)

        step("bare GROUP BY customer_id", lambda: {"seconds": timed(conn, f"SELECT count(*) FROM ({BARE}) b")[0]})
        step("full derivation (mrr_movement_rows for everyone)",
             lambda: {"seconds": timed(conn, "SELECT count(*) FROM ltv.mrr_movement_rows(now())")[0]})
        step("refresh, nothing new", lambda: refresh(conn, now, args.verify))
        step("refresh after a day of events",
             lambda: held_out_refresh(conn, last_event - timedelta(days=1), now, args.verify))
        step("refresh after a week of events",
             lambda: held_out_refresh(conn, last_event - timedelta(days=7), now, args.verify))
        next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=1, minute=0, second=0)
        step(f"refresh as a month closes (as of {next_month:%Y-%m-%d %H:%M})",
             lambda: refresh(conn, next_month, args.verify))
    load_end = os.getloadavg()[0]

    bare = steps["bare GROUP BY customer_id"]["seconds"]
    print(f"\n### `ltv.mrr_movements` maintenance\n\nRun {started_at}, load average {load_start:.1f} → {load_end:.1f}; "
          f"{customers:,} customers, {events:,} revenue events, {rows:,} rows in the view. "
          "Command: `.venv/bin/python benchmarks/bench_mrr.py"
          + (" --verify" if args.verify else "") + "`.\n")
    print("| step | events added | customers recomputed | rows deleted / inserted | wall | × bare GROUP BY |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, result in steps.items():
        recomputed = result.get("recomputed", "")
        recomputed = "everyone" if "recomputed" in result and recomputed is None else (
            f"{recomputed:,}" if recomputed != "" else "")
        changed = f"{result['deleted']:,} / {result['inserted']:,}" if "deleted" in result else ""
        added = f"{result['events']:,}" if "events" in result else ""
        print(f"| {name} | {added} | {recomputed} | {changed} | {result['seconds']:.2f} s "
              f"| {result['seconds'] / bare:.2f}× |")
    if args.verify:
        print("\nEvery refresh left the view equal to a from-scratch derivation (ltv.verify_mrr_movements: no row).")


if __name__ == "__main__":
    main()
