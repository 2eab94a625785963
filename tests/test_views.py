"""BI views (issue 4): every figure in the materialized views checked against an independent
computation — ltv.score_customers / ltv.customer_history / ltv.channel_economics directly, or a
recomputation in Python — plus comments, unique indexes, refresh bookkeeping, pg_cron jobs,
concurrent refresh and index use. Real PostgreSQL 15 + pg_cron, no mocks.

Most tests share one synthetic marketplace (2,000 suppliers, seed 7, loaded through the
ingestion engine by ltv_db.demo_data), fitted and refreshed once per module; the MRR rules are
also pinned on a small hand-made history whose every movement is known.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import psycopg
import psycopg.sql
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from ltv_db import demo_data
from ltv_db.migrations import REPO_ROOT, job_name, upgrade_head
from tests.conftest import TEMPLATE_DB, create_database, drop_database, with_dbname

MATVIEWS = ("customer_ltv_snapshot", "unit_economics", "segment_ltv", "mrr_movements", "cohort_retention")
# registered views kept by a function of their own (ltv.refresh_<view>): a plain view over this
# table, not a materialized one
MAINTAINED = {
    "customer_ltv_snapshot": "customer_ltv_snapshot_store",
    "segment_ltv": "segment_ltv_store",
    "mrr_movements": "mrr_movement_store",
}
VIEWS = (*MATVIEWS, "view_freshness")
SEGMENT_LEVELS = {
    "vendor_category+country+plan+acquisition_channel+signup_cohort",
    "vendor_category+country+plan+acquisition_channel",
    "vendor_category+country+acquisition_channel",
    "vendor_category+country",
    "vendor_category+acquisition_channel",
    "vendor_category+plan",
    "vendor_category+signup_cohort",
    "vendor_category",
    "country+acquisition_channel",
    "country",
    "plan",
    "acquisition_channel+signup_cohort",
    "acquisition_channel",
    "signup_cohort",
    "total",
}
# The plan the snapshot shows, stated independently of the refresh: the customer's latest
# subscription started before the as-of (%(t)s), ties to the higher subscription_id.
LATEST_PLAN = """(SELECT DISTINCT ON (customer_id) customer_id, plan_code, tier
                 FROM ltv.subscriptions JOIN ltv.plans USING (plan_code)
                 WHERE started_at < %(t)s
                 ORDER BY customer_id, started_at DESC, subscription_id DESC)"""
# Whether some customer's facts as of %(t)s must come from the raw tables: the snapshot refresh
# then scores in one backend, else in two parallel halves.
FACTS_DATED_FROM = (
    "SELECT bool_or(ltv.facts_dated_from(last_event_at, subscription_started, %(t)s)) FROM ltv.customer_stats"
)
MOVEMENTS = (
    "opening_mrr",
    "new_mrr",
    "expansion_mrr",
    "contraction_mrr",
    "churned_mrr",
    "reactivation_mrr",
    "closing_mrr",
)


def _revision_module():
    path = REPO_ROOT / "alembic" / "versions" / "0003_bi_views.py"
    spec = importlib.util.spec_from_file_location("ltv_revision_0003_bi_views", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


# -- month arithmetic and the independent month-end MRR series -------------------------------------
def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def month_of(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def month_end_mrr(conn: psycopg.Connection, first: date, as_of: datetime) -> dict[date, dict[int, Decimal]]:
    """current_mrr of every paying customer at every month-end from `first` to as_of, straight from
    ltv.customer_history (the definition mrr_movements must reproduce). The current month ends at
    as_of."""
    current = month_index(as_of.astimezone(UTC).date())
    months = [month_of(i) for i in range(month_index(first), current + 1)]
    ends = [
        min(datetime(m2.year, m2.month, 1, tzinfo=UTC), as_of) for m2 in (month_of(month_index(m) + 1) for m in months)
    ]
    rows = conn.execute(
        """SELECT m.month, h.customer_id, h.current_mrr
           FROM unnest(%s::date[], %s::timestamptz[]) AS m(month, month_end)
           CROSS JOIN LATERAL ltv.customer_history(m.month_end) h
           WHERE h.current_mrr > 0""",
        (months, ends),
    ).fetchall()
    series: dict[date, dict[int, Decimal]] = {m: {} for m in months}
    for month, customer_id, mrr in rows:
        series[month][customer_id] = mrr
    return series


def expected_movements(series: dict[date, dict[int, Decimal]]) -> dict[tuple[int, date], dict[str, Decimal]]:
    """The MRR bridge per customer-month, classified in Python from the month-end series."""
    months = sorted(series)
    first_paid: dict[int, date] = {}
    for m in months:
        for c in series[m]:
            first_paid.setdefault(c, m)
    out: dict[tuple[int, date], dict[str, Decimal]] = {}
    zero = Decimal(0)
    for i, m in enumerate(months):
        previous = series[months[i - 1]] if i else {}
        for c in set(previous) | set(series[m]):
            opening, closing = previous.get(c, zero), series[m].get(c, zero)
            row = dict.fromkeys(MOVEMENTS, zero)
            row["opening_mrr"], row["closing_mrr"] = opening, closing
            if opening == 0 and closing > 0:
                row["new_mrr" if first_paid[c] == m else "reactivation_mrr"] = closing
            elif opening > 0 and closing == 0:
                row["churned_mrr"] = opening
            elif closing > opening:
                row["expansion_mrr"] = closing - opening
            elif closing < opening:
                row["contraction_mrr"] = opening - closing
            out[(c, m)] = row
    return out


# -- the shared marketplace ---------------------------------------------------------------------
@dataclass
class Market:
    url: str
    as_of: datetime
    series: dict[date, dict[int, Decimal]]


@pytest.fixture(scope="module")
def market(pg_server_url: str, template_url: str) -> Iterator[Market]:
    name = f"ltv_views_{os.getpid()}"
    url = create_database(pg_server_url, name, TEMPLATE_DB)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            demo_data.load(conn, demo_data.DemoConfig(suppliers=2000, seed=7))
            conn.execute("ANALYZE")
            fits = conn.execute(
                "SELECT count(*) FILTER (WHERE activated) FROM ltv.refit_models('2026-11-01', 50)"
            ).fetchone()[0]
            assert fits > 0
            refreshed = conn.execute("SELECT view_name, refreshed_concurrently FROM ltv.refresh_views()").fetchall()
            # the migration populated the (then empty) views, so this refresh is concurrent
            assert refreshed == [(v, True) for v in MATVIEWS]
            as_of = conn.execute(
                "SELECT last_refreshed_at FROM ltv.view_refreshes WHERE view_name = 'mrr_movements'"
            ).fetchone()[0]
            first = conn.execute(
                "SELECT date_trunc('month', min(signed_up_at) AT TIME ZONE 'UTC')::date FROM ltv.customers"
            ).fetchone()[0]
            series = month_end_mrr(conn, first, as_of)
        yield Market(url, as_of, series)
    finally:
        drop_database(pg_server_url, name)


@pytest.fixture
def mdb(market: Market) -> Iterator[psycopg.Connection]:
    with psycopg.connect(market.url, autocommit=True) as conn:
        yield conn


# -- refresh bookkeeping ------------------------------------------------------------------------
def test_every_view_is_registered_populated_and_shares_one_as_of(mdb: psycopg.Connection, market: Market) -> None:
    rows = mdb.execute(
        "SELECT view_name, populated, last_refreshed_at, last_concurrently, refresh_count, last_duration_ms "
        "FROM ltv.view_freshness ORDER BY refresh_order"
    ).fetchall()
    assert [r[0] for r in rows] == list(MATVIEWS)
    for view, populated, refreshed_at, concurrently, count, duration in rows:
        # migration + fixture; the duration is recorded (how long is benchmarks/bench_views.py's)
        assert populated and concurrently and count >= 2 and duration is not None, view
        assert refreshed_at == market.as_of, view  # one transaction: one as_of for every view
        if view in ("customer_ltv_snapshot", "unit_economics", "segment_ltv"):  # the others have none, on purpose
            view_as_of = mdb.execute(f"SELECT DISTINCT as_of FROM ltv.{view}").fetchall()
            assert view_as_of == [(market.as_of,)], view


def test_refresh_views_refreshes_only_what_is_named_and_refuses_unknown_names(db: psycopg.Connection) -> None:
    db.execute("REFRESH MATERIALIZED VIEW ltv.cohort_retention WITH NO DATA")
    assert db.execute("SELECT populated FROM ltv.view_freshness WHERE view_name = 'cohort_retention'").fetchone() == (
        False,
    )
    # an unpopulated view cannot be refreshed CONCURRENTLY: the first refresh is a plain one
    rows = db.execute(
        "SELECT view_name, refreshed_concurrently FROM ltv.refresh_views(ARRAY['cohort_retention', 'mrr_movements'])"
    ).fetchall()
    assert rows == [("mrr_movements", True), ("cohort_retention", False)]  # dependency order, not argument order
    counts = dict(db.execute("SELECT view_name, refresh_count FROM ltv.view_refreshes").fetchall())
    assert counts == {
        "customer_ltv_snapshot": 1,
        "unit_economics": 1,
        "segment_ltv": 1,
        "mrr_movements": 2,
        "cohort_retention": 2,
    }
    with pytest.raises(psycopg.errors.UndefinedTable, match="not a registered view: nope"):
        db.execute("SELECT * FROM ltv.refresh_views(ARRAY['segment_ltv', 'nope'])")


# -- customer_ltv_snapshot ----------------------------------------------------------------------
SCORE_COLUMNS = (
    "vendor_category",
    "country",
    "acquisition_channel",
    "signed_up_at",
    "subscription_status",
    "sbg_segment",
    "bgnbd_segment",
    "net_revenue",
    "realised_margin",
    "current_mrr",
    "predicted_recurring",
    "predicted_one_off",
    "total_ltv",
    "p_alive",
    "expected_purchases",
    "expected_remaining_months",
    "ltv_low",
    "ltv_high",
)


def test_snapshot_is_score_customers_row_for_row(mdb: psycopg.Connection, market: Market) -> None:
    differing = mdb.execute(
        f"""SELECT count(*) FROM ltv.customer_ltv_snapshot s
            FULL JOIN ltv.score_customers(%s) sc USING (customer_id)
            WHERE s.customer_id IS NULL OR sc.customer_id IS NULL
               OR ({", ".join("s." + c for c in SCORE_COLUMNS)})
                  IS DISTINCT FROM ({", ".join("sc." + c for c in SCORE_COLUMNS)})""",
        (market.as_of,),
    ).fetchone()[0]
    assert differing == 0
    aggregates = (
        "count(*), sum(total_ltv), sum(net_revenue), sum(realised_margin), sum(predicted_recurring), "
        "sum(predicted_one_off), sum(ltv_low), sum(ltv_high), sum(current_mrr), round(sum(p_alive)::numeric, 9)"
    )
    snapshot = mdb.execute(f"SELECT {aggregates} FROM ltv.customer_ltv_snapshot").fetchone()
    scored = mdb.execute(f"SELECT {aggregates} FROM ltv.score_customers(%s)", (market.as_of,)).fetchone()
    assert snapshot == scored
    assert snapshot[0] == 2000 and snapshot[1] > 0


def test_snapshot_scoring_halves_run_in_parallel_workers(mdb: psycopg.Connection, market: Market) -> None:
    """The snapshot refresh scores the customers in two halves by id side by side: the query it
    runs (ltv.score_customer_range twice under UNION ALL) gets a Parallel Append whose workers
    start and finish — ltv.score_customers sets no parameter there, which a worker may not — and
    the halves together are ltv.score_customers for everyone, row for row as text, with each
    customer's reference and region from ltv.customers and the plan of the latest subscription
    started before the as-of (ties to the higher id), looked up here by a query of its own."""
    assert mdb.execute(FACTS_DATED_FROM, {"t": market.as_of}).fetchone()[0] is False  # the fixture's path
    first, last = mdb.execute("SELECT min(customer_id), max(customer_id) FROM ltv.customers").fetchone()
    halves = psycopg.sql.SQL(
        "SELECT * FROM ltv.score_customer_range({t}, NULL, {m}) "
        "UNION ALL SELECT * FROM ltv.score_customer_range({t}, {m} + 1, NULL)"
    ).format(t=market.as_of, m=first + (last - first) // 2)
    plan = mdb.execute(psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) {}").format(halves)).fetchone()[0][0]["Plan"]
    assert plan["Node Type"] == "Gather" and plan["Workers Launched"] >= 1
    (append,) = plan["Plans"]
    assert append["Node Type"] == "Append" and append["Parallel Aware"]  # a Parallel Append
    # each half scored once, by whichever process took it
    assert [(h["Function Name"], h["Actual Loops"]) for h in append["Plans"]] == [("score_customer_range", 1)] * 2
    score_columns = psycopg.sql.SQL(", ").join(
        psycopg.sql.Identifier("h", name)
        for (name,) in mdb.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'ltv.customer_ltv_result'::regclass "
            "AND attnum > 0 ORDER BY attnum"
        )
    )
    in_halves = mdb.execute(
        psycopg.sql.SQL(
            "SELECT ROW({})::ltv.customer_ltv_result::text, h.customer_ref, h.region, h.plan_code, h.plan_tier "
            "FROM ({}) h ORDER BY h.customer_id"
        ).format(score_columns, halves)
    ).fetchall()
    whole = mdb.execute(
        f"""SELECT s::text, c.customer_ref, c.region, lp.plan_code, lp.tier
            FROM ltv.score_customers(%(t)s) s
            JOIN ltv.customers c USING (customer_id)
            LEFT JOIN {LATEST_PLAN} lp USING (customer_id)
            ORDER BY s.customer_id""",
        {"t": market.as_of},
    ).fetchall()
    assert len(whole) == 2000 and in_halves == whole
    assert sum(row[3] is not None for row in whole) > 500  # subscribers among them, with their plans


def test_segment_figures_run_in_two_parallel_parts(mdb: psycopg.Connection) -> None:
    """The segment refresh reads ltv.segment_figures for its two parts of the grouping sets side
    by side: a Parallel Append whose workers start and finish, each part run once; the parts
    together have every level exactly once, each segment of the view exactly once."""
    parts = "SELECT * FROM ltv.segment_figures(1) UNION ALL SELECT * FROM ltv.segment_figures(2)"
    plan = mdb.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {parts}").fetchone()[0][0]["Plan"]
    assert plan["Node Type"] == "Gather" and plan["Workers Launched"] >= 1
    (append,) = plan["Plans"]
    assert append["Node Type"] == "Append" and append["Parallel Aware"]
    assert [(p["Function Name"], p["Actual Loops"]) for p in append["Plans"]] == [("segment_figures", 1)] * 2
    levels = [
        {level for (level,) in mdb.execute("SELECT DISTINCT grouping_level FROM ltv.segment_figures(%s)", (part,))}
        for part in (1, 2)
    ]
    assert levels[0] | levels[1] == SEGMENT_LEVELS and not levels[0] & levels[1]
    key = "grouping_level, vendor_category, country, plan_tier, billing_interval, acquisition_channel, signup_month"
    figures = mdb.execute(f"SELECT {key}, customers, round(total_ltv, 2) FROM ({parts}) f ORDER BY 1, 2, 3, 4, 5, 6, 7")
    view = mdb.execute(f"SELECT {key}, customers, total_ltv FROM ltv.segment_ltv ORDER BY 1, 2, 3, 4, 5, 6, 7")
    assert figures.fetchall() == view.fetchall()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="part must be 1 or 2"):
        mdb.execute("SELECT * FROM ltv.segment_figures(3)")


def test_customer_history_for_a_range_of_customers(mdb: psycopg.Connection, market: Market) -> None:
    first = mdb.execute("SELECT min(customer_id) FROM ltv.customers").fetchone()[0]
    low, high = first + 100, first + 899
    ranged = mdb.execute(
        "SELECT h::text FROM ltv.customer_history(%s, NULL, %s, %s) h ORDER BY h.customer_id",
        (market.as_of, low, high),
    ).fetchall()
    filtered = mdb.execute(
        "SELECT h::text FROM ltv.customer_history(%s) h WHERE h.customer_id BETWEEN %s AND %s ORDER BY h.customer_id",
        (market.as_of, low, high),
    ).fetchall()
    assert len(ranged) == 800 and ranged == filtered
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="one customer or a range"):
        mdb.execute("SELECT * FROM ltv.customer_history(%s, %s, %s, %s)", (market.as_of, low, low, high))


def test_one_customer_is_scored_as_in_everyones_pass(mdb: psycopg.Connection, market: Market) -> None:
    """ltv.customer_ltv's path (one customer: a generic plan, its own fits' seasonal weights only)
    gives each customer the row the everyone pass behind the snapshot gives it — as text."""
    ids = [r[0] for r in mdb.execute(
        "SELECT customer_id FROM ltv.customers WHERE signed_up_at < %s ORDER BY customer_id LIMIT 40", (market.as_of,)
    )]
    everyone = dict(mdb.execute(
        "SELECT s.customer_id, s::text FROM ltv.score_customers(%s) s WHERE s.customer_id = ANY (%s)",
        (market.as_of, ids),
    ).fetchall())
    alone = {
        i: mdb.execute("SELECT s::text FROM ltv.score_customers(%s, NULL, %s) s", (market.as_of, i)).fetchone()[0]
        for i in ids
    }
    assert len(everyone) == len(ids) and alone == everyone
    assert mdb.execute(
        "SELECT count(DISTINCT bgnbd_segment) FROM ltv.score_customers(%s) WHERE customer_id = ANY (%s)",
        (market.as_of, ids),
    ).fetchone()[0] > 1  # several BG/NBD fits among them


def test_snapshot_refresh_follows_the_population_both_ways(market: Market) -> None:
    """The snapshot's rows are updated in place: a refresh as of an earlier moment must drop the
    customers not signed up yet, a later one bring them back, a deleted customer vanish — each
    time row for row what ltv.score_customers says (in a transaction rolled back at the end)."""
    compare = f"""SELECT count(*) FILTER (WHERE s.customer_id IS NULL OR sc.customer_id IS NULL
                                          OR ({", ".join("s." + c for c in SCORE_COLUMNS)}, s.as_of)
                                             IS DISTINCT FROM ({", ".join("sc." + c for c in SCORE_COLUMNS)}, %(t)s)),
                         count(s.customer_id)
                  FROM ltv.customer_ltv_snapshot s
                  FULL JOIN ltv.score_customers(%(t)s) sc USING (customer_id)"""
    earlier = market.as_of - timedelta(days=365)
    with psycopg.connect(market.url) as conn:
        everyone = conn.execute("SELECT count(*) FROM ltv.customer_ltv_snapshot").fetchone()[0]
        then = conn.execute("SELECT count(*) FROM ltv.customers WHERE signed_up_at < %s", (earlier,)).fetchone()[0]
        assert 0 < then < everyone
        refresh = "SELECT * FROM ltv.refresh_customer_ltv_snapshot(%s)"
        assert conn.execute(refresh, (earlier,)).fetchone() == (everyone - then, then)  # deleted, written
        assert conn.execute(compare, {"t": earlier}).fetchone() == (0, then)
        # this as-of took the serial path (facts dated after it): its own lookups of the
        # reference, region and plan then, against ltv.customers and the subscriptions directly
        assert conn.execute(FACTS_DATED_FROM, {"t": earlier}).fetchone()[0] is True
        mismatched, with_plan = conn.execute(
            f"""SELECT count(*) FILTER (WHERE (s.customer_ref, s.region, s.plan_code, s.plan_tier)
                                              IS DISTINCT FROM (c.customer_ref, c.region, lp.plan_code,
                                                                coalesce(lp.tier, 'none'))),
                       count(lp.plan_code)
                FROM ltv.customer_ltv_snapshot s
                JOIN ltv.customers c USING (customer_id)
                LEFT JOIN {LATEST_PLAN} lp USING (customer_id)""",
            {"t": earlier},
        ).fetchone()
        assert mismatched == 0 and with_plan > 100
        # the segments follow: the later cohorts' rows go, every level sums to the customers then
        segments = "SELECT count(*) FROM ltv.segment_ltv"
        segment_rows = conn.execute(segments).fetchone()[0]
        deleted, written = conn.execute("SELECT * FROM ltv.refresh_segment_ltv(%s)", (earlier,)).fetchone()
        assert deleted > 0 and written == segment_rows - deleted
        assert conn.execute(
            "SELECT count(DISTINCT grouping_level), min(total), max(total), max(signup_month) FROM "
            "(SELECT grouping_level, sum(customers) AS total, max(signup_month) AS signup_month "
            " FROM ltv.segment_ltv GROUP BY 1) per_level"
        ).fetchone() == (len(SEGMENT_LEVELS), then, then, conn.execute(
            "SELECT max(signup_month) FROM ltv.customer_ltv_snapshot").fetchone()[0])
        assert conn.execute(refresh, (market.as_of,)).fetchone() == (0, everyone)
        assert conn.execute(compare, {"t": market.as_of}).fetchone() == (0, everyone)
        assert conn.execute("SELECT * FROM ltv.refresh_segment_ltv(%s)", (market.as_of,)).fetchone() == (
            0, segment_rows)
        assert conn.execute(segments).fetchone()[0] == segment_rows
        conn.execute(
            "INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at) "
            "SELECT 'snapshot-newcomer', vendor_category, country, acquisition_channel, %s - interval '1 day' "
            "FROM ltv.customers LIMIT 1",
            (market.as_of,),
        )
        assert conn.execute(refresh, (market.as_of,)).fetchone() == (0, everyone + 1)
        assert conn.execute(compare, {"t": market.as_of}).fetchone() == (0, everyone + 1)
        conn.execute("DELETE FROM ltv.customers WHERE customer_ref = 'snapshot-newcomer'")
        assert conn.execute(refresh, (market.as_of,)).fetchone() == (1, everyone)
        assert conn.execute(compare, {"t": market.as_of}).fetchone() == (0, everyone)
        conn.rollback()


def test_snapshot_channel_formula_ltv_and_plan(mdb: psycopg.Connection, market: Market) -> None:
    formula = dict(
        mdb.execute("SELECT acquisition_channel, formula_ltv FROM ltv.formula_ltv(%s)", (market.as_of,)).fetchall()
    )
    per_channel = mdb.execute(
        "SELECT acquisition_channel, array_agg(DISTINCT channel_formula_ltv) FROM ltv.customer_ltv_snapshot GROUP BY 1"
    ).fetchall()
    assert len(per_channel) == 6
    for channel, values in per_channel:
        assert values == [formula[channel]] and values[0] > 0
    # the plan is that of the latest subscription; its interval agrees with score_customers'
    mismatched = mdb.execute(
        """SELECT count(*) FROM ltv.customer_ltv_snapshot s JOIN ltv.plans p USING (plan_code)
           WHERE p.tier <> s.plan_tier OR p.billing_interval <> s.billing_interval"""
    ).fetchone()[0]
    assert mismatched == 0
    assert (
        mdb.execute("SELECT count(*) FROM ltv.customer_ltv_snapshot WHERE plan_tier = 'none'").fetchone()[0]
        == mdb.execute("SELECT count(*) FROM ltv.customer_ltv_snapshot WHERE subscription_status = 'none'").fetchone()[
            0
        ]
    )


def test_single_customer_lookup_uses_the_unique_index(mdb: psycopg.Connection) -> None:
    customer_id = mdb.execute("SELECT min(customer_id) + 1000 FROM ltv.customers").fetchone()[0]
    plan = "\n".join(
        r[0]
        for r in mdb.execute("EXPLAIN SELECT * FROM ltv.customer_ltv_snapshot WHERE customer_id = %s", (customer_id,))
    )
    assert "Index Scan using customer_ltv_snapshot_store_pkey" in plan, plan
    row = mdb.execute(
        "SELECT customer_id, total_ltv FROM ltv.customer_ltv_snapshot WHERE customer_id = %s", (customer_id,)
    ).fetchone()
    assert row[0] == customer_id and row[1] > 0


# -- segment_ltv --------------------------------------------------------------------------------
DIMENSIONS = {
    "vendor_category": ("vendor_category",),
    "country": ("country",),
    "plan": ("plan_tier", "billing_interval"),
    "acquisition_channel": ("acquisition_channel",),
    "signup_cohort": ("signup_cohort",),
}


def _q(value: float | Decimal | None, places: int) -> Decimal | None:
    """Round like PostgreSQL's round(numeric, places): half away from zero."""
    return None if value is None else Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


