"""Benchmark for issue 4's live statistics: what the statement triggers cost at ingest, and how
fast ``ltv.customer_ltv(id)`` answers from them.

    LTV_HOME=/work/main/.ltv/bench-live .venv/bin/python benchmarks/bench_live_stats.py \
        --suppliers 200000 [--reps 3] [--ingest-reps 1] [--latency-calls 2000] [--stop]

    # or on the shared benchmark database set up by benchmarks/bulk_load.py:
    LTV_HOME=/work/main/.ltv/bench-1m .venv/bin/python benchmarks/bench_live_stats.py \
        --suppliers 1000000 --start 2011-01-01 --reuse --no-refit --reps 1 --ingest-reps 0

What it does, in one private cluster (``LTV_HOME``; a fresh database migrated with ``ltv-db
migrate``, or with ``--reuse`` the database ``bulk_load.py`` prepared):

1. Generates the synthetic marketplace (``ltv_db.demo_data.write_csv``; cached under
   ``benchmarks/out/``) and loads plans, FX, customers and subscriptions with plain SQL (COPY
   into staging, then INSERT … SELECT; ``bulk_load.load_reference_data``); resolves every event
   to its final ``revenue_events`` row in an unlogged staging table, in time order, and creates
   the monthly partitions. With ``--reuse`` all of this is already there.
2. **Bulk load** into an empty ``revenue_events``: ``INSERT … SELECT`` of every event, and a
   ``COPY … FROM STDIN`` of the same rows, with the live-statistics INSERT trigger enabled and
   disabled (``ALTER TABLE … DISABLE TRIGGER live_stats_insert``), alternating, ``--reps`` times
   each. Between runs the events are truncated (which rebuilds the statistics from the
   subscriptions) and the statistics table vacuumed.
3. **Ingestion**: ``ltv_db.ingest.ingest_file`` of the events file, trigger on and off.
4. **Incremental load**: with everything before the last month loaded (statistics rebuilt), the
   last month's events — mostly customers with history — inserted with the trigger on and off;
   with ``--ingest-reps``, also through ``ltv_db.ingest.ingest_file`` (a CSV of those events:
   the shape of a month's payments file), their ledger keys deleted between runs.
5. Checks ``ltv.verify_customer_stats()`` is empty after the first trigger-maintained run of each.
6. **Latency**: refits the models (``ltv.refit_models``), then times ``SELECT * FROM
   ltv.customer_ltv(id)`` for ``--latency-calls`` random customers on one connection (after 100
   warm-up calls), client-side round trip over the Unix socket: p50 / p95 / p99 / max.

Every timing is wall clock and, since the machine may be shared, the server backend's own CPU
time. Results are printed and written to ``benchmarks/RESULTS.md`` (section "Live statistics
(issue 4)"; a rerun replaces that section only).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, datetime
from functools import partial
from pathlib import Path

import psycopg
import psycopg.sql

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Live statistics (issue 4)"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


EVENT_COLUMNS = (
    "customer_id, occurred_at, event_id, kind, amount_minor, currency, fx_rate, amount_base, "
    "source, external_id, subscription_id, batch_id"
)


def cli(*args: str) -> str:
    exe = Path(sys.executable).with_name("ltv-db")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=REPO, env=os.environ, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"ltv-db {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


# -- data ----------------------------------------------------------------------------------------
# Generation, staging and loading are shared with the other benchmarks (benchmarks/bulk_load.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_load  # noqa: E402


def generate_csv(suppliers: int, seed: int, start: date | None, signup_growth: float | None = None) -> Path:
    return bulk_load.generate_csv(bulk_load.config(suppliers, seed, start, signup_growth=signup_growth))


def load_reference_data(conn: psycopg.Connection, csv_dir: Path) -> None:
    """Plans, FX, spend, customers, subscriptions (with the triggers); every event in bench.events."""
    log("loading plans, fx rates, customers, subscriptions")
    bulk_load.load_reference_data(conn, csv_dir)
    conn.execute("VACUUM ANALYZE ltv.customer_stats, ltv.customers, ltv.subscriptions")


# -- timing helpers ------------------------------------------------------------------------------
class Clock:
    """Wall-clock and server CPU time of one connection's backend.

    The machine these figures come from is shared; wall time swings with everyone else's load,
    so the backend's own CPU time (user + system, from /proc/<pid>/stat — the private cluster
    runs on this host) is reported beside it: it counts the work the statement made the server
    do. None when the server is remote.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.tick = os.sysconf("SC_CLK_TCK")

    def cpu(self) -> float | None:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / self.tick

    def measure(self, action) -> tuple[float, float | None]:
        cpu0, wall0 = self.cpu(), time.perf_counter()
        action()
        cpu1, wall1 = self.cpu(), time.perf_counter()
        return wall1 - wall0, (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None


def set_trigger(conn: psycopg.Connection, enabled: bool) -> None:
    action = "ENABLE" if enabled else "DISABLE"
    conn.execute(f"ALTER TABLE ltv.revenue_events {action} TRIGGER live_stats_insert")


def settle(conn: psycopg.Connection) -> None:
    conn.execute("VACUUM ANALYZE ltv.customer_stats")
    conn.execute("CHECKPOINT")


def copy_rows(conn: psycopg.Connection, rows_sql: str) -> bytes:
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(f"COPY ({rows_sql}) TO STDOUT") as out:
        for chunk in out:
            buffer += chunk
    return bytes(buffer)


def copy_in(conn: psycopg.Connection, data: bytes) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY ltv.revenue_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
        view = memoryview(data)
        for offset in range(0, len(view), 1 << 20):
            copy.write(view[offset:offset + (1 << 20)])


def empty_events(conn: psycopg.Connection) -> None:
    # the TRUNCATE trigger rebuilds the statistics (from the subscriptions alone)
    conn.execute("TRUNCATE ltv.revenue_events, ltv.revenue_event_keys")
    settle(conn)


def median_pair(runs: list[tuple[float, float | None]]) -> tuple[float, float | None]:
    wall = statistics.median(r[0] for r in runs)
    cpus = [r[1] for r in runs if r[1] is not None]
    return wall, (statistics.median(cpus) if cpus else None)


# -- scenarios -----------------------------------------------------------------------------------
def alternate(conn: psycopg.Connection, reps: int, label: str, run, reset) -> dict[str, list]:
    """Run ``run()`` with the trigger off and on, alternating which goes first, ``reps`` times
    each; ``reset()`` restores the starting state after every run."""
    runs: dict[str, list] = {"off": [], "on": []}
    for rep in range(reps):
        for enabled in (False, True) if rep % 2 == 0 else (True, False):
            key = "on" if enabled else "off"
            set_trigger(conn, enabled)
            runs[key].append(Clock(conn).measure(run))
            wall, cpu = runs[key][-1]
            log(f"  {label}, trigger {key}: {wall:.1f} s wall, {cpu if cpu is None else round(cpu, 1)} s server CPU")
            set_trigger(conn, True)
            if enabled and rep == 0:
                diffs = conn.execute("SELECT count(*) FROM ltv.verify_customer_stats()").fetchone()[0]
                log(f"  verify_customer_stats(): {diffs} differences")
                assert diffs == 0
            reset()
    return runs


def bench_bulk(conn: psycopg.Connection, reps: int) -> dict:
    n_events, n_customers = conn.execute("SELECT count(*), count(DISTINCT customer_id) FROM bench.events").fetchone()
    log(f"bulk load: {n_events:,} events over {n_customers:,} customers, {reps} reps each way")
    empty_events(conn)
    insert = partial(conn.execute, f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.events")
    data = copy_rows(conn, f"SELECT {EVENT_COLUMNS} FROM bench.events")
    result = {"events": n_events, "customers": n_customers}
    result["insert"] = alternate(conn, reps, "INSERT … SELECT", insert, partial(empty_events, conn))
    result["copy"] = alternate(conn, reps, "COPY FROM STDIN", partial(copy_in, conn, data), partial(empty_events, conn))
    return result


def bench_ingest(conn: psycopg.Connection, csv_dir: Path, reps: int) -> dict:
    """The real ingestion path (ltv_db.ingest.ingest_file) of the events file."""
    from ltv_db.ingest import ingest_file

    log(f"ingest_file(events.csv), {reps} reps each way")

    def run() -> None:
        result = ingest_file(conn, "events", csv_dir / "events.csv")
        assert result.rejected == 0, result

    return {"runs": alternate(conn, reps, "ingest_file", run, partial(empty_events, conn))}


def write_month_csv(csv_dir: Path, split: datetime) -> Path:
    """The events file's rows dated at or after ``split``, as a file of their own."""
    month = csv_dir / f"events_since_{split:%Y%m%d}.csv"
    with (csv_dir / "events.csv").open(newline="") as source, month.open("w", newline="") as target:
        rows = csv.reader(source)
        header = next(rows)
        at = header.index("occurred_at")
        writer = csv.writer(target)
        writer.writerow(header)
        writer.writerows(row for row in rows if datetime.fromisoformat(row[at]) >= split)
    return month


def bench_incremental(conn: psycopg.Connection, reps: int, csv_dir: Path, ingest_reps: int) -> dict:
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

    def reset() -> None:
        # take the month out again without the triggers, then repair those customers' rows
        conn.execute("ALTER TABLE ltv.revenue_events DISABLE TRIGGER live_stats_delete")
        conn.execute("DELETE FROM ltv.revenue_events WHERE occurred_at >= %s", (split,))
        conn.execute("ALTER TABLE ltv.revenue_events ENABLE TRIGGER live_stats_delete")
        conn.execute("SELECT ltv.refresh_customer_stats(%s)", (ids,))
        conn.execute("VACUUM ANALYZE ltv.revenue_events")
        settle(conn)

    insert = partial(conn.execute, f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) "
                                   f"SELECT {EVENT_COLUMNS} FROM bench.last_month")
    result = {"events": n_events, "customers": n_customers, "with_history": with_history,
              "runs": alternate(conn, reps, "last month INSERT … SELECT", insert, reset)}
    if ingest_reps:
        from ltv_db.ingest import ingest_file

        month = write_month_csv(csv_dir, split)

        def ingest_month() -> None:
            loaded = ingest_file(conn, "events", month)
            assert loaded.rejected == 0 and loaded.loaded == n_events, loaded

        def reset_ingested() -> None:  # the ledger forgets the month too, so it loads again
            conn.execute("DELETE FROM ltv.revenue_event_keys WHERE occurred_at >= %s", (split,))
            conn.execute("VACUUM ANALYZE ltv.revenue_event_keys")  # no dead keys piling up run after run
            reset()

        result["ingest_runs"] = alternate(conn, ingest_reps, "last month ingest_file", ingest_month, reset_ingested)
    return result


def bench_latency(conn: psycopg.Connection, calls: int, refit: bool = True) -> dict:
    if conn.execute("SELECT to_regclass('bench.last_month') IS NOT NULL").fetchone()[0]:
        # after bench_incremental everything but the last month is loaded
        conn.execute(f"INSERT INTO ltv.revenue_events ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM bench.last_month")
        conn.execute("DROP TABLE bench.last_month")
        conn.execute("VACUUM ANALYZE")
    refit_s = None
    if refit or not conn.execute("SELECT count(*) FROM ltv.model_fits WHERE is_active").fetchone()[0]:
        log("refitting models (ltv.refit_models)")
        started = time.perf_counter()
        fits = conn.execute("SELECT model, segment, activated FROM ltv.refit_models(now(), 500)").fetchall()
        refit_s = time.perf_counter() - started
        log(f"  {len(fits)} fits, {sum(1 for f in fits if f[2])} activated, in {refit_s:.0f} s")
    active = conn.execute("SELECT count(*) FROM ltv.model_fits WHERE is_active").fetchone()[0]
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
            "active": active, "refit_s": refit_s,
            "customers": len(ids),
            "events": conn.execute("SELECT count(*) FROM ltv.revenue_events").fetchone()[0]}


