"""What one ingested event costs, part by part, and what would change without a part.

    .venv/bin/python benchmarks/bench_ingest_parts.py [--events 1000000] [--suppliers 450000] [--seed 1]
                                                      [--reps 2]

Loads the first ``--events`` lines of ``bench_ingest.py``'s events file (same data, same cache
under ``benchmarks/out/``) in one transaction through :func:`ltv_db.ingest.ingest_file`, into a
fresh copy of a database holding the reference data (a private cluster, durable settings), once
per variant and repetition, the variants alternating so that the machine's drift spreads
evenly:

- ``as shipped``;
- ``free validation``: the timestamp and amount checks replaced by the bare casts — what native
  parsing could at best achieve. Unsafe on bad input (a bad value would abort the batch); the
  file is clean, and this variant exists only here, to measure;
- ``no live statistics``: the ``live_stats_insert`` trigger disabled on the copy;
- ``both`` of the last two.

For each run: the ingesting backend's CPU time (``/proc``, same host only), the time of each
ingestion step (the ``ltv_db.ingest`` phase log), and the time of the trigger functions
(``pg_stat_user_functions`` with ``track_functions = 'all'``).

Then the design's floor, on the last copy: a plain COPY of the file into eight text columns
(``bench_ingest.baseline_copy``), against the two indexed inserts every event needs whatever
the parsing — the rows just loaded copied by ``INSERT … SELECT`` into empty copies of the
ledger and of the events table (``LIKE … INCLUDING ALL``: their primary keys and CHECKs; no
triggers, no partition routing). Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import (  # noqa: E402
    REFERENCE_ENTITIES,
    baseline_copy,
    cli,
    cpu_seconds,
    events_file,
    log,
    server,
)

from ltv_db import ingest  # noqa: E402

VARIANTS = ("as shipped", "free validation", "no live statistics", "both")
RUN_DB = "ingest_parts"  # the copy each run loads into, next to the database holding the reference data
# the validating expressions of stage_events and the bare casts that replace them in "free validation"
FREE_VALIDATION = {
    "ltv.parse_timestamptz(txt_occurred_at)": "txt_occurred_at::timestamptz",
    "ltv.amount_problem(txt_amount, cur.exponent)": "NULL::text",
}


class PhaseLog(logging.Handler):
    """Collects ``ltv_db.ingest``'s phase records: (step, seconds)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seconds: dict[str, float] = defaultdict(float)

    def emit(self, record: logging.LogRecord) -> None:
        name, seconds = record.args  # type: ignore[misc]
        self.seconds[str(name)] += float(seconds)


@contextlib.contextmanager
def free_validation(enabled: bool) -> Iterator[None]:
    """While active, stage_events builds its statement with the bare casts (measurement only)."""
    original = ingest.stage_sql

    def without_checks(layout, columns, parsed, checks, outputs, dedupe=None):  # type: ignore[no-untyped-def]
        for expression, cast in FREE_VALIDATION.items():
            if expression not in parsed:
                raise SystemExit(f"stage_events no longer uses {expression}: update FREE_VALIDATION")
            parsed = parsed.replace(expression, cast)
        return original(layout, columns, parsed, checks, outputs, dedupe)

    if enabled:
        ingest.stage_sql = without_checks
    try:
        yield
    finally:
        ingest.stage_sql = original


