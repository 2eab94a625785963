"""Benchmark for issue 3: fitting and scoring inside PostgreSQL against the `lifetimes` library.

    .venv/bin/pip install -e '.[bench]'
    export LTV_HOME=/work/main/.ltv/bench-1m
    .venv/bin/ltv-db migrate
    .venv/bin/python benchmarks/bench_models.py --suppliers 1000000 --seed 1 --start 2011-01-01 --signup-growth 0

1. The database of LTV_HOME's private cluster (or LTV_DATABASE_URL), migrated to head; when it
   is empty, the synthetic marketplace of --suppliers is bulk-loaded with benchmarks/bulk_load.py
   (the setup the other benchmarks share; ltv.synthetic_truth filled).
2. In the same run:
   (a) BG/NBD + Gamma-Gamma on every customer ('all') inside PostgreSQL, the steps
       ltv.fit_models takes: summarise every customer (ltv.customer_history at the cut-off: the
       live statistics, since no customer was active after it — see customer_history.sql), compress
       to distinct (x, t_x, t_cal) and (x, m) with weights, ltv.fit_bgnbd_detail,
       ltv.fit_gamma_gamma_detail — wall time of each step;
   (b) ltv.fit_models(as_of): sBG per category/interval, BG/NBD and Gamma-Gamma per category and
       for 'all' — wall time, and per-fit runtimes from the function (the sBG per-segment figure);
   (c) ltv.score_customers(as_of) over every customer (count + sums, so nothing is shipped),
       --score-runs times: the median is the figure;
   (d) baseline: `lifetimes` end to end from the transactions table — read the one-off
       purchases and signups, `summary_data_from_transaction_data` (daily, signup as the first
       transaction so time 0 is the signup like ours), the same compression (distinct rows with
       weights), BetaGeoFitter and GammaGammaFitter — and the parameters both reach.
   Parameter recovery: every converged segment fit against ltv.synthetic_truth (table).
Prints a Markdown snippet and replaces the "Models (issue 3)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from ltv_db.db import resolve_database_url
from ltv_db.migrations import upgrade_head

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bulk_load  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Models (issue 3)"
AS_OF = date(2026, 11, 1)
DAYS_PER_MONTH = 30.4375


def database(suppliers: int, seed: int, start: date | None, signup_growth: float | None) -> tuple[str, dict]:
    url = resolve_database_url()  # LTV_DATABASE_URL, or LTV_HOME's private cluster (started)
    upgrade_head(url)
    bulk_load.pause_cron_jobs(url)  # migrating re-registers them; no refresh or refit mid-run
    with psycopg.connect(url, autocommit=True) as conn:
        loaded = conn.execute("SELECT count(*) FROM ltv.customers").fetchone()[0]
    if loaded == 0:
        bulk_load.bulk_load(url, bulk_load.config(suppliers, seed, start, AS_OF, signup_growth))
    elif loaded != suppliers:
        raise SystemExit(f"database holds {loaded:,} suppliers, not {suppliers:,}: use a fresh LTV_HOME")
    with psycopg.connect(url, autocommit=True) as conn:
        # a database loaded by bench_live_stats.py has no truth yet: take it from the same CSVs
        csv_dir = bulk_load.csv_directory(bulk_load.config(suppliers, seed, start, AS_OF, signup_growth))
        if not conn.execute("SELECT EXISTS (SELECT FROM ltv.synthetic_truth)").fetchone()[0]:
            bulk_load.store_truth(conn, csv_dir)
        row = conn.execute(
            """SELECT (SELECT count(*) FROM ltv.customers), (SELECT count(*) FROM ltv.revenue_events),
                      (SELECT count(*) FROM ltv.revenue_events WHERE kind = 'one_off'),
                      (SELECT count(*) FROM ltv.subscriptions),
                      (SELECT version_num FROM public.alembic_version), current_setting('server_version')"""
        ).fetchone()
    keys = ("customers", "events", "one_offs", "subscriptions", "revision", "server")
    return url, dict(zip(keys, row, strict=True))


# The summarise + compress steps of ltv.fit_models for BG/NBD and Gamma-Gamma, on segment 'all'.
SUMMARISE = """
CREATE TEMP TABLE bench_history AS
SELECT h.x, round(h.t_x * 30.4375) / 30.4375 AS t_x, round(h.t_cal * 30.4375) / 30.4375 AS t_cal,
       round(h.mean_one_off::numeric, 2)::float8 AS m