def test_segment_ltv_recomputed_from_the_snapshot(mdb: psycopg.Connection) -> None:
    mdb.row_factory = dict_row
    margin = mdb.execute("SELECT margin_subscription FROM ltv.settings").fetchone()["margin_subscription"]
    cac = {
        (r["acquisition_channel"], r["signup_month"]): (None if r["spend_unconverted"] else (r["cac"] or Decimal(0)))
        for r in mdb.execute("SELECT * FROM ltv.unit_economics WHERE acquisition_channel <> 'all' AND period <> 'all'")
    }
    customers = mdb.execute("SELECT * FROM ltv.customer_ltv_snapshot").fetchall()
    for c in customers:
        c["signup_cohort"] = c["signup_month"].strftime("%Y-%m")
        c["cac"] = cac[(c["acquisition_channel"], c["signup_month"])]
    segments = mdb.execute("SELECT * FROM ltv.segment_ltv").fetchall()
    assert {s["grouping_level"] for s in segments} == SEGMENT_LEVELS

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for level in SEGMENT_LEVELS:
        dims = [col for d in level.split("+") if d != "total" for col in DIMENSIONS[d]]
        for c in customers:
            key = tuple(
                c[col] if col in dims else "all"
                for col in (
                    "vendor_category",
                    "country",
                    "plan_tier",
                    "billing_interval",
                    "acquisition_channel",
                    "signup_cohort",
                )
            )
            groups[(level, *key)].append(c)
    assert len(segments) == len(groups)  # one row per non-empty segment of every level

    for s in segments:
        key = (
            s["grouping_level"],
            s["vendor_category"],
            s["country"],
            s["plan_tier"],
            s["billing_interval"],
            s["acquisition_channel"],
            s["signup_cohort"],
        )
        members = groups[key]
        ltv = [c["total_ltv"] for c in members if c["total_ltv"] is not None]
        active = [c for c in members if c["subscription_status"] == "active"]
        mrr = sum((c["current_mrr"] for c in members), Decimal(0))
        known_cac = [c["cac"] for c in members if c["cac"] is not None]
        mean_ltv = sum(ltv) / len(ltv)
        mean_cac = sum(known_cac) / len(known_cac)
        arpa = mrr / len(active) if active else None
        assert s["customers"] == len(members), key
        assert s["scored_customers"] == len(ltv) and s["active_subscribers"] == len(active), key
        assert s["total_ltv"] == _q(sum(ltv), 2), key
        assert s["mean_ltv"] == _q(mean_ltv, 2), key
        median, p90 = np.percentile([float(v) for v in ltv], [50, 90])  # linear = percentile_cont
        assert abs(s["median_ltv"] - _q(median, 2)) <= Decimal("0.01"), key
        assert abs(s["p90_ltv"] - _q(p90, 2)) <= Decimal("0.01"), key
        assert s["mrr"] == _q(mrr, 2), key
        assert s["arpa"] == (None if arpa is None else _q(arpa, 4)), key
        assert s["mean_cac"] == _q(mean_cac, 2), key
        assert s["ltv_to_cac"] == (_q(mean_ltv / mean_cac, 2) if mean_cac else None), key
        expected_payback = _q(mean_cac / (arpa * margin), 1) if arpa else None
        assert s["cac_payback_months"] == expected_payback, key


