"""Benchmark of the BI views (issue 4): refresh times of every materialized view against a bare
per-customer GROUP BY over the same revenue events measured in the same run, and the
"photographers by country and channel, and their payback" query from ltv.segment_ltv.

Needs a migrated database with the demo marketplace and fitted models; defaults to the
private cluster under LTV_HOME::

    export LTV_HOME=/work/main/.ltv/bench-views
    .venv/bin/ltv-db migrate && .venv/bin/ltv-db demo-data --suppliers 1000000 && .venv/bin/ltv-db fit
    .venv/bin/python benchmarks/bench_views.py          # prints a markdown section
    .venv/bin/ltv-db db stop

What is timed (wall clock, one connection, the cluster's default settings):

* bare aggregate — ``CREATE TEMP TABLE … AS SELECT customer_id, count(*), sum(amount_base)
  FROM ltv.revenue_events GROUP BY customer_id``: the same events, materialized server-side as
  a refresh materializes its view (so neither side pays for shipping rows to the client);
  best of ``--repeat`` runs, taken before and after the refreshes.
* each view's refresh — ``ltv.refresh_views(ARRAY[view])`` one view per call, in refresh
  order, as the pg_cron jobs run them (REFRESH … CONCURRENTLY + ANALYZE); the figure is the
  duration the function records in ltv.view_refreshes. Filling a view that is still empty
  (never populated, or migrated before the data was loaded) is reported apart from the
  steady state, where the previous contents are the full data set.
* what the snapshot costs: ``ltv.score_customers(now())`` and ``ltv.formula_ltv(now())`` on
  their own (count(*) over them), to show how much of the snapshot refresh is LTV scoring.
* the segment query — p50 / p99 / max over ``--queries`` runs, plus its plan.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ltv_db.db import resolve_database_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_load  # noqa: E402

VIEWS = ("customer_ltv_snapshot", "unit_economics", "segment_ltv", "mrr_movements", "cohort_retention")
# how each registered view is refreshed: plain views over tables kept by ltv.refresh_<view>()
HOW_REFRESHED = {
    "mrr_movements": "incremental refresh (bench_mrr.py times its cases)",  # revision 0010
    "customer_ltv_snapshot": "rewrite in place (one MERGE)",  # revision 0012
    "segment_ltv": "rewrite in place (one MERGE)",  # revision 0012
}
BARE = "SELECT customer_id, count(*), sum(amount_base) FROM ltv.revenue_events GROUP BY customer_id"
PHOTOGRAPHERS = """
SELECT country, acquisition_channel, customers, mean_ltv, median_ltv, p90_ltv, total_ltv,
       mean_cac, ltv_to_cac, cac_payback_months