FROM ltv.customer_history(%s) h
"""
COMPRESS_RFM = "CREATE TEMP TABLE bench_rfm AS SELECT x, t_x, t_cal, count(*) AS n FROM bench_history GROUP BY 1, 2, 3"
COMPRESS_SPEND = ("CREATE TEMP TABLE bench_spend AS SELECT x, m, count(*) AS n FROM bench_history "
                  "WHERE x > 0 AND m > 0 GROUP BY 1, 2")


def bgnbd_gg_all(url: str) -> dict:
    as_of = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC)
    steps: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET jit = off")
        total = time.perf_counter()

        def step(name: str, sql: str, params: tuple = ()) -> list[dict]:
            started = time.perf_counter()
            cur = conn.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            steps[name] = time.perf_counter() - started
            return rows

        step("summarise (ltv.customer_history: the live statistics)", SUMMARISE, (as_of,))
        step("compress to distinct (x, t_x, t_cal) / (x, m)", COMPRESS_RFM)
        conn.execute(COMPRESS_SPEND)
        bgnbd = step("ltv.fit_bgnbd_detail", "SELECT * FROM ltv.fit_bgnbd_detail('pg_temp.bench_rfm')")[0]
        gg = step("ltv.fit_gamma_gamma_detail", "SELECT * FROM ltv.fit_gamma_gamma_detail('pg_temp.bench_spend')")[0]
        seconds = time.perf_counter() - total
        rows = conn.execute("SELECT (SELECT count(*) FROM bench_history) AS customers, "
                            "(SELECT count(*) FROM bench_rfm) AS rfm_rows, "
                            "(SELECT count(*) FROM bench_spend) AS spend_rows").fetchone()
    return {"seconds": seconds, "steps": steps, "bgnbd": bgnbd, "gg": gg, **rows}


def in_database(url: str, score_timeout: int, score_runs: int) -> dict:
    as_of = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC)
    score_sql = "SELECT count(*) AS n, sum(total_ltv) AS total FROM ltv.score_customers(%s)"
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET jit = off")
        started = time.perf_counter()
        fits = conn.execute("SELECT * FROM ltv.fit_models(%s, 500)", (as_of,)).fetchall()
        fit_seconds = time.perf_counter() - started
        print(f"fit_models {fit_seconds:.1f} s", flush=True)
        # scoring is timed --score-runs times (one machine's noise is ±1 s at a million customers):
        # the median is the figure; a run that does not finish within --score-timeout ends the series
        conn.execute(f"SET statement_timeout = '{int(score_timeout)}s'")
        score_runs_s: list[float] = []
        scored = None
        for _ in range(score_runs):
            started = time.perf_counter()
            try:
                scored = conn.execute(score_sql, (as_of,)).fetchone()
            except psycopg.errors.QueryCanceled:
                print(f"score_customers: no result within {score_timeout} s", flush=True)
                break
            score_runs_s.append(time.perf_counter() - started)
        conn.execute("RESET statement_timeout")
        score_seconds = statistics.median(score_runs_s) if len(score_runs_s) == score_runs else None
        truth = {
            (r["model"], r["segment"]): r["params"]
            for r in conn.execute("SELECT model, segment, params FROM ltv.synthetic_truth")
        }
    return {"fits": fits, "fit_seconds": fit_seconds, "scored": scored, "score_seconds": score_seconds,
            "score_runs": score_runs_s, "score_timeout": score_timeout, "truth": truth}


def with_lifetimes(url: str) -> dict:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT customer_id, occurred_at, amount_base::float8 FROM ltv.revenue_events
               WHERE kind = 'one_off' AND occurred_at < %(as_of)s
               UNION ALL
               SELECT customer_id, signed_up_at, NULL FROM ltv.customers WHERE signed_up_at < %(as_of)s""",
            {"as_of": AS_OF},
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["customer_id", "date", "amount"])
    frame["date"] = pd.to_datetime(frame["date"], utc=True).dt.tz_convert(None)
    # the signup row carries no spend; lifetimes averages the repeat purchases only
    frame["amount"] = frame["amount"].fillna(0.0)
    summary = summary_data_from_transaction_data(
        frame, "customer_id", "date", monetary_value_col="amount",
        observation_period_end=pd.Timestamp(AS_OF), freq="D",
    )
    summarised = time.perf_counter()
    summary[["recency", "T"]] = summary[["recency", "T"]] / DAYS_PER_MONTH
    # the same compression as in the database: distinct rows with their count as weight
    rfm = summary.groupby(["frequency", "recency", "T"]).size().rename("n").reset_index()
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(rfm["frequency"], rfm["recency"], rfm["T"], weights=rfm["n"])
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    spend = (repeaters.assign(m=repeaters["monetary_value"].round(2))
             .groupby(["frequency", "m"]).size().rename("n").reset_index())
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(spend["frequency"], spend["m"], weights=spend["n"])
    done = time.perf_counter()
    return {"seconds": done - started, "summary_seconds": summarised - started, "fit_seconds": done - summarised,
            "bgnbd": dict(bgf.params_), "gg": dict(ggf.params_), "customers": len(summary),
            "rfm_rows": len(rfm), "spend_rows": len(spend)}


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def report(args: argparse.Namespace, context: dict, db: dict, all_fit: dict, ours: dict, theirs: dict | None) -> str:
    fits = ours["fits"]
    sbg = [f for f in fits if f["model"] == "sbg"]
    sbg_max = max(((f["runtime_ms"] or 0) / 1000 for f in sbg), default=0.0)
    command = (f"LTV_HOME={os.environ.get('LTV_HOME', '')} .venv/bin/python benchmarks/bench_models.py "
               f"--suppliers {args.suppliers} --seed {args.seed}" + (f" --start {args.start}" if args.start else "")
               + (f" --signup-growth {args.signup_growth:g}" if args.signup_growth is not None else ""))
    ok = {True: "✓", False: "✗"}
    lines = [
        SECTION,
        "",
        "```sh",
        "export LTV_HOME=/work/main/.ltv/bench-1m",
        "# once: the shared 1,000,000-supplier database (see the BI views section)",
        f".venv/bin/ltv-db migrate && {command}",
        "```",
        "",
        f"Run {context['started']} UTC, {os.cpu_count()} vCPUs (load average "
        f"{context['load_start']} at the start, {context['load_end']} at the end); PostgreSQL {db['server']}, schema "
        f"at `{db['revision']}` (git `{context['git']}`). Data: {db['customers']:,} suppliers, {db['events']:,} "
        f"revenue events ({db['one_offs']:,} one-off purchases), {db['subscriptions']:,} subscriptions; cut-off "
        f"{AS_OF}, the end of the data (so ltv.customer_history reads the live statistics — the per-customer "
        "summary the triggers keep current at ingest — not the raw events; a backtest's cut-off months back "
        "takes the raw tables).",
        "",
        "| step | seconds | target |",
        "|---|---:|---|",
        f"| **summarise + fit BG/NBD and Gamma-Gamma** on all {all_fit['customers']:,} customers | "
        f"**{all_fit['seconds']:.1f}** | ≤ 15 {ok[all_fit['seconds'] <= 15]} |",
    ]
    for name, seconds in all_fit["steps"].items():
        lines.append(f"| … {name} | {seconds:.1f} | |")
    lines += [
        f"| … rows the fits scan: {all_fit['rfm_rows']:,} distinct (x, t_x, t_cal), {all_fit['spend_rows']:,} "
        "distinct (x, m) | | |",
        (f"| **score every customer** (`ltv.score_customers`, {ours['scored']['n']:,} rows; median of "
         f"{len(ours['score_runs'])} runs: {', '.join(f'{t:.1f}' for t in ours['score_runs'])}) | "
         f"**{ours['score_seconds']:.1f}** | ≤ 15 {ok[ours['score_seconds'] <= 15]} |")
        if ours["score_seconds"] is not None else
        (f"| **score every customer** (`ltv.score_customers`) | **> {ours['score_timeout']}** (cancelled) "
         f"| ≤ 15 ✗ |"),
        f"| **slowest sBG segment fit** (of {len(sbg)}; from `ltv.fit_models`' runtimes) | **{sbg_max:.3f}** | "
        f"≤ 1 {ok[sbg_max <= 1]} |",
        f"| `ltv.fit_models`: every model and segment ({len(fits)} fits) | {ours['fit_seconds']:.1f} | — |",
    ]
    if theirs is not None:
        ratio = theirs["seconds"] / all_fit["seconds"]
        lines += [
            f"| baseline: `lifetimes` end to end (read, summarise, compress, BG/NBD + GG) | {theirs['seconds']:.1f} | — |",
            f"| … read + `summary_data_from_transaction_data` | {theirs['summary_seconds']:.1f} | |",
            f"| … compress + BetaGeoFitter + GammaGammaFitter ({theirs['rfm_rows']:,} / {theirs['spend_rows']:,} rows) "
            f"| {theirs['fit_seconds']:.1f} | |",
            f"| **ratio lifetimes / ltv_db** (summarise + fit BG/NBD and GG) | **{ratio:.2f}×** | — |",
            "",
            "Parameters both reach on every customer (segment 'all'):",
            "",
            "| parameter | ltv_db | lifetimes | relative difference |",
            "|---|---:|---:|---:|",
        ]
        for key in ("r", "alpha", "a", "b"):
            a, b = float(all_fit["bgnbd"][key]), float(theirs["bgnbd"][key])
            lines.append(f"| BG/NBD {key} | {a:.4f} | {b:.4f} | {rel(a, b):.2%} |")
        for key in ("p", "q", "v"):
            a, b = float(all_fit["gg"][key]), float(theirs["gg"][key])
            lines.append(f"| Gamma-Gamma {key} | {a:.4f} | {b:.4f} | {rel(a, b):.2%} |")
    lines += [
        "",
        "Parameter recovery: every converged per-segment fit of `ltv.fit_models` against `ltv.synthetic_truth` "
        "(worst parameter's relative error; target ≤ 5 % for segments with enough data):",
        "",
        "| model | segment | n | fitted | true | worst error | ≤ 5 % |",
        "|---|---|---:|---|---|---:|---|",
    ]
    within = total = 0
    for f in sorted(fits, key=lambda f: (f["model"], f["segment"])):
        true = ours["truth"].get((f["model"], f["segment"]))
        if true is None or not f["converged"] or f["params"] is None:
            continue
        names = [k for k in ("alpha", "beta", "r", "a", "b", "p", "q", "v") if k in true and k in f["params"]]
        worst = max(rel(float(f["params"][k]), float(true[k])) for k in names)
        total += 1
        within += worst <= 0.05
        fmt = ", ".join(f"{k} {float(f['params'][k]):.3f}" for k in names)
        tru = ", ".join(f"{k} {float(true[k]):.3f}" for k in names)
        lines.append(f"| {f['model']} | {f['segment']} | {f['n_customers']:,} | {fmt} | {tru} | {worst:.1%} "
                     f"| {ok[worst <= 0.05]} |")
    lines += ["", f"{within} of {total} segment fits within 5 % of the truth.", ""]
    return "\n".join(lines) + "\n"