def test_segment_rollups_equal_the_sums_of_their_children(mdb: psycopg.Connection) -> None:
    finest = "vendor_category+country+plan+acquisition_channel+signup_cohort"
    # every rollup row against its finest-level children, summed by an independent query
    mismatches = mdb.execute(
        """SELECT r.grouping_level, r.vendor_category, r.country, r.acquisition_channel, r.customers, sum(f.customers),
                  r.active_subscribers, sum(f.active_subscribers), r.mrr, sum(f.mrr)
           FROM ltv.segment_ltv r
           JOIN ltv.segment_ltv f
             ON f.grouping_level = %(finest)s
            AND r.vendor_category IN ('all', f.vendor_category) AND r.country IN ('all', f.country)
            AND r.plan_tier IN ('all', f.plan_tier) AND r.billing_interval IN ('all', f.billing_interval)
            AND r.acquisition_channel IN ('all', f.acquisition_channel) AND r.signup_cohort IN ('all', f.signup_cohort)
           WHERE r.grouping_level <> %(finest)s
           GROUP BY r.grouping_level, r.vendor_category, r.country, r.plan_tier, r.billing_interval,
                    r.acquisition_channel, r.signup_cohort, r.customers, r.active_subscribers, r.mrr
           HAVING r.customers <> sum(f.customers) OR r.active_subscribers <> sum(f.active_subscribers)
               OR abs(r.mrr - sum(f.mrr)) > 0.005 * count(*)""",
        {"finest": finest},
    ).fetchall()
    assert mismatches == []
    # total LTV and the mean from the customers themselves (sums of rounded children drift)
    total = mdb.execute(
        "SELECT customers, total_ltv, mean_ltv FROM ltv.segment_ltv WHERE grouping_level = 'total'"
    ).fetchone()
    direct = mdb.execute(
        "SELECT count(*), round(sum(total_ltv), 2), round(avg(total_ltv), 2) FROM ltv.customer_ltv_snapshot"
    ).fetchone()
    assert total == direct
    by_category = mdb.execute(
        """SELECT s.vendor_category, s.customers, s.total_ltv, d.n, d.total
           FROM ltv.segment_ltv s
           JOIN (SELECT vendor_category, count(*) AS n, round(sum(total_ltv), 2) AS total
                 FROM ltv.customer_ltv_snapshot GROUP BY 1) d USING (vendor_category)
           WHERE s.grouping_level = 'vendor_category'"""
    ).fetchall()
    assert len(by_category) == 10
    assert all(r[1] == r[3] and r[2] == r[4] for r in by_category)