def database_url(url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(url, dbname=name)


def fresh_copy(admin_url: str, template: str, variant: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(RUN_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(RUN_DB),
                                                                      sql.Identifier(template)))
    with psycopg.connect(database_url(admin_url, RUN_DB), autocommit=True) as conn:
        if variant in ("no live statistics", "both"):
            conn.execute("ALTER TABLE ltv.revenue_events DISABLE TRIGGER live_stats_insert")
        conn.execute("CHECKPOINT")


def run_once(url: str, path: Path, variant: str) -> dict[str, float]:
    """One ingest of the file; seconds of backend CPU, of each step and of each trigger function."""
    phases = PhaseLog()
    logger = logging.getLogger("ltv_db.ingest")
    logger.addHandler(phases)
    logger.setLevel(logging.DEBUG)
    try:
        with psycopg.connect(url) as conn:
            conn.execute("SET track_functions = 'all'")
            conn.commit()
            pid = conn.info.backend_pid
            cpu_before = cpu_seconds(pid)
            with free_validation(variant in ("free validation", "both")):
                result = ingest.ingest_file(conn, "events", path)
            cpu = (cpu_seconds(pid) or 0.0) - (cpu_before or 0.0)
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.commit()
    finally:
        logger.removeHandler(phases)
    if result.loaded != result.rows_read:
        raise SystemExit(f"{variant}: {result.rows_read:,} lines read but {result.loaded:,} loaded")
    with psycopg.connect(url) as conn:
        functions = dict(conn.execute(
            "SELECT funcname, total_time / 1000 FROM pg_stat_user_functions "
            "WHERE funcname IN ('live_stats_after_insert', 'mrr_stale_after_change')").fetchall())
    return {"backend CPU": cpu, **phases.seconds,
            **{f"trigger {name}": float(seconds) for name, seconds in functions.items()}}


def design_floor(url: str, path: Path) -> dict[str, float]:
    """Backend CPU seconds of the plain COPY and of the two indexed inserts (see the docstring)."""
    _, copy_cpu = baseline_copy(url, path)
    seconds = {"plain COPY into eight text columns": copy_cpu or 0.0}
    inserts = {
        "ledger rows into a copy of ltv.revenue_event_keys":
            "INSERT INTO floor_keys SELECT * FROM ltv.revenue_event_keys",
        "event rows into a copy of ltv.revenue_events":
            "INSERT INTO floor_events SELECT * FROM ltv.revenue_events",
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor_keys (LIKE ltv.revenue_event_keys INCLUDING ALL)")
        conn.execute("CREATE TABLE floor_events (LIKE ltv.revenue_events INCLUDING ALL)")
        pid = conn.info.backend_pid
        for step, statement in inserts.items():
            conn.execute("CHECKPOINT")
            before = cpu_seconds(pid) or 0.0
            conn.execute(statement)
            seconds[step] = (cpu_seconds(pid) or 0.0) - before
    return seconds


def report(n: int, runs: dict[str, list[dict[str, float]]], floor: dict[str, float]) -> str:
    def per_event(seconds: list[float]) -> str:
        return ", ".join(f"{s / n * 1e6:.1f}" for s in seconds) + " µs"

    shipped = statistics.median(r["backend CPU"] for r in runs["as shipped"])
    lines = [f"{n:,} events, one transaction each; backend CPU per event, every repetition:", "",
             "| variant | backend CPU per event | median vs as shipped |", "|---|---:|---:|"]
    for variant, results in runs.items():
        median = statistics.median(r["backend CPU"] for r in results)
        lines.append(f"| {variant} | {per_event([r['backend CPU'] for r in results])} | "
                     f"{(median / shipped - 1) * 100:+.0f} % |")
    lines += ["", "As shipped, by step (the triggers run inside `insert events`):", "",
              "| step | per event |", "|---|---:|"]
    steps = [k for k in runs["as shipped"][0] if k != "backend CPU"]
    for step in steps:
        lines.append(f"| {step} | {per_event([r.get(step, 0.0) for r in runs['as shipped']])} |")
    copy_seconds, *insert_seconds = floor.values()
    lines += ["", "The design's floor (backend CPU per row):", "", "| step | per row |", "|---|---:|"]
    lines += [f"| {step} | {seconds / n * 1e6:.1f} µs |" for step, seconds in floor.items()]
    lines += ["", f"3× the COPY on two cores allows {6 * copy_seconds / n * 1e6:.1f} µs of CPU per event; "
              f"the two inserts alone take {sum(insert_seconds) / n * 1e6:.1f} µs."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--suppliers", type=int, default=450_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2, help="runs of each variant")
    args = parser.parse_args()

    directory, path = events_file(args.events, args.suppliers, args.seed)
    url, cluster = server(keep=False)
    try:
        from ltv_db.migrations import upgrade_head

        upgrade_head(url)
        for entity in REFERENCE_ENTITIES:
            done = cli(url, "ingest", entity, str(directory / f"{entity}.csv"))
            if done.returncode != 0:
                raise SystemExit(f"loading {entity} failed:\n{done.stdout}{done.stderr}")
        log("reference data loaded")
        admin_url = database_url(url, "postgres")
        template = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for rep in range(args.reps):
            for variant in VARIANTS:
                fresh_copy(admin_url, str(template), variant)
                started = time.perf_counter()
                runs[variant].append(run_once(database_url(url, RUN_DB), path, variant))
                log(f"{variant} ({rep + 1}/{args.reps}): {time.perf_counter() - started:.1f} s, "
                    f"backend CPU {runs[variant][-1]['backend CPU']:.1f} s")
        floor = design_floor(database_url(url, RUN_DB), path)
        log("design floor: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in floor.items()))
        print(report(args.events, runs, floor))
    finally:
        if cluster is not None:
            cluster.destroy()  # type: ignore[attr-defined]
            shutil.rmtree(cluster.home, ignore_errors=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