def write_results(snippet: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION in text:
        start = text.index(SECTION)
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + snippet + (text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + snippet
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suppliers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=None,
                        help="first day of the marketplace's history when it has to be loaded (DemoConfig.start)")
    parser.add_argument("--signup-growth", type=float, default=None,
                        help="yearly signup growth when it has to be loaded (DemoConfig.signup_growth)")
    parser.add_argument("--score-timeout", type=int, default=300, help="seconds before a scoring run is cancelled")
    parser.add_argument("--score-runs", type=int, default=3, help="timed scoring runs (the median is reported)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the lifetimes baseline")
    parser.add_argument("--no-results", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    import subprocess

    url, db = database(args.suppliers, args.seed, args.start, args.signup_growth)
    context = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "load_start": f"{os.getloadavg()[0]:.1f}",
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip(),
    }
    print(f"{db}; load average {context['load_start']}", flush=True)
    all_fit = bgnbd_gg_all(url)
    print(f"BG/NBD + GG on all: {all_fit['seconds']:.1f} s {all_fit['steps']}", flush=True)
    ours = in_database(url, args.score_timeout, args.score_runs)
    print(f"score_customers {ours['score_seconds']} s (runs: {ours['score_runs']})", flush=True)
    theirs = None if args.no_baseline else with_lifetimes(url)
    if theirs:
        print(f"lifetimes {theirs['seconds']:.1f} s", flush=True)
    context["load_end"] = f"{os.getloadavg()[0]:.1f}"
    snippet = report(args, context, db, all_fit, ours, theirs)
    print(snippet)
    if not args.no_results:
        write_results(snippet)


if __name__ == "__main__":
    main()