def test_photographers_by_country_and_channel_is_one_index_lookup(mdb: psycopg.Connection) -> None:
    query = """SELECT country, acquisition_channel, customers, mean_ltv, median_ltv, p90_ltv, ltv_to_cac,
                      cac_payback_months
               FROM ltv.segment_ltv
               WHERE vendor_category = 'photographer'
                 AND grouping_level = 'vendor_category+country+acquisition_channel'"""
    plan = "\n".join(r[0] for r in mdb.execute("EXPLAIN " + query))
    assert "segment_ltv_store_pkey" in plan, plan
    rows = mdb.execute(query).fetchall()
    photographers = mdb.execute(
        "SELECT count(*) FROM ltv.customer_ltv_snapshot WHERE vendor_category = 'photographer'"
    ).fetchone()[0]
    assert sum(r[2] for r in rows) == photographers > 300
    assert {r[1] for r in rows} == {"organic", "paid_search", "paid_social", "referral", "wedding_fair", "partner"}
    # paid channels cost more per supplier than organic, so their LTV:CAC is lower
    by_channel = dict(
        mdb.execute(
            "SELECT acquisition_channel, ltv_to_cac FROM ltv.segment_ltv "
            "WHERE vendor_category = 'photographer' AND grouping_level = 'vendor_category+acquisition_channel'"
        ).fetchall()
    )
    assert by_channel["organic"] > by_channel["paid_search"] > 0