# -- report --------------------------------------------------------------------------------------
def write_results(args: argparse.Namespace, context: dict, bulk: dict, ingest: dict | None, incremental: dict,
                  latency: dict) -> str:
    def row(label: str, events: str, customers: str, runs: dict[str, list]) -> str:
        off_wall, off_cpu = median_pair(runs["off"])
        on_wall, on_cpu = median_pair(runs["on"])
        cpu_cells = (f"{off_cpu:.1f} | {on_cpu:.1f} | **{on_cpu / off_cpu:.2f}×**"
                     if off_cpu and on_cpu else "– | – | –")
        return (f"| {label} | {events} | {customers} | {off_wall:.1f} | {on_wall:.1f} | {on_wall / off_wall:.2f}× "
                f"| {cpu_cells} |")

    def all_runs(runs: dict[str, list]) -> str:
        def fmt(pairs: list) -> str:
            return ", ".join(f"{w:.1f}/{c:.1f}" if c is not None else f"{w:.1f}" for w, c in pairs)
        return f"without {fmt(runs['off'])}; with {fmt(runs['on'])}"

    n_ev, n_cu = f"{bulk['events']:,}", f"{bulk['customers']:,}"
    command = (f"LTV_HOME={os.environ.get('LTV_HOME', '.ltv/bench-live')} .venv/bin/python "
               f"benchmarks/bench_live_stats.py --suppliers {args.suppliers} --seed {args.seed}"
               + (f" --start {args.start}" if args.start else "")
               + (f" --signup-growth {args.signup_growth:g}" if args.signup_growth is not None else "")
               + f" --reps {args.reps} --ingest-reps {args.ingest_reps} --latency-calls {args.latency_calls}"
               + (" --reuse --no-refit" if args.reuse else ""))
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{os.cpu_count()} CPUs shared with other work — load average {context['load_start']} at the start, "
        f"{context['load_end']} at the end; PostgreSQL 15 private cluster, default ltv_db settings, fsync on). "
        f"Synthetic marketplace from `ltv_db.demo_data` (seed {args.seed}"
        + (f", history from {args.start}" if args.start else "") + "); plans, FX, customers and subscriptions "
        "loaded first, so every customer already has a statistics row"
        + (" (the shared benchmark database set up by `benchmarks/bulk_load.py`; its events are taken out "
           "and reloaded by the runs below)." if args.reuse else "."),
        "",
        "**Ingest with vs without the live-statistics trigger** (target ≤ 1.5×). Baseline: `live_stats_insert` "
        "disabled with `ALTER TABLE … DISABLE TRIGGER`; same run, alternating which goes first, median of "
        f"{args.reps} runs each way (ingest_file: {args.ingest_reps}). Wall time swings with the machine's other "
        "load, so the server backend's own CPU time (user + system of its process) is given beside it — the "
        "steadier measure of the work the trigger adds. Seconds:",
        "",
        "| load | events | customers | wall without | wall with | wall ratio | CPU without | CPU with | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        row("bulk `INSERT … SELECT` into empty `revenue_events`", n_ev, n_cu, bulk["insert"]),
        row("bulk `COPY … FROM STDIN` (text) into empty `revenue_events`", n_ev, n_cu, bulk["copy"]),
    ]
    if ingest:
        lines.append(row("`ltv_db.ingest.ingest_file(events.csv)` (validation, FX, idempotency ledger)",
                         n_ev, n_cu, ingest["runs"]))
    lines += [
        row("last month `INSERT … SELECT` onto the earlier history", f"{incremental['events']:,}",
            f"{incremental['customers']:,} ({incremental['with_history']:,} with history)", incremental["runs"]),
    ]
    if "ingest_runs" in incremental:
        lines.append(row("last month through `ltv_db.ingest.ingest_file` onto the earlier history",
                         f"{incremental['events']:,}", f"{incremental['customers']:,}", incremental["ingest_runs"]))
    lines += [
        "",
        "All runs, wall/CPU seconds — INSERT: " + all_runs(bulk["insert"]) + ". COPY: " + all_runs(bulk["copy"])
        + (". ingest_file: " + all_runs(ingest["runs"]) if ingest else "")
        + ". Last month: " + all_runs(incremental["runs"]) + ". `ltv.verify_customer_stats()` returned no "
        "difference after the first trigger-maintained run of each load.",
        "",
        f"**`ltv.customer_ltv(id)` latency** (target p99 ≤ 5 ms): {latency['calls']:,} random customers of "
        f"{latency['customers']:,} ({latency['events']:,} events), one connection, after 100 warm-up calls, "
        f"client-side round trip over the Unix socket, {latency['active']} active fits"
        + (f" (`ltv.refit_models` took {latency['refit_s']:.0f} s):" if latency["refit_s"] is not None
           else " (fitted when the database was set up):"),
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
    parser.add_argument("--start", type=date.fromisoformat, default=None,
                        help="first day of the marketplace's history (DemoConfig.start)")
    parser.add_argument("--signup-growth", type=float, default=None,
                        help="yearly growth of the signup rate, as given to benchmarks/bulk_load.py (the "
                             "20 M-event database is built with 0)")
    parser.add_argument("--reuse", action="store_true",
                        help="use the database as set up by benchmarks/bulk_load.py (bench.events present) "
                             "instead of a fresh one; it ends with every event loaded again")
    parser.add_argument("--no-refit", action="store_true",
                        help="keep the active model fits for the latency test (refit only if there are none)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--ingest-reps", type=int, default=1,
                        help="ingest_file runs each way, of the whole file and of the last month (0: skip)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    parser.add_argument("--latency-only", action="store_true",
                        help="with --reuse: only the customer_ltv(id) latency test on the data as it is; printed")
    parser.add_argument("--stop", action="store_true", help="stop the private cluster at the end")
    args = parser.parse_args()
    if not os.environ.get("LTV_HOME") and not os.environ.get("LTV_DATABASE_URL"):
        os.environ["LTV_HOME"] = str(REPO / ".ltv" / "bench-live")

    from ltv_db.db import resolve_database_url

    csv_dir = generate_csv(args.suppliers, args.seed, args.start, args.signup_growth)
    url = resolve_database_url()  # starts the private cluster when LTV_DATABASE_URL is unset
    if args.reuse:
        with psycopg.connect(url) as conn:
            customers, staged = conn.execute(
                "SELECT (SELECT count(*) FROM ltv.customers), to_regclass('bench.events') IS NOT NULL").fetchone()
        if customers != args.suppliers or not staged:
            raise SystemExit(f"--reuse: the database holds {customers:,} customers (want {args.suppliers:,}) and "
                             f"{'a' if staged else 'no'} bench.events table; set it up with benchmarks/bulk_load.py")
    else:
        dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        maintenance = psycopg.conninfo.make_conninfo(url, dbname="postgres")
        with psycopg.connect(maintenance, autocommit=True) as conn:  # a fresh database every run
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                psycopg.sql.Identifier(dbname)))
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(dbname)))
        cli("migrate")
    bulk_load.pause_cron_jobs(url)  # no scheduled view refresh or refit during the timings
    context = {"load_start": f"{os.getloadavg()[0]:.1f}"}
    if args.latency_only:
        with psycopg.connect(url, autocommit=True) as conn:
            latency = bench_latency(conn, args.latency_calls, refit=not args.no_refit)
        print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {context['load_start']} → "
              f"{os.getloadavg()[0]:.1f}: {latency}")
        return
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if not args.reuse:
                load_reference_data(conn, csv_dir)
            bulk = bench_bulk(conn, args.reps)
            ingest = bench_ingest(conn, csv_dir, args.ingest_reps) if args.ingest_reps else None
            incremental = bench_incremental(conn, args.reps, csv_dir, args.ingest_reps)
            latency = bench_latency(conn, args.latency_calls, refit=not args.no_refit)
        context["load_end"] = f"{os.getloadavg()[0]:.1f}"
        if args.no_write:
            print(bulk, ingest, incremental, latency, sep="\n")
        else:
            print(write_results(args, context, bulk, ingest, incremental, latency))
    finally:
        if args.stop:
            cli("db", "stop")


if __name__ == "__main__":
    main()
