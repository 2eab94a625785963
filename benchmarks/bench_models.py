"""Benchmark for issue 3: fitting and scoring inside PostgreSQL against the `lifetimes` library.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_models.py [--suppliers 1000000] [--seed 42] [--keep]

1. A private cluster under .ltv/bench-models (or LTV_DATABASE_URL), migrated; the synthetic
   marketplace of --suppliers loaded through the ingestion engine (once; reused with --keep).
2. In the same run:
   (a) ltv.fit_models(as_of): summarise every customer from the raw tables and fit sBG per
       category/interval, BG/NBD and Gamma-Gamma per category and for 'all' — wall time, and
       per-model runtimes from the function;
   (b) ltv.score_customers(as_of) over every customer (count + sums, so nothing is shipped);
   (c) baseline: `lifetimes` end to end from the transactions table — read the one-off
       purchases and signups, `summary_data_from_transaction_data` (daily, signup as the first
       transaction so time 0 is the signup like ours), BetaGeoFitter and GammaGammaFitter on
       all customers — and the parameters both reach for segment 'all'.
   Parameter recovery: every fitted segment against ltv.synthetic_truth (share within 5 %).
Prints a Markdown snippet and replaces the "Models (issue 3)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from ltv_db import demo_data
from ltv_db.cluster import LocalPostgres
from ltv_db.migrations import upgrade_head

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SECTION = "## Models (issue 3)"
AS_OF = date(2026, 11, 1)
DAYS_PER_MONTH = 30.4375


def database(suppliers: int, seed: int) -> str:
    url = os.environ.get("LTV_DATABASE_URL")
    if url is None:
        cluster = LocalPostgres(REPO / ".ltv" / "bench-models")
        cluster.start()
        url = cluster.url()
    upgrade_head(url)
    with psycopg.connect(url) as conn:
        loaded = conn.execute("SELECT count(*) FROM ltv.customers").fetchone()[0]
        if loaded == 0:
            started = time.perf_counter()
            demo_data.load(conn, demo_data.DemoConfig(suppliers=suppliers, seed=seed, as_of=AS_OF))
            conn.commit()
            print(f"loaded {suppliers:,} suppliers in {time.perf_counter() - started:.0f} s")
        elif loaded != suppliers:
            raise SystemExit(f"database holds {loaded:,} suppliers, not {suppliers:,}: use a fresh LTV_HOME")
        conn.execute("ANALYZE")
    return url


def in_database(url: str) -> dict:
    as_of = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        started = time.perf_counter()
        fits = conn.execute("SELECT * FROM ltv.fit_models(%s, 500)", (as_of,)).fetchall()
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        scored = conn.execute(
            "SELECT count(*) AS n, sum(total_ltv) AS total FROM ltv.score_customers(%s)", (as_of,)
        ).fetchone()
        score_seconds = time.perf_counter() - started
        truth = {
            (r["model"], r["segment"]): r["params"]
            for r in conn.execute("SELECT model, segment, params FROM ltv.synthetic_truth")
        }
    return {"fits": fits, "fit_seconds": fit_seconds, "scored": scored, "score_seconds": score_seconds, "truth": truth}


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
    summary[["recency", "T"]] = summary[["recency", "T"]] / DAYS_PER_MONTH
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    bgf.fit(summary["frequency"], summary["recency"], summary["T"])
    repeaters = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(repeaters["frequency"], repeaters["monetary_value"])
    return {"seconds": time.perf_counter() - started, "bgnbd": dict(bgf.params_), "gg": dict(ggf.params_),
            "customers": len(summary)}


def report(suppliers: int, ours: dict, theirs: dict | None) -> str:
    fits = ours["fits"]
    by_model: dict[str, float] = {}
    for f in fits:
        by_model[f["model"]] = by_model.get(f["model"], 0.0) + (f["runtime_ms"] or 0) / 1000
    sbg_max = max((f["runtime_ms"] or 0) / 1000 for f in fits if f["model"] == "sbg")
    within, total = 0, 0
    for f in fits:
        true = ours["truth"].get((f["model"], f["segment"]))
        if true is None or not f["converged"]:
            continue
        for name, value in f["params"].items():
            if name in true:
                total += 1
                within += abs(float(value) - float(true[name])) <= 0.05 * float(true[name])
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python benchmarks/bench_models.py --suppliers {suppliers}` "
        f"({ours['scored']['n']:,} customers scored; machine: 2 cores, shared).",
        "",
        "| step | seconds | target |",
        "|---|---|---|",
        f"| summarise + fit every model and segment in PostgreSQL (`ltv.fit_models`) | {ours['fit_seconds']:.1f} | ≤ 15 (BG/NBD + GG) |",
        f"| of which BG/NBD / Gamma-Gamma / sBG (sum of fit runtimes) | {by_model.get('bgnbd', 0):.1f} / {by_model.get('gamma_gamma', 0):.1f} / {by_model.get('sbg', 0):.2f} | |",
        f"| slowest single sBG segment fit | {sbg_max:.3f} | ≤ 1 |",
        f"| score every customer (`ltv.score_customers`) | {ours['score_seconds']:.1f} | ≤ 15 |",
        f"| parameters within 5 % of the generator's truth | {within} of {total} | |",
    ]
    if theirs is not None:
        ours_all = {(f["model"]): f["params"] for f in fits if f["segment"] == "all"}
        lines += [
            f"| baseline: `lifetimes` end to end (read, summarise, BG/NBD + GG on 'all') | {theirs['seconds']:.1f} | |",
            f"| ratio lifetimes / ltv_db fit | {theirs['seconds'] / ours['fit_seconds']:.2f} | |",
            "",
            "| segment 'all' | ltv_db | lifetimes |",
            "|---|---|---|",
        ]
        for ours_key, their_key in (("r", "r"), ("alpha", "alpha"), ("a", "a"), ("b", "b")):
            lines.append(f"| BG/NBD {ours_key} | {float(ours_all['bgnbd'][ours_key]):.4f} | {theirs['bgnbd'][their_key]:.4f} |")
        for ours_key in ("p", "q", "v"):
            lines.append(f"| Gamma-Gamma {ours_key} | {float(ours_all['gamma_gamma'][ours_key]):.4f} | {theirs['gg'][ours_key]:.4f} |")
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
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-baseline", action="store_true", help="skip the lifetimes baseline")
    parser.add_argument("--no-results", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    url = database(args.suppliers, args.seed)
    ours = in_database(url)
    theirs = None if args.no_baseline else with_lifetimes(url)
    snippet = report(args.suppliers, ours, theirs)
    print(snippet)
    if not args.no_results:
        write_results(snippet)


if __name__ == "__main__":
    main()