def test_a_reader_answers_the_executive_question_from_the_views(mdb: psycopg.Connection) -> None:
    mdb.execute("SET ROLE ltv_reader")
    try:
        rows = mdb.execute(
            """SELECT country, acquisition_channel, mean_ltv, cac_payback_months FROM ltv.segment_ltv
               WHERE vendor_category = 'photographer'
                 AND grouping_level = 'vendor_category+country+acquisition_channel'"""
        ).fetchall()
        assert len(rows) >= 30
        assert mdb.execute("SELECT count(*) FROM ltv.view_freshness WHERE populated").fetchone()[0] == len(MATVIEWS)
        for view in MATVIEWS:
            mdb.execute(f"SELECT * FROM ltv.{view} LIMIT 1").fetchall()
    finally:
        mdb.execute("RESET ROLE")


# -- unit_economics -----------------------------------------------------------------------------
def test_unit_economics_months_are_channel_economics_and_rollups_follow_its_definitions(
    mdb: psycopg.Connection, market: Market
) -> None:
    mdb.row_factory = dict_row
    margin = mdb.execute("SELECT margin_subscription FROM ltv.settings").fetchone()["margin_subscription"]
    rows = {(r["acquisition_channel"], r["period"]): r for r in mdb.execute("SELECT * FROM ltv.unit_economics")}
    economics = mdb.execute("SELECT * FROM ltv.channel_economics(%s)", (market.as_of,)).fetchall()
    formula = {r["acquisition_channel"]: r for r in mdb.execute("SELECT * FROM ltv.formula_ltv(%s)", (market.as_of,))}
    model = {
        (r["acquisition_channel"], r["signup_month"]): r["mean"]
        for r in mdb.execute(
            "SELECT acquisition_channel, signup_month, round(avg(total_ltv), 2) AS mean "
            "FROM ltv.customer_ltv_snapshot GROUP BY 1, 2"
        )
    }
    for e in economics:
        u = rows[(e["acquisition_channel"], e["signup_month"].strftime("%Y-%m"))]
        assert u["signup_month"] == e["signup_month"]
        for column in ("new_customers", "spend", "spend_unconverted", "cac", "formula_ltv"):
            assert u[column] == e[column], (column, e)
        assert u["formula_ltv_to_cac"] == e["ltv_to_cac"] and u["cac_payback_months"] == e["cac_payback_months"]
        assert u["mean_model_ltv"] == model.get((e["acquisition_channel"], e["signup_month"]))
    channels = {e["acquisition_channel"] for e in economics}
    for channel in (*channels, "all"):
        months = [e for e in economics if channel in ("all", e["acquisition_channel"])]
        u = rows[(channel, "all")]
        spend = sum(e["spend"] for e in months if e["spend"] is not None)
        new = sum(e["new_customers"] for e in months)
        cac = spend / new
        assert u["signup_month"] is None
        assert u["new_customers"] == new and u["spend"] == spend and u["cac"] == _q(cac, 2)
        assert u["formula_ltv"] == formula[channel]["formula_ltv"] and u["arpa"] == formula[channel]["arpa"]
        assert u["formula_ltv_to_cac"] == _q(formula[channel]["formula_ltv"] / cac, 2)
        assert u["cac_payback_months"] == _q(cac / (formula[channel]["arpa"] * margin), 1)
    snapshot_mean = mdb.execute("SELECT round(avg(total_ltv), 2) AS m FROM ltv.customer_ltv_snapshot").fetchone()["m"]
    assert rows[("all", "all")]["mean_model_ltv"] == snapshot_mean
    assert rows[("all", "all")]["new_customers"] == 2000
    # the paid channels' CAC is what the generator planted (GBP per supplier, ±noise)
    assert 90 < rows[("paid_search", "all")]["cac"] < 150 and rows[("organic", "all")]["cac"] < 10


