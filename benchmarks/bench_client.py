"""Benchmark of the cached Python client (issue 5): per-tier latency, payment → fresh value in
another process, and lookups/s from two processes — each against the uncached path (the same
``ltv.customer_ltv`` query on a plain connection) measured in the same run.

Needs a database with customers (ideally the 50,000-supplier demo marketplace with fitted
models) and Redis; both default to the private servers under LTV_HOME::

    export LTV_HOME=/work/main/.ltv/bench-client
    .venv/bin/ltv-db migrate && .venv/bin/ltv-db demo-data --suppliers 50000 && .venv/bin/ltv-db fit
    .venv/bin/python benchmarks/bench_client.py            # prints a markdown section
    .venv/bin/ltv-db db stop                                # and stop the private redis-server

Payments are committed as plain INSERTs into ltv.revenue_events (source ``bench``), so the
database's own statement triggers send the notifications.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import count
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import psycopg

from ltv_db.cache import resolve_redis_url
from ltv_db.client import LTVClient
from ltv_db.db import resolve_database_url
from ltv_db.models import customer_ltv

_payments = count(1)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 50) * 1e3, "p99": pct(values, 99) * 1e3, "max": max(values) * 1e3}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def direct_connection(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET jit = off")  # as the client's pool does: JIT costs seconds on these functions
    return conn


def pay(conn: psycopg.Connection, customer_id: int) -> None:
    conn.execute(
        """
        INSERT INTO ltv.revenue_events
            (customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base, source, external_id)
        VALUES (%s, now() - interval '1 minute', 'one_off', 1000, 'GBP', 1, 10, 'bench', %s)
        """,
        (customer_id, f"bench-{os.getpid()}-{time.time_ns()}-{next(_payments)}"),
    )


# -- 0. a synthetic dataset, when the demo generator is not available ---------------------------------------
SYNTHETIC_SQL = """
INSERT INTO ltv.plans (plan_code, tier, billing_interval, list_price_minor, currency) VALUES
    ('bench-basic-m', 'basic', 'month', 2900, 'GBP'), ('bench-pro-m', 'pro', 'month', 5900, 'GBP'),
    ('bench-pro-y', 'pro', 'year', 59000, 'GBP')
ON CONFLICT DO NOTHING;
INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
SELECT 'BENCH-' || g,
       (ARRAY['photographer','videographer','venue','florist','caterer','planner','dj_band','baker',
              'hair_makeup','stationer'])[1 + (g * 7) % 10],
       (ARRAY['GB','FR','US','AU'])[1 + (g * 13) % 4],
       (ARRAY['organic','paid_search','paid_social','referral','wedding_fair','partner'])[1 + (g * 17) % 6],
       now() - make_interval(days => 30 + (g * 7919) % 1000)
FROM generate_series(1, :n) g;
INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at, cancelled_at, ended_at)
SELECT customer_id, 'sub-' || customer_id, plan, signed_up_at, churned, churned
FROM (
    SELECT c.customer_id, c.signed_up_at,
           (ARRAY['bench-basic-m','bench-pro-m','bench-pro-y'])[1 + c.customer_id % 3] AS plan,
           CASE WHEN random() < 0.5 THEN c.signed_up_at + (now() - c.signed_up_at) * random() END AS churned
    FROM ltv.customers c WHERE c.customer_ref LIKE 'BENCH-%' AND c.customer_id % 5 <> 0
) s;
INSERT INTO ltv.revenue_events
    (customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base, source, external_id, subscription_id)
SELECT s.customer_id, d.at, 'subscription', p.list_price_minor, 'GBP', 1, p.list_price_minor / 100.0, 'synthetic',
       'sub-' || s.subscription_id || '-' || d.n, s.subscription_id
FROM ltv.subscriptions s
JOIN ltv.plans p USING (plan_code)
CROSS JOIN LATERAL generate_series(s.started_at, coalesce(s.ended_at, now()),
    CASE p.billing_interval WHEN 'month' THEN interval '1 month' ELSE interval '1 year' END) WITH ORDINALITY d(at, n);