FROM ltv.segment_ltv
WHERE vendor_category = 'photographer' AND grouping_level = 'vendor_category+country+acquisition_channel'
ORDER BY country, acquisition_channel
"""
ALL_PHOTOGRAPHER_ROWS = "SELECT * FROM ltv.segment_ltv WHERE vendor_category = 'photographer'"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def bare_aggregate(conn: psycopg.Connection, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        conn.execute("DROP TABLE IF EXISTS pg_temp.bench_bare")
        seconds, _ = timed(lambda: conn.execute(f"CREATE TEMP TABLE bench_bare AS {BARE}"))
        times.append(seconds)
    conn.execute("DROP TABLE IF EXISTS pg_temp.bench_bare")
    return times


def refresh(conn: psycopg.Connection, view: str) -> tuple[float, bool, float]:
    """(wall seconds, concurrently, duration the function recorded in ms)."""
    seconds, row = timed(
        lambda: conn.execute(
            "SELECT refreshed_concurrently, duration_ms FROM ltv.refresh_views(ARRAY[%s])", (view,)
        ).fetchone()
    )
    return seconds, row[0], row[1]


def query_latency(conn: psycopg.Connection, sql: str, runs: int) -> tuple[list[float], int]:
    conn.execute(sql).fetchall()  # warm
    times, rows = [], 0
    for _ in range(runs):
        seconds, result = timed(lambda: conn.execute(sql).fetchall())
        times.append(seconds)
        rows = len(result)
    return times, rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None, help="default: LTV_DATABASE_URL or the private cluster")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the bare aggregate (best is reported)")
    parser.add_argument(
        "--refreshes", type=int, default=1, help="steady-state concurrent refreshes of each view (median reported)"
    )
    parser.add_argument("--queries", type=int, default=50, help="runs of the segment query")
    parser.add_argument(
        "--skip-components", action="store_true", help="do not time score_customers / formula_ltv alone"
    )
    parser.add_argument(
        "--skip-view", action="append", default=[], choices=("mrr_movements", "cohort_retention"),
        help="leave this view out (repeatable)",
    )
    args = parser.parse_args()
    views = [view for view in VIEWS if view not in args.skip_view]

    url = args.database_url or resolve_database_url()
    bulk_load.pause_cron_jobs(url)  # the scheduled refreshes must not run during the timings
    started_at, load_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()[0]
    with psycopg.connect(url, autocommit=True, application_name="bench_views") as conn:
        customers, events = conn.execute(
            "SELECT (SELECT count(*) FROM ltv.customers), (SELECT count(*) FROM ltv.revenue_events)"
        ).fetchone()
        fits = conn.execute("SELECT count(*) FROM ltv.model_fits WHERE is_active").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('work_mem', 'jit', 'shared_buffers', "
                "'max_parallel_workers_per_gather')"
            ).fetchall()
        )
        print(f"# {customers:,} customers, {events:,} revenue events, {fits} active fits", flush=True)

        # First population of any view that is still empty (not part of the steady state).
        first_fill: dict[str, float] = {}
        for view in views:
            populated = conn.execute(
                "SELECT populated FROM ltv.view_freshness WHERE view_name = %s", (view,)
            ).fetchone()[0]
            if not populated:
                _, _, ms = refresh(conn, view)
                first_fill[view] = ms / 1e3
                print(f"first population of {view}: {ms / 1e3:.1f} s", flush=True)

        bare_before = bare_aggregate(conn, args.repeat)
        print(f"bare aggregate: {[round(t, 2) for t in bare_before]} s", flush=True)

        # A view populated but empty (migrated before the data was loaded) is filled by its first
        # concurrent refresh: an all-insert diff, reported apart from the steady state.
        empty_before = {
            view for view in views if not conn.execute(f"SELECT EXISTS (SELECT FROM ltv.{view})").fetchone()[0]
        }
        concurrent: dict[str, list[float]] = {view: [] for view in views}
        for round_no in range(args.refreshes + (1 if empty_before else 0)):
            for view in views:
                if round_no == args.refreshes and view not in empty_before:
                    continue  # the extra round only re-measures views that started empty
                _, was_concurrent, ms = refresh(conn, view)
                assert was_concurrent, view
                if round_no == 0 and view in empty_before:
                    first_fill[view] = ms / 1e3
                    print(f"first concurrent refresh of empty {view}: {ms / 1e3:.1f} s", flush=True)
                else:
                    concurrent[view].append(ms / 1e3)
                    print(f"refresh {view}: {ms / 1e3:.1f} s", flush=True)

        bare_after = bare_aggregate(conn, args.repeat)
        print(f"bare aggregate again: {[round(t, 2) for t in bare_after]} s", flush=True)
        bare = min(bare_before + bare_after)

        components: dict[str, float] = {}
        if not args.skip_components:
            for name, sql in (
                ("ltv.score_customers(now())", "SELECT count(*) FROM ltv.score_customers(now())"),
                ("ltv.formula_ltv(now())", "SELECT count(*) FROM ltv.formula_ltv(now())"),
                ("ltv.channel_economics(now())", "SELECT count(*) FROM ltv.channel_economics(now())"),
            ):
                components[name], _ = timed(lambda sql=sql: conn.execute(sql).fetchone())
                print(f"{name}: {components[name]:.1f} s", flush=True)

        latency, n_rows = query_latency(conn, PHOTOGRAPHERS, args.queries)
        all_latency, all_rows = query_latency(conn, ALL_PHOTOGRAPHER_ROWS, max(5, args.queries // 5))
        plan = [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + PHOTOGRAPHERS)]
        photographers = conn.execute(
            "SELECT customers FROM ltv.segment_ltv WHERE vendor_category = 'photographer' AND grouping_level = 'vendor_category'"
        ).fetchone()[0]
        view_rows = {view: conn.execute(f"SELECT count(*) FROM ltv.{view}").fetchone()[0] for view in views}

    load_end = os.getloadavg()[0]
    med = {view: statistics.median(times) for view, times in concurrent.items()}
    pair = med["customer_ltv_snapshot"] + med["segment_ltv"]
    with_deps = pair + med["unit_economics"]
    print()
    print("## BI views (issue 4)")
    print()
    print(f"Command: `LTV_HOME={os.environ.get('LTV_HOME', '')} .venv/bin/python benchmarks/bench_views.py"
          + "".join(f" {a}" for a in sys.argv[1:]) + "`")
    print()
    print(f"Run {started_at}, {os.cpu_count()} vCPUs shared with other engineers' work; load average "
          f"{load_start:.1f} at the start, {load_end:.1f} at the end.")
    print()
    print(
        f"Data: {customers:,} suppliers, {events:,} revenue events, {fits} active model fits. "
        f"Settings: work_mem {settings.get('work_mem')} kB (refresh_views raises it to 256 MB), "
        f"jit {settings.get('jit')}, max_parallel_workers_per_gather {settings.get('max_parallel_workers_per_gather')}."
    )
    print()
    print("| what | seconds | × bare aggregate |")
    print("|---|---:|---:|")
    print(f"| bare `{BARE}` (CREATE TEMP TABLE AS, best of {len(bare_before) + len(bare_after)}) | {bare:.2f} | 1.0 |")
    for view in views:
        how = HOW_REFRESHED.get(view, "refresh CONCURRENTLY")
        print(f"| {how} `{view}` ({view_rows[view]:,} rows) | {med[view]:.2f} | {med[view] / bare:.1f} |")
    print(f"| **customer_ltv_snapshot + segment_ltv** (target ≤ 3×) | **{pair:.2f}** | **{pair / bare:.1f}** |")
    print(f"| … + unit_economics (segment_ltv reads its CAC) | {with_deps:.2f} | {with_deps / bare:.1f} |")
    for view, seconds in first_fill.items():
        print(f"| first fill of the empty `{view}` | {seconds:.2f} | {seconds / bare:.1f} |")
    for name, seconds in components.items():
        print(f"| `SELECT count(*) FROM {name}` alone | {seconds:.2f} | {seconds / bare:.1f} |")
    print()
    print(
        f"Photographers by country and channel from `ltv.segment_ltv` ({n_rows} rows covering "
        f"{photographers:,} photographers): p50 {pct(latency, 50) * 1e3:.2f} ms, p99 {pct(latency, 99) * 1e3:.2f} ms, "
        f"max {max(latency) * 1e3:.2f} ms over {len(latency)} runs (target ≤ 200 ms). Every photographer row of every "
        f"breakdown ({all_rows:,} rows): p50 {pct(all_latency, 50) * 1e3:.1f} ms, max {max(all_latency) * 1e3:.1f} ms."
    )
    print()
    print("```")
    print("\n".join(plan))
    print("```")


if __name__ == "__main__":
    main()