# -- mrr_movements ------------------------------------------------------------------------------
def _movement_rows(conn: psycopg.Connection) -> dict[tuple[int, date], dict[str, Decimal]]:
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT customer_id, month, {', '.join(MOVEMENTS)}, one_off_revenue, movement FROM ltv.mrr_movements"
    )
    return {(r["customer_id"], r["month"]): r for r in rows}


def test_mrr_movements_match_customer_history_at_every_month_end(mdb: psycopg.Connection, market: Market) -> None:
    actual = _movement_rows(mdb)
    expected = expected_movements(market.series)
    with_mrr = {k: {c: v[c] for c in MOVEMENTS} for k, v in actual.items() if v["opening_mrr"] or v["closing_mrr"]}
    assert with_mrr == expected
    kinds = {v["movement"] for v in actual.values()}
    assert {"new", "churn", "unchanged", "expansion", "contraction", "reactivation", "none"} <= kinds
    # the current month's closing MRR is today's MRR of the snapshot
    current = max(m for _, m in actual)
    closing_now = sum(v["closing_mrr"] for (_, m), v in actual.items() if m == current)
    assert closing_now == mdb.execute("SELECT sum(current_mrr) FROM ltv.customer_ltv_snapshot").fetchone()[0] > 0


def test_mrr_bridge_reconciles_every_month(mdb: psycopg.Connection, market: Market) -> None:
    bridge = mdb.execute(
        """SELECT month, sum(opening_mrr), sum(new_mrr), sum(expansion_mrr), sum(contraction_mrr), sum(churned_mrr),
                  sum(reactivation_mrr), sum(closing_mrr)
           FROM ltv.mrr_movements GROUP BY month ORDER BY month"""
    ).fetchall()
    assert len(bridge) >= 60
    previous_closing = Decimal(0)
    for month, opening, new, expansion, contraction, churned, reactivation, closing in bridge:
        assert opening + new + expansion - contraction - churned + reactivation == closing, month
        assert opening == previous_closing, month  # last month's closing is this month's opening
        assert closing == sum(market.series[month].values(), Decimal(0)), month  # independent month-end MRR
        previous_closing = closing


def test_one_off_revenue_is_kept_apart_from_mrr(mdb: psycopg.Connection, market: Market) -> None:
    one_off_total = mdb.execute("SELECT sum(one_off_revenue) FROM ltv.mrr_movements").fetchone()[0]
    history = mdb.execute(
        "SELECT sum(one_off_net), sum(recurring_net) FROM ltv.customer_history(%s)", (market.as_of,)
    ).fetchone()
    assert one_off_total == history[0] > 0
    by_month = dict(
        mdb.execute(
            """SELECT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date,
                  sum(CASE kind WHEN 'one_off' THEN amount_base ELSE -amount_base END)
           FROM ltv.revenue_events WHERE subscription_id IS NULL AND kind <> 'subscription' GROUP BY 1"""
        ).fetchall()
    )
    view_by_month = dict(
        mdb.execute(
            "SELECT month, sum(one_off_revenue) FROM ltv.mrr_movements GROUP BY 1 HAVING sum(one_off_revenue) <> 0"
        ).fetchall()
    )
    assert view_by_month == {m: v for m, v in by_month.items() if v != 0}


def _handmade_history(conn: psycopg.Connection) -> dict[str, int]:
    """Five GBP customers whose month-end MRR is known by hand (see test_mrr_rules_on_a_handmade_history)."""
    conn.execute(
        """INSERT INTO ltv.plans VALUES ('basic_month_gbp', 'basic', 'month', 1900, 'GBP'),
                                        ('pro_month_gbp', 'pro', 'month', 3900, 'GBP'),
                                        ('basic_year_gbp', 'basic', 'year', 19000, 'GBP')"""
    )
    ids = {}
    for ref, signup in (
        ("A", "2025-01-10"),
        ("B", "2025-02-15"),
        ("C", "2025-04-02"),
        ("D", "2025-01-03"),
        ("E", "2025-06-01"),
    ):
        ids[ref] = conn.execute(
            "INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at) "
            "VALUES (%s, 'photographer', 'GB', 'organic', %s::timestamptz) RETURNING customer_id",
            (ref, signup + "T00:00:00Z"),
        ).fetchone()[0]
    subscriptions = [
        # ref, sub, plan, started, cancelled, ended, charges (day, pounds)
        ("A", "A1", "basic_month_gbp", "2025-01-10", "2025-03-10", "2025-03-10", ["2025-01-10", "2025-02-10"]),
        (
            "A",
            "A2",
            "pro_month_gbp",
            "2025-03-10",
            "2025-05-20",
            "2025-06-10",
            ["2025-03-10", "2025-04-10", "2025-05-10"],
        ),
        ("A", "A3", "basic_month_gbp", "2025-08-05", "2025-09-15", "2025-10-05", ["2025-08-05", "2025-09-05"]),
        ("B", "B1", "basic_year_gbp", "2025-02-15", "2025-12-10", "2026-02-15", ["2025-02-15"]),
        ("C", "C1", "basic_month_gbp", "2025-04-02", "2025-05-10", "2025-05-10", ["2025-04-02", "2025-05-02"]),
        ("C", "C2", "basic_month_gbp", "2025-05-25", "2025-07-03", "2025-07-25", ["2025-05-25", "2025-06-25"]),
        ("D", "D1", "pro_month_gbp", "2025-01-03", "2025-03-03", "2025-03-03", ["2025-01-03", "2025-02-03"]),
        ("D", "D2", "basic_month_gbp", "2025-03-03", None, None, ["2025-03-03", "2025-04-03"]),
        ("E", "E1", "basic_month_gbp", "2025-06-01", "2025-08-01", "2025-08-01", ["2025-06-01", "2025-07-01"]),
    ]
    price = {"basic_month_gbp": 1900, "pro_month_gbp": 3900, "basic_year_gbp": 19000}
    sub_ids = {}
    for ref, sub, plan, started, cancelled, ended, charges in subscriptions:
        sub_ids[sub] = sub_id = conn.execute(
            "INSERT INTO ltv.subscriptions"
            " (customer_id, subscription_ref, plan_code, started_at, cancelled_at, ended_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING subscription_id",
            (
                ids[ref],
                sub,
                plan,
                started + "T00:00:00Z",
                cancelled and cancelled + "T00:00:00Z",
                ended and ended + "T00:00:00Z",
            ),
        ).fetchone()[0]
        for k, day in enumerate(charges):
            _event(conn, ids[ref], day, "subscription", price[plan], f"{sub}-{k}", sub_id)
    _event(conn, ids["A"], "2025-04-15", "one_off", 5000, "A-oneoff")
    _event(conn, ids["A"], "2025-04-20", "refund", 1000, "A-oneoff-refund")
    _event(conn, ids["D"], "2025-02-05", "refund", 500, "D1-1-refund", sub_ids["D1"])  # MRR is the charge, not net
    return ids


