"""Benchmark for issue 2's ingestion: ``ltv-db ingest events`` on a 5,000,000-event CSV against a
plain COPY of the same file, in the same run.

    .venv/bin/python benchmarks/bench_ingest.py [--events 5000000] [--suppliers 450000] [--seed 1]
                                                [--jobs 2,1] [--reingest] [--keep] [--no-results]

What it does:

1. Data: the synthetic marketplace (``ltv_db.demo_data.write_csv``, cached under
   ``benchmarks/out/ingest_<suppliers>_<seed>/``), its events file cut to exactly ``--events``
   lines (events are in time order, so the cut keeps every reference valid).
2. Server: a fresh private cluster (``LocalPostgres`` under a temporary home in ``.ltv/``,
   durable settings: ``ephemeral=False``, i.e. fsync and full-page writes on), or the database
   in ``LTV_DATABASE_URL`` (a scratch database: the benchmark loads into it), migrated to head.
   Plans, FX rates, acquisition spend, customers and subscriptions are loaded first with
   ``ltv-db ingest`` (timed, but not the subject).
3. (a) Baseline: ``COPY … FROM STDIN`` of the events file, in 1 MB blocks, into an
   unconstrained table of eight text columns — what PostgreSQL's own COPY costs for these bytes. (b) ``ltv-db ingest events FILE
   --jobs N`` end to end in a subprocess, for each N of ``--jobs`` (the events are truncated
   between two runs): wall time, events/s, the ratio to (a), and the peak RSS of that process
   (``/usr/bin/time``). While it runs, ``pg_stat_activity`` is sampled every 0.2 s to attribute
   the ingesting backends' time to the ingestion's statements, and their CPU time is read from
   ``/proc`` (same host only). A ``CHECKPOINT`` precedes each measured step.
4. ``--reingest`` also times ingesting the same file again (every row a duplicate), with the
   last N.

Prints a Markdown snippet and (unless ``--no-results``) replaces the "Ingest (issue 2)" section
of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg

from ltv_db.db import APPLICATION_NAME
from ltv_db.ingest import CHUNK_APPLICATION_NAME, CHUNK_SIZE, EVENT_COLUMNS

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Ingest (issue 2)"
REFERENCE_ENTITIES = ("plans", "fx_rates", "acquisition_spend", "customers", "subscriptions")
BASELINE_TABLE = "bench_copy_baseline"

# statement prefixes (as pg_stat_activity shows them) → the ingestion step they belong to
PHASES = (
    ("COPY pg_temp.ingest_raw_lines", "copy raw lines"),
    ("CREATE TEMP TABLE ingest_staged", "stage (parse + validate)"),
    ("CREATE TEMP TABLE ingest_groups", "group good rows"),
    ("CREATE TEMP TABLE ingest_fx", "FX rates"),
    ("ANALYZE pg_temp.", "analyze staged rows"),
    ("INSERT INTO ltv.ingest_rejects", "write rejects"),
    ("SELECT count(*) FILTER (WHERE ltv.create_revenue_partition", "partitions"),
    ("INSERT INTO ltv.revenue_event_keys", "claim keys (ledger)"),
    ("INSERT INTO ltv.revenue_events", "insert events"),
    ("CREATE TEMP TABLE ingest_unclaimed", "classify repeats"),
    ("CREATE TEMP TABLE ingest_verdicts", "classify repeats"),
    ("COMMIT", "commit"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- data ------------------------------------------------------------------------------------------
def events_file(n_events: int, suppliers: int, seed: int) -> tuple[Path, Path]:
    """(directory with the reference CSVs, an events CSV of exactly n_events rows)."""
    from ltv_db import demo_data

    directory = REPO / "benchmarks" / "out" / f"ingest_{suppliers}_{seed}"
    if not (directory / "truth.json").exists():
        log(f"generating {suppliers:,} suppliers into {directory}")
        config = demo_data.DemoConfig(suppliers=suppliers, seed=seed, as_of=date(2026, 11, 1))
        demo_data.write_csv(config, directory, workers=2)
    target = directory / f"events_{n_events}.csv"
    if not target.exists():
        with (directory / "events.csv").open("rb") as src, target.open("wb") as dst:
            dst.write(src.readline())  # header
            for written, line in enumerate(src):
                if written == n_events:
                    break
                dst.write(line)
            else:
                target.unlink()
                raise SystemExit(f"only {written + 1:,} events for {suppliers:,} suppliers: raise --suppliers")
    return directory, target


# -- server ----------------------------------------------------------------------------------------
def server(keep: bool) -> tuple[str, object | None]:
    """(database URL, the private cluster to dispose of or None)."""
    url = os.environ.get("LTV_DATABASE_URL")
    if url:
        return url, None
    from ltv_db.cluster import LocalPostgres

    (REPO / ".ltv").mkdir(exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=REPO / ".ltv"))
    cluster = LocalPostgres(home, ephemeral=False)
    log(f"starting a private cluster in {home} (durable settings)")
    cluster.start()
    return cluster.url("ltv"), cluster


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("ltv-db")
    env = {**os.environ, "LTV_DATABASE_URL": url}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=REPO, env=env, check=False)


def checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def warm(path: Path) -> None:
    """Read the file once so both contenders find it in the page cache."""
    with path.open("rb") as fh:
        while fh.read(8 << 20):
            pass


# -- measurements ----------------------------------------------------------------------------------
def baseline_copy(url: str, path: Path) -> tuple[float, float | None]:
    """A plain COPY of the file into an unconstrained table of eight text columns, fed in 1 MB
    blocks: (wall seconds, the backend's CPU seconds or None when it is on another host)."""
    columns = ", ".join(f"{name} text" for name in EVENT_COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
        conn.execute(f"CREATE TABLE {BASELINE_TABLE} ({columns})")
        conn.execute("CHECKPOINT")
        pid = conn.info.backend_pid
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY {BASELINE_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, \
                path.open("rb") as source:
            while block := source.read(CHUNK_SIZE):
                copy.write(block)
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(pid)
        rows = conn.execute(f"SELECT count(*) FROM {BASELINE_TABLE}").fetchone()[0]
        conn.execute(f"DROP TABLE {BASELINE_TABLE}")
    log(f"baseline COPY: {rows:,} rows in {elapsed:.1f} s")
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return elapsed, cpu


@dataclass
class Sampler:
    """Polls pg_stat_activity for the ingesting backends (the command's own connection and, with
    --jobs, its chunk connections): their time per statement, summed, and their CPU time."""

    url: str
    interval: float = 0.2
    phases: Counter[str] = field(default_factory=Counter)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def backend_cpu(self) -> float | None:
        return sum(self.cpu_by_pid.values()) if self.cpu_by_pid else None

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            last = time.perf_counter()
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT pid, state, query FROM pg_stat_activity "
                    "WHERE application_name = ANY (%s) AND backend_type = 'client backend'",
                    ([APPLICATION_NAME, CHUNK_APPLICATION_NAME],),
                ).fetchall()
                now = time.perf_counter()
                for pid, state, query in rows:
                    if state == "idle":  # between chunks, or the coordinating connection: no batch open
                        continue
                    label = "other (client side, small statements)"
                    if state == "active":
                        label = next((name for prefix, name in PHASES if query.lstrip().startswith(prefix)),
                                     "other statements")
                    self.phases[label] += now - last
                    seconds = cpu_seconds(pid)
                    if seconds is not None:
                        self.cpu_by_pid[pid] = seconds
                last = now
                time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    jobs: int
    wall: float
    peak_rss_mb: float
    exit_code: int
    stdout: str
    phases: Counter[str]
    backend_cpu: float | None


def run_ingest(url: str, path: Path, jobs: int) -> Run:
    """`ltv-db ingest events` in a subprocess; its peak RSS measured by /usr/bin/time, which
    forks it from a small process (a child forked from this benchmark would inherit — and
    ru_maxrss would count — this process's own resident pages until its exec)."""
    checkpoint(url)
    exe = Path(sys.executable).with_name("ltv-db")
    env = {**os.environ, "LTV_DATABASE_URL": url}
    with tempfile.TemporaryDirectory() as tmp, Sampler(url) as sampler:
        rss_file = Path(tmp) / "rss"
        started = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), str(exe), "ingest", "events",
                               str(path), "--jobs", str(jobs)], capture_output=True, text=True, cwd=REPO, env=env, check=False)
        elapsed = time.perf_counter() - started
        rss_kib = int(rss_file.read_text().strip().splitlines()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"ltv-db ingest failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return Run(jobs, elapsed, rss_kib / 1024, proc.returncode, proc.stdout, sampler.phases, sampler.backend_cpu)


def empty_events(url: str) -> None:
    """Back to the state before the first run: no events, keys or queued customers (the
    TRUNCATE trigger resets the live statistics)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE ltv.revenue_events, ltv.revenue_event_keys, ltv.mrr_stale_customers")
        conn.execute("VACUUM ANALYZE ltv.customer_stats")


# -- report ----------------------------------------------------------------------------------------
def markdown(args: argparse.Namespace, url_kind: str, path: Path, baseline: float, runs: list[Run],
             again: Run | None, reference: dict[str, float], machine: dict[str, str]) -> str:
    n = args.events
    size_mb = path.stat().st_size / 1e6
    lines = [
        SECTION,
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine['cpus']} CPUs ({machine['cpu']}), "
        f"{machine['pg']}, {url_kind}; load average before/after: {machine['load_before']} / "
        f"{machine['load_after']}.",
        "",
        "```",
        f".venv/bin/python benchmarks/bench_ingest.py --events {n} --suppliers {args.suppliers} --seed {args.seed} "
        f"--jobs {args.jobs}" + (" --reingest" if args.reingest else ""),
        "```",
        "",
        f"File: {n:,} events, {size_mb:,.0f} MB (synthetic marketplace, seed {args.seed}, time-ordered).",
        "",
        "| step | wall | events/s | vs plain COPY | peak RSS (ingesting process) |",
        "|---|---:|---:|---:|---:|",
        f"| (a) plain `COPY` into an unconstrained 8 × text table | {baseline:.1f} s | {n / baseline:,.0f} "
        "| 1.00× | – |",
    ]
    for run in runs:
        lines.append(
            f"| (b) `ltv-db ingest events --jobs {run.jobs}` (validated, FX, ledger, partitions) | {run.wall:.1f} s | "
            f"{n / run.wall:,.0f} | {run.wall / baseline:.2f}× | {run.peak_rss_mb:.0f} MB |"
        )
    if again is not None:
        lines.append(
            f"| (c) the same file again (all duplicates), `--jobs {again.jobs}` | {again.wall:.1f} s | "
            f"{n / again.wall:,.0f} | {again.wall / baseline:.2f}× | {again.peak_rss_mb:.0f} MB |"
        )
    for run in runs:
        lines += ["", f"Where the ingesting backends' time went with `--jobs {run.jobs}` (sampled from "
                  "`pg_stat_activity` every 0.2 s, summed over the backends):", "",
                  "| step | backend time |", "|---|---:|"]
        for label, seconds in sorted(run.phases.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {label} | {seconds:.1f} s |")
        if run.backend_cpu is not None:
            lines += ["", f"Backend CPU time: {run.backend_cpu:.1f} s ({run.backend_cpu / n * 1e6:.1f} µs per event)."]
    if reference:
        lines += ["", "Reference data loaded beforehand with `ltv-db ingest`: "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in reference.items()) + "."]
    return "\n".join(lines) + "\n"


NOTES_MARKER = "<!-- ingest notes: written by hand, kept when the figures above are regenerated -->"


def write_results(snippet: str) -> None:
    """Replace the measured part of this section; hand-written notes after NOTES_MARKER stay."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if SECTION in text:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        end = nxt + 1 if nxt != -1 else len(text)
        old = text[start:end]
        notes = old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else ""
        text = text[:start] + snippet + ("\n" + notes if notes else "") + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + snippet
    RESULTS.write_text(text)


def machine_facts(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        pg = conn.execute("SELECT split_part(version(), ' on ', 1)").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": str(os.cpu_count()), "cpu": cpu, "pg": f"{pg} (fsync {fsync})",
            "load_before": f"{os.getloadavg()[0]:.1f}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--suppliers", type=int, default=450_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", default="2,1",
                        help="comma-separated --jobs values of `ltv-db ingest`, each timed on an empty events table")
    parser.add_argument("--reingest", action="store_true", help="also time a re-ingest of the same file")
    parser.add_argument("--keep", action="store_true", help="keep the private cluster")
    parser.add_argument("--no-results", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    job_counts = [int(j) for j in args.jobs.split(",")]

    directory, path = events_file(args.events, args.suppliers, args.seed)
    url, cluster = server(args.keep)
    try:
        from ltv_db.migrations import upgrade_head

        upgrade_head(url)
        machine = machine_facts(url)
        reference = {}
        for entity in REFERENCE_ENTITIES:
            started = time.perf_counter()
            done = cli(url, "ingest", entity, str(directory / f"{entity}.csv"))
            if done.returncode != 0:
                raise SystemExit(f"loading {entity} failed:\n{done.stdout}{done.stderr}")
            reference[entity] = time.perf_counter() - started
            log(f"loaded {entity} in {reference[entity]:.1f} s")
        warm(path)
        baseline, _ = baseline_copy(url, path)
        runs = []
        for jobs in job_counts:
            if runs:
                empty_events(url)
            log(f"ltv-db ingest events --jobs {jobs} …")
            runs.append(run_ingest(url, path, jobs))
            log(f"ingest --jobs {jobs}: {runs[-1].wall:.1f} s, peak RSS {runs[-1].peak_rss_mb:.0f} MB")
            with psycopg.connect(url) as conn:
                loaded = conn.execute("SELECT count(*) FROM ltv.revenue_events").fetchone()[0]
            if loaded != args.events:
                raise SystemExit(f"expected {args.events:,} events in revenue_events, found {loaded:,}")
        again = None
        if args.reingest:
            log(f"ltv-db ingest events --jobs {job_counts[-1]} (again) …")
            again = run_ingest(url, path, job_counts[-1])
            log(f"re-ingest: {again.wall:.1f} s")
        machine["load_after"] = f"{os.getloadavg()[0]:.1f}"
        kind = "database from LTV_DATABASE_URL" if cluster is None else "fresh private cluster"
        snippet = markdown(args, kind, path, baseline, runs, again, reference, machine)
        print(snippet)
        if not args.no_results:
            write_results(snippet)
            log(f"updated {RESULTS}")
    finally:
        if cluster is not None and not args.keep:
            cluster.destroy()  # type: ignore[attr-defined]
            shutil.rmtree(cluster.home, ignore_errors=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