INSERT INTO ltv.revenue_events
    (customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base, source, external_id)
SELECT c.customer_id, c.signed_up_at + (now() - c.signed_up_at) * random(), 'one_off', m.minor, 'GBP', 1,
       m.minor / 100.0, 'synthetic', 'one-' || c.customer_id || '-' || k
FROM ltv.customers c
CROSS JOIN LATERAL generate_series(1, (c.customer_id * 31) % 7) k
CROSS JOIN LATERAL (SELECT (2000 + (random() * 20000)::int) AS minor) m
WHERE c.customer_ref LIKE 'BENCH-%';
"""


def load_synthetic(url: str, n: int) -> None:
    """Customers, subscriptions and events by SQL (the triggers keep the live statistics), then fit."""
    from ltv_db.models import refit

    with psycopg.connect(url) as conn:
        conn.execute("SET jit = off")
        conn.execute(SYNTHETIC_SQL.replace(":n", str(int(n))))  # several statements: no server-side parameters
        conn.commit()
        conn.execute("SELECT ltv.maintain_revenue_partitions()")
        conn.commit()
        fits = refit(conn)
        conn.commit()
    print(f"# loaded {n:,} synthetic customers; {sum(1 for f in fits if f['activated'])} fits activated")


# -- 1. latency per tier ------------------------------------------------------------------------------------
def latency(db_url: str, redis_url: str, refs: list[str], ids: dict[str, int], n: int) -> dict[str, Any]:
    sample = refs[:n]
    out: dict[str, Any] = {}
    with direct_connection(db_url) as conn:
        for ref in sample[:20]:  # warm the plan cache / prepared statement
            customer_ltv(conn, ref)
        out["uncached (direct SQL)"] = summary_ms([timed(lambda r=ref: customer_ltv(conn, r))[0] for ref in sample])

    with LTVClient(db_url, redis_url, warm_top_n=0, l1_ttl=600) as client:
        # the sample must come from L3: drop whatever an earlier run left in Redis for it
        client.redis.delete(*(client.customer_key(ids[r]) for r in sample))
        warm = refs[-20:]
        for ref in warm:
            client.get_ltv(ref)
        l3 = []
        for ref in sample:
            seconds, result = timed(lambda r=ref: client.lookup(r))
            assert result.tier == "l3", result.tier
            l3.append(seconds)
        out["L3 via client (ltv.customer_ltv, fills L1+L2)"] = summary_ms(l3)
        l1 = [timed(lambda r=ref: client.lookup(r))[0] for _ in range(5) for ref in sample]
        out["L1 hit"] = summary_ms(l1)
        client.l1.invalidate([ids[r] for r in sample])  # values gone, ref → id map kept (steady state)
        l2 = []
        for ref in sample:
            seconds, result = timed(lambda r=ref: client.lookup(r))
            assert result.tier == "l2", result.tier
            l2.append(seconds)
        out["L2 hit"] = summary_ms(l2)
    with LTVClient(db_url, redis_url, warm_top_n=0) as cold:  # a new process: ref → id via Redis too
        l2_cold = []
        for ref in sample:
            seconds, result = timed(lambda r=ref: cold.lookup(r))
            assert result.tier == "l2", result.tier
            l2_cold.append(seconds)
        out["L2 hit, new client (ref → id from Redis too)"] = summary_ms(l2_cold)
    return out


# -- 2. payment → fresh value in another process ------------------------------------------------------------
def _freshness_child(db_url: str, redis_url: str, pipe: Connection) -> None:
    with LTVClient(db_url, redis_url, warm_top_n=0) as client:
        pipe.send("up")
        while True:
            ref = pipe.recv()
            if ref is None:
                return
            before = client.get_ltv(ref).net_revenue
            assert client.lookup(ref).tier == "l1"
            pipe.send("cached")
            deadline = time.monotonic() + 10
            fresh_at = None
            while time.monotonic() < deadline:
                if client.get_ltv(ref).net_revenue != before:
                    fresh_at = time.monotonic()
                    break
                time.sleep(0.0002)
            committed_at = pipe.recv()
            pipe.send(None if fresh_at is None else max(0.0, fresh_at - committed_at))


def freshness(db_url: str, redis_url: str, refs: list[str], ids: dict[str, int], n: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_freshness_child, args=(db_url, redis_url, child))
    process.start()
    delays: list[float] = []
    never = 0
    try:
        assert parent.recv() == "up"
        with direct_connection(db_url) as conn:
            for ref in refs[:n]:
                parent.send(ref)
                assert parent.recv() == "cached"
                pay(conn, ids[ref])
                parent.send(time.monotonic())  # time.monotonic() is system-wide on Linux
                delay = parent.recv()
                if delay is None:
                    never += 1
                else:
                    delays.append(delay)
        parent.send(None)
    finally:
        process.join(timeout=15)
    return {**summary_ms(delays), "never_fresh": never}


# -- 3. throughput from two processes -----------------------------------------------------------------------
def zipf_stream(refs: list[str], size: int, seed: int, s: float) -> list[str]:
    ranks = np.arange(1, len(refs) + 1, dtype=float)
    p = ranks**-s
    p /= p.sum()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(refs))  # the popular customers are random ones, not the first refs
    picks = rng.choice(len(refs), size=size, p=p)
    return [refs[order[i]] for i in picks]


def _throughput_child(
    mode: str, db_url: str, redis_url: str, stream: list[str], seconds: float, pipe: Connection
) -> None:
    tiers: Counter[str] = Counter()
    errors = 0
    if mode == "client":
        client = LTVClient(db_url, redis_url, warm_top_n=0)
        lookup: Callable[[str], Any] = client.lookup
    else:
        conn = direct_connection(db_url)
        lookup = lambda ref: customer_ltv(conn, ref)  # noqa: E731
    pipe.send("ready")
    start_at = pipe.recv()
    while time.time() < start_at:
        time.sleep(0.001)
    done, i = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            result = lookup(stream[i % len(stream)])
            if mode == "client":
                tiers[result.tier] += 1
        except Exception:  # noqa: BLE001 - counted, not hidden
            errors += 1
        done += 1
        i += 1
    pipe.send({"lookups": done, "tiers": dict(tiers), "errors": errors})
    if mode == "client":
        client.close()
    else:
        conn.close()


def throughput(
    mode: str, db_url: str, redis_url: str, refs: list[str], ids: dict[str, int], seconds: float, payments_per_s: float
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for k in range(2):
        parent, child = ctx.Pipe()
        stream = zipf_stream(refs, 200_000, seed=k + 1, s=1.0)
        process = ctx.Process(target=_throughput_child, args=(mode, db_url, redis_url, stream, seconds, child))
        process.start()
        pipes.append(parent)
        processes.append(process)
    for pipe in pipes:
        assert pipe.recv() == "ready"
    start_at = time.time() + 0.5
    for pipe in pipes:
        pipe.send(start_at)
    paid = 0
    with direct_connection(db_url) as conn:  # a realistic trickle of payments (and so invalidations)
        while time.time() < start_at:
            time.sleep(0.001)
        rng = np.random.default_rng(99)
        end = time.time() + seconds
        while time.time() < end:
            if payments_per_s > 0:
                pay(conn, ids[refs[int(rng.integers(len(refs)))]])
                paid += 1
                time.sleep(1 / payments_per_s)
            else:
                time.sleep(0.05)
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join(timeout=15)
    lookups = sum(r["lookups"] for r in results)
    tiers = Counter()
    for r in results:
        tiers.update(r["tiers"])
    return {
        "lookups_per_s": lookups / seconds,
        "errors": sum(r["errors"] for r in results),
        "tier_share": {t: n / lookups for t, n in sorted(tiers.items())} if tiers else {},
        "payments": paid,
    }


def _warm_child(db_url: str, redis_url: str, refs: list[str], pipe: Connection) -> None:
    with LTVClient(db_url, redis_url, warm_top_n=0) as client:
        for i in range(0, len(refs), 100):
            client.get_many(refs[i : i + 100])
    pipe.send("done")


def warm_everything(db_url: str, redis_url: str, refs: list[str]) -> float:
    """Steady state of a long-running service: every customer in L2 (two processes fill it)."""
    ctx = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    pipes, processes = [], []
    for k in range(2):
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_warm_child, args=(db_url, redis_url, refs[k::2], child))
        process.start()
        pipes.append(parent)
        processes.append(process)
    for pipe, process in zip(pipes, processes, strict=True):
        assert pipe.recv() == "done"
        process.join(timeout=15)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-sample", type=int, default=1000, help="customers per latency measurement")
    parser.add_argument("--freshness-payments", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="duration of each throughput run")
    parser.add_argument("--payments-per-s", type=float, default=2.0, help="payments during the client run")
    parser.add_argument("--json", type=str, default=None, help="also write the figures to this file")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="load this many synthetic customers first when the database has none")
    args = parser.parse_args()

    db_url = resolve_database_url()
    redis_url = resolve_redis_url()
    assert redis_url, "no Redis"
    if args.synthetic:
        with direct_connection(db_url) as conn:
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM ltv.customers)").fetchone()[0]
        if empty:
            load_synthetic(db_url, args.synthetic)
    with direct_connection(db_url) as conn:
        rows = conn.execute(
            "SELECT customer_ref, customer_id FROM ltv.customers WHERE signed_up_at <= now() ORDER BY customer_id"
        ).fetchall()
        events = conn.execute("SELECT count(*) FROM ltv.revenue_events").fetchone()[0]
        fits = conn.execute("SELECT count(*) FROM ltv.model_fits WHERE is_active").fetchone()[0]
    ids = dict(rows)
    rng = np.random.default_rng(7)
    refs = [r for r, _ in rows]
    shuffled = list(np.array(refs)[rng.permutation(len(refs))])
    print(f"# {len(refs):,} customers, {events:,} revenue events, {fits} active fits; {os.cpu_count()} CPUs; "
          f"load average at start {os.getloadavg()[0]:.1f} (other work on the machine skews every figure)")

    figures: dict[str, Any] = {"customers": len(refs), "events": events, "active_fits": fits}
    figures["latency_ms"] = latency(db_url, redis_url, shuffled, ids, args.latency_sample)
    figures["freshness_ms"] = freshness(db_url, redis_url, shuffled[-args.freshness_payments:], ids,
                                        args.freshness_payments)
    figures["throughput_uncached"] = throughput("direct", db_url, redis_url, refs, ids, args.seconds, 0)
    figures["warm_seconds"] = warm_everything(db_url, redis_url, refs)
    figures["throughput_client"] = throughput("client", db_url, redis_url, refs, ids, args.seconds,
                                              args.payments_per_s)

    print("\n| path | n | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|")
    for name, s in figures["latency_ms"].items():
        print(f"| {name} | {s['n']:,} | {s['p50']:.3f} | {s['p99']:.3f} | {s['max']:.3f} |")
    f = figures["freshness_ms"]
    print(f"\npayment → fresh in another process: n {f['n']}, p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, "
          f"max {f['max']:.1f} ms, never fresh {f['never_fresh']}")
    print(f"warm-up (every customer into L2 by get_many from 2 processes): {figures['warm_seconds']:.0f} s")
    for mode in ("uncached", "client"):
        t = figures[f"throughput_{mode}"]
        share = ", ".join(f"{k} {v:.1%}" for k, v in t["tier_share"].items())
        print(f"throughput {mode}: {t['lookups_per_s']:,.0f} lookups/s from 2 processes, errors {t['errors']}"
              + (f", tiers {share}, {t['payments']} payments during the run" if share else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2, default=str)
    figures["loadavg_end"] = os.getloadavg()
    print(f"load average at the end: {figures['loadavg_end'][0]:.1f} (1 min), {figures['loadavg_end'][2]:.1f} (15 min)")
    lat = figures["latency_ms"]
    base = lat["uncached (direct SQL)"]["p50"]
    print(f"\nmedian speed-up over the uncached path: L1 {base / lat['L1 hit']['p50']:,.0f}×, "
          f"L2 {base / lat['L2 hit']['p50']:,.1f}×")

if __name__ == "__main__":
    main()