def _event(
    conn: psycopg.Connection, customer: int, day: str, kind: str, minor: int, ref: str, subscription: int | None = None
) -> None:
    conn.execute(
        """INSERT INTO ltv.revenue_events (customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base,
                                           source, external_id, subscription_id)
           VALUES (%s, %s::timestamptz, %s, %s, 'GBP', 1, %s / 100.0, 'manual', %s, %s)""",
        (customer, day + "T00:00:00Z", kind, minor, minor, ref, subscription),
    )


def test_mrr_rules_on_a_handmade_history(db: psycopg.Connection) -> None:
    ids = _handmade_history(db)
    db.execute("SELECT ltv.maintain_revenue_partitions()")
    db.execute("SELECT count(*) FROM ltv.refresh_views()")
    rows = _movement_rows(db)
    d = Decimal
    annual = d("15.8333")  # £190 a year ÷ 12, from the one annual charge

    def bridge(ref: str) -> list[tuple]:
        return [
            (m.strftime("%Y-%m"), r["movement"], r["opening_mrr"], r["closing_mrr"], r["one_off_revenue"])
            for (c, m), r in sorted(rows.items())
            if c == ids[ref]
        ]

    # A: new, upgrade (expansion), a one-off purchase and its partial refund beside MRR, cancelled
    # mid-May (churn at May's end), back in August after month-ends at 0 (reactivation), churn again
    assert bridge("A") == [
        ("2025-01", "new", 0, d(19), 0),
        ("2025-02", "unchanged", d(19), d(19), 0),
        ("2025-03", "expansion", d(19), d(39), 0),
        ("2025-04", "unchanged", d(39), d(39), d(40)),
        ("2025-05", "churn", d(39), 0, 0),
        ("2025-08", "reactivation", 0, d(19), 0),
        ("2025-09", "churn", d(19), 0, 0),
    ]
    # B: an annual charge is MRR of £190 ÷ 12 at each month-end until the cancellation
    assert bridge("B") == [("2025-02", "new", 0, annual, 0)] + [
        (f"2025-{m:02d}", "unchanged", annual, annual, 0) for m in range(3, 12)
    ] + [("2025-12", "churn", annual, 0, 0)]
    # C: cancelled and resubscribed within May: never 0 at a month-end, so no churn or reactivation
    assert bridge("C") == [
        ("2025-04", "new", 0, d(19), 0),
        ("2025-05", "unchanged", d(19), d(19), 0),
        ("2025-06", "unchanged", d(19), d(19), 0),
        ("2025-07", "churn", d(19), 0, 0),
    ]
    # D: downgrade (contraction); still active without further charges, so MRR holds to today
    d_rows = bridge("D")
    assert d_rows[:4] == [
        ("2025-01", "new", 0, d(39), 0),
        ("2025-02", "unchanged", d(39), d(39), 0),
        ("2025-03", "contraction", d(39), d(19), 0),
        ("2025-04", "unchanged", d(19), d(19), 0),
    ]
    today = datetime.now(UTC).date()
    assert d_rows[-1] == (today.strftime("%Y-%m"), "unchanged", d(19), d(19), 0)
    assert len(d_rows) == month_index(today) - month_index(date(2025, 1, 1)) + 1
    # E: started, charged and cancelled exactly at midnight on the 1st: a charge at a month-end
    # instant belongs to the next month, a cancellation at it ends the month at 0
    assert bridge("E") == [("2025-06", "new", 0, d(19), 0), ("2025-07", "churn", d(19), 0, 0)]
    # and the whole thing is ltv.customer_history's month-end MRR
    as_of = db.execute("SELECT last_refreshed_at FROM ltv.view_refreshes WHERE view_name = 'mrr_movements'").fetchone()[
        0
    ]
    expected = expected_movements(month_end_mrr(db, date(2025, 1, 1), as_of))
    assert {
        k: {c: v[c] for c in MOVEMENTS} for k, v in rows.items() if v["opening_mrr"] or v["closing_mrr"]
    } == expected


# -- cohort_retention ---------------------------------------------------------------------------
def test_cohort_retention_recomputed_from_month_end_mrr(mdb: psycopg.Connection, market: Market) -> None:
    mdb.row_factory = dict_row
    signup = {
        r["customer_id"]: r["m"]
        for r in mdb.execute(
            "SELECT customer_id, date_trunc('month', signed_up_at AT TIME ZONE 'UTC')::date AS m FROM ltv.customers"
        )
    }
    cohorts: dict[date, list[int]] = defaultdict(list)
    for c, m in signup.items():
        cohorts[m].append(c)
    rows = mdb.execute("SELECT * FROM ltv.cohort_retention ORDER BY cohort_month, months_since_signup").fetchall()
    current = month_index(market.as_of.astimezone(UTC).date())
    assert len(rows) == sum(current - month_index(m) + 1 for m in cohorts)
    for r in rows:
        cohort, k = r["cohort_month"], r["months_since_signup"]
        month = month_of(month_index(cohort) + k)
        start = {c: market.series[cohort][c] for c in cohorts[cohort] if c in market.series[cohort]}
        now = {c: market.series[month][c] for c in start if c in market.series[month]}
        starting_mrr = sum(start.values(), Decimal(0))
        assert r["month"] == month and r["cohort_signups"] == len(cohorts[cohort])
        assert r["customers_at_start"] == len(start) and r["retained_customers"] == len(now), (cohort, k)
        assert r["starting_mrr"] == starting_mrr and r["retained_mrr"] == sum(now.values(), Decimal(0)), (cohort, k)
        if start:
            assert r["customer_retention"] == _q(Decimal(len(now)) / len(start), 4)
            assert r["net_revenue_retention"] == _q(sum(now.values(), Decimal(0)) / starting_mrr, 4)
            capped = sum((min(v, start[c]) for c, v in now.items()), Decimal(0))
            assert r["gross_revenue_retention"] == _q(capped / starting_mrr, 4)
        # the invariants an analyst relies on
        assert r["retained_customers"] <= r["customers_at_start"] <= r["cohort_signups"]
        if k == 0 and start:
            assert r["customer_retention"] == r["gross_revenue_retention"] == r["net_revenue_retention"] == 1
        if r["gross_revenue_retention"] is not None:
            assert r["gross_revenue_retention"] <= 1 and r["gross_revenue_retention"] <= r[
                "net_revenue_retention"
            ] + Decimal("0.0001")
    twelve = [r["customer_retention"] for r in rows if r["months_since_signup"] == 12 and r["customers_at_start"] >= 20]
    assert twelve and all(Decimal("0.2") < x < Decimal("0.9") for x in twelve)


# -- catalog: comments and unique indexes ---------------------------------------------------------
def test_every_view_and_column_has_a_comment(mdb: psycopg.Connection) -> None:
    for view in VIEWS:
        comment = mdb.execute("SELECT obj_description(%s::regclass, 'pg_class')", (f"ltv.{view}",)).fetchone()[0]
        assert comment and len(comment) > 40, view
        missing = mdb.execute(
            """SELECT a.attname FROM pg_attribute a
               WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 AND coalesce(length(col_description(a.attrelid, a.attnum)), 0) < 10""",
            (f"ltv.{view}",),
        ).fetchall()
        assert missing == [], (view, missing)


def test_each_view_has_a_plain_unique_index(mdb: psycopg.Connection) -> None:
    """On the materialized view itself, or for a maintained view on the table it reads."""
    rows = mdb.execute(
        """SELECT c.relname, count(*) FILTER (WHERE i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_index i ON i.indrelid = c.oid
           WHERE n.nspname = 'ltv' AND (c.relkind = 'm' OR c.relname = ANY (%s)) GROUP BY c.relname""",
        (list(MAINTAINED.values()),),
    ).fetchall()
    expected = {MAINTAINED.get(v, v): 1 for v in MATVIEWS}
    assert dict(rows) == expected
    key_query = """SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                   WHERE i.indrelid = %s::regclass AND i.indisunique"""
    assert mdb.execute(key_query, ("ltv.mrr_movement_store",)).fetchone()[0] == ["customer_id", "month"]
    assert mdb.execute(key_query, ("ltv.customer_ltv_snapshot_store",)).fetchone()[0] == ["customer_id"]
    assert mdb.execute(key_query, ("ltv.segment_ltv_store",)).fetchone()[0] == [
        "vendor_category", "grouping_level", "country", "acquisition_channel", "plan_tier", "billing_interval",
        "signup_cohort"]
    plan = "\n".join(r[0] for r in mdb.execute(
        "EXPLAIN SELECT * FROM ltv.mrr_movements WHERE customer_id = 42 AND month = '2025-01-01'"
    ).fetchall())
    assert "Index Scan using mrr_movement_store_pkey" in plan, plan


# -- concurrency --------------------------------------------------------------------------------
def test_concurrent_refresh_keeps_readers_unblocked(market: Market) -> None:
    # the refresh rewrites the snapshot's table from its first statement to its commit
    lock_held = """SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND granted AND mode = 'RowExclusiveLock'
                                  AND relation = 'ltv.customer_ltv_snapshot_store'::regclass)"""
    result: dict[str, object] = {}
    # the refresher's transaction is rolled back at the end: the shared market stays as it was
    with (
        psycopg.connect(market.url) as refresher,
        psycopg.connect(market.url, autocommit=True) as reader,
        psycopg.connect(market.url, autocommit=True) as monitor,
    ):
        refresher_pid = refresher.info.backend_pid
        reader.execute("SET statement_timeout = '300ms'")
        expected = reader.execute("SELECT count(*), sum(total_ltv) FROM ltv.customer_ltv_snapshot").fetchone()

        def refresh() -> None:
            try:
                result["rows"] = refresher.execute(
                    "SELECT * FROM ltv.refresh_views(ARRAY['customer_ltv_snapshot'])"
                ).fetchall()
            except Exception as exc:  # surfaced below
                result["error"] = exc

        thread = threading.Thread(target=refresh)
        thread.start()
        deadline = time.monotonic() + 30
        while not monitor.execute(lock_held, (refresher_pid,)).fetchone()[0]:
            assert thread.is_alive() and time.monotonic() < deadline, "the refresh never took its lock"
            time.sleep(0.01)
        reads_during_refresh = 0
        while thread.is_alive():
            seen = reader.execute("SELECT count(*), sum(total_ltv) FROM ltv.customer_ltv_snapshot").fetchone()
            assert seen == expected  # the previous contents, whole, within 300 ms
            if monitor.execute(lock_held, (refresher_pid,)).fetchone()[0]:
                reads_during_refresh += 1
        thread.join()
        refresher.rollback()
    assert "error" not in result, result.get("error")
    assert result["rows"][0][:2] == ("customer_ltv_snapshot", True)
    assert reads_during_refresh >= 5


def test_a_plain_refresh_would_block_the_same_reader(market: Market) -> None:
    """The control for the test above: without CONCURRENTLY the reader times out."""
    with psycopg.connect(market.url) as blocker, psycopg.connect(market.url, autocommit=True) as reader:
        reader.execute("SET statement_timeout = '300ms'")
        blocker.execute("REFRESH MATERIALIZED VIEW ltv.cohort_retention")
        with pytest.raises(psycopg.errors.QueryCanceled):
            reader.execute("SELECT count(*) FROM ltv.cohort_retention")
        blocker.rollback()
        assert reader.execute("SELECT count(*) FROM ltv.cohort_retention").fetchone()[0] > 0


# -- pg_cron --------------------------------------------------------------------------------------
def test_jobs_are_registered_and_their_commands_run(empty_db_url: str) -> None:
    jobs = _revision_module().JOBS
    assert {j.name for j in jobs} == {
        "refresh-views",
        "refresh-history-views",
        "refit-models",
        "analyze-revenue-events",
    }
    dbname = conninfo_to_dict(empty_db_url)["dbname"]
    upgrade_head(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
        _handmade_history(conn)
        with psycopg.connect(with_dbname(empty_db_url, cron_db), autocommit=True) as cron:
            try:
                registered = {
                    r[0]: r[1:]
                    for r in cron.execute(
                        "SELECT jobname, schedule, command, database, active FROM cron.job WHERE jobname LIKE %s",
                        (f"ltv:{dbname}:%",),
                    )
                }
                for job in jobs:
                    assert registered[job_name(dbname, job)] == (job.schedule, job.command, dbname, True), job.name
                    conn.execute(job.command)  # the body, run directly, succeeds
                assert conn.execute("SELECT count(*) FROM ltv.view_freshness WHERE refresh_count >= 2").fetchone()[
                    0
                ] == len(MATVIEWS)
            finally:
                cron.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %s", (f"ltv:{dbname}:%",))
