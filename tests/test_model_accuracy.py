"""The models on the synthetic marketplace: parameter recovery against the generator's truth,
and backtest accuracy on the demo marketplace (issue 3).

One synthetic marketplace of 100,000 suppliers (twice the `ltv-db demo` size: issue 3 asks for
parameter recovery on at least 100,000) is loaded once per module through the real ingestion
engine into its own database.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from ltv_db import demo_data
from tests.conftest import TEMPLATE_DB, create_database, drop_database, run_cli

DEMO = demo_data.DemoConfig(suppliers=100_000, seed=42)
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
BACKTEST_CUTOFF = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_url(pg_server_url: str, template_url: str) -> Iterator[str]:
    name = f"ltv_demo_{os.getpid()}"
    url = create_database(pg_server_url, name, TEMPLATE_DB)
    with psycopg.connect(url) as conn:
        demo_data.load(conn, DEMO)
        conn.commit()
        conn.execute("SELECT * FROM ltv.refit_models(%s, 500)", (AS_OF,))
        conn.commit()
    yield url
    drop_database(pg_server_url, name)


def _fits(url: str) -> dict[tuple[str, str], dict]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT model, segment, params, std_errors, n_customers FROM ltv.model_fits WHERE is_active"
        ).fetchall()
    return {(r["model"], r["segment"]): r for r in rows}


def _truth(url: str) -> dict[tuple[str, str], dict]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT model, segment, params FROM ltv.synthetic_truth").fetchall()
    return {(r["model"], r["segment"]): r["params"] for r in rows}


PARAMETERS = {"sbg": ("alpha", "beta"), "bgnbd": ("r", "alpha", "a", "b"), "gamma_gamma": ("p", "q", "v")}


def test_fitted_parameters_recover_the_truth(demo_url: str) -> None:
    """Issue 3: within 5 % of the truth for segments with enough data. A parameter has enough
    data when its fit's standard error is at most 2.5 % of it (5 % is then 2 SE: resolvable);
    those must be within 5 %. The others (the annual sBG segments hold ~2,500 subscriptions
    here, SE 7-14 %) must be within 4 standard errors: 40 parameters are checked, so 4 SE keeps
    the family-wise false-alarm rate near 0.3 %. (benchmarks/bench_models.py checks 5 % at
    1,000,000 suppliers.)"""
    fits, truth = _fits(demo_url), _truth(demo_url)
    resolvable = checked = 0
    for (model, segment), true_params in truth.items():
        fit = fits.get((model, segment))
        assert fit is not None, f"no active {model} fit for {segment} (n too small?)"
        for name in PARAMETERS[model]:
            true = float(true_params[name])
            got = float(fit["params"][name])
            se = float(fit["std_errors"][name])
            if se <= 0.025 * true:
                assert abs(got - true) <= 0.05 * true, (model, segment, name, got, true, se)
                resolvable += 1
            else:
                assert abs(got - true) <= 4 * se, (model, segment, name, got, true, se)
            checked += 1
    assert checked == sum(len(PARAMETERS[m]) for m, _ in truth)
    assert resolvable >= 10, resolvable  # 13 of the 40 are resolvable to 5 % at this size


def test_six_month_backtest_accuracy(demo_url: str) -> None:
    with psycopg.connect(demo_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT * FROM ltv.backtest(%s, 6, 500)", (BACKTEST_CUTOFF,)).fetchall()
        conn.commit()
        # the backtest recorded its fits, never as active ones
        purposes = conn.execute(
            "SELECT purpose, bool_or(is_active) AS any_active FROM ltv.model_fits GROUP BY purpose"
        ).fetchall()
        # actual revenue recounted independently from the events
        recount = conn.execute(
            """SELECT sum(CASE WHEN e.kind IN ('subscription', 'one_off') THEN e.amount_base ELSE -e.amount_base END)
               FROM ltv.revenue_events e JOIN ltv.customers c USING (customer_id)
               WHERE c.signed_up_at < %(cut)s AND e.occurred_at >= %(cut)s
                 AND e.occurred_at < %(cut)s + interval '6 months'""",
            {"cut": BACKTEST_CUTOFF},
        ).fetchone()["sum"]
    assert {p["purpose"]: p["any_active"] for p in purposes} == {"production": True, "backtest": False}
    overall = next(r for r in rows if r["level"] == "all")
    assert overall["actual"] == round(recount, 2)
    # the issue-3 targets: >= 95 % overall and >= 90 % for every segment of >= 1,000 customers
    # (before revision 0005's notice and season adjustments: 91.4 % and 88.8 %)
    assert overall["accuracy"] >= 0.95, overall
    assert overall["rank_correlation"] > 0.5
    segments = [r for r in rows if r["level"] == "vendor_category" and r["customers"] >= 1000]
    assert len(segments) == 10
    for row in segments:
        assert row["accuracy"] >= 0.90, row
    # one-off repeat transactions: predicted vs actual reported, and in the right range
    assert 0.9 <= overall["predicted_purchases"] / overall["actual_purchases"] <= 1.1


def _true_season_index() -> list[float]:
    """The generator's wedding season w(t) = 1 + A cos(2π (t − peak) / year), averaged over each
    calendar month of a non-leap year by the exact integral, scaled to a mean of 1."""
    amplitude, peak = demo_data.ONE_OFF_SEASON_AMPLITUDE, demo_data.ONE_OFF_SEASON_PEAK_DAY
    omega = 2 * math.pi / demo_data.YEAR_DAYS
    means, start = [], 0
    for days in (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31):
        ends = start + days
        integral = days + amplitude / omega * (math.sin(omega * (ends - peak)) - math.sin(omega * (start - peak)))
        means.append(integral / days)
        start += days
    return [m / (sum(means) / 12) for m in means]


def test_seasonal_index_recovers_the_generators_wedding_season(demo_url: str) -> None:
    with psycopg.connect(demo_url) as conn:
        index = conn.execute("SELECT ltv.one_off_season_index(%s)", (AS_OF,)).fetchone()[0]
        stored = conn.execute(
            "SELECT DISTINCT params->'season' FROM ltv.model_fits WHERE is_active AND model = 'bgnbd'"
        ).fetchall()
    truth = _true_season_index()
    assert len(index) == 12 and sum(index) / 12 == pytest.approx(1.0)
    # The truth spans 0.85-1.15. At this size the ratios rest on ~3,000 purchases a month over
    # three years, and the engagement-season signups add their own spring bump (new suppliers
    # buy early): each month within 0.1, the shape the season's, and the mean over the
    # backtest's six months — what a forecast uses — within 0.03.
    assert max(abs(got - want) for got, want in zip(index, truth, strict=True)) <= 0.1, (index, truth)
    assert index.index(max(index)) + 1 in (6, 7, 8) and index.index(min(index)) + 1 in (12, 1, 2)
    assert statistics.correlation(index, truth) > 0.9
    assert sum(index[4:10]) / 6 == pytest.approx(sum(truth[4:10]) / 6, abs=0.03)
    # every active BG/NBD fit carries the index it was fitted with
    assert stored == [(pytest.approx(index),)]


def test_notice_cdf_is_the_generators_uniform_cancellation(demo_url: str) -> None:
    """The generator cancels a leaver at a uniform point of its last paid period: F(f) = f."""
    fits = _fits(demo_url)
    for segment in ("all/month", "all/year"):
        cdf = fits[("sbg", segment)]["params"]["notice_cdf"]
        assert len(cdf) == 21 and cdf[-1] == 1.0
        assert max(abs(cdf[k] - k / 20) for k in range(21)) <= 0.05, (segment, cdf)


def test_customer_ltv_parts_add_up_and_interval_brackets(demo_url: str) -> None:
    with psycopg.connect(demo_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT * FROM ltv.score_customers(%s) WHERE total_ltv IS NOT NULL LIMIT 2000", (AS_OF,)
        ).fetchall()
    assert len(rows) == 2000
    for r in rows:
        assert r["total_ltv"] == r["realised_margin"] + r["predicted_recurring"] + r["predicted_one_off"]
        assert r["ltv_low"] <= r["total_ltv"] + 1 and r["ltv_low"] <= r["ltv_high"]
        assert 0 <= r["p_alive"] <= 1
        if r["subscription_status"] != "active":
            assert r["predicted_recurring"] == 0


def test_cli_fit_ltv_and_backtest(demo_url: str) -> None:
    with psycopg.connect(demo_url) as conn:
        ref = conn.execute(
            """SELECT c.customer_ref FROM ltv.customers c JOIN ltv.subscriptions s USING (customer_id)
               WHERE s.ended_at IS NULL ORDER BY c.customer_id LIMIT 1"""
        ).fetchone()[0]
    shown = run_cli(["ltv", ref, "--as-of", "2026-11-01"], demo_url)
    assert shown.returncode == 0, shown.stderr
    assert ref in shown.stdout and "total_ltv" in shown.stdout
    missing = run_cli(["ltv", "sup-does-not-exist", "--as-of", "2026-11-01"], demo_url)
    assert missing.returncode == 4 and "no customer" in missing.stderr
    bad_date = run_cli(["backtest", "--cutoff", "2026-13-01"], demo_url)
    assert bad_date.returncode == 2
    future = run_cli(["backtest", "--cutoff", "2026-11-01", "--horizon-months", "6"], demo_url)
    assert future.returncode == 2 and "has not fully happened" in future.stderr


def test_recurring_value_of_annual_subscribers_uses_the_notice(demo_url: str) -> None:
    """An active annual subscriber's predicted recurring value, recomputed from its parts: last
    charge × margin × sBG DERL at the annual rate, divided by P(no notice yet) from the fit's
    notice CDF at the part of the current year gone (rounded to 5 %)."""
    with psycopg.connect(demo_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            """SELECT s.predicted_recurring, h.period_amount, h.paid_periods, st.margin_subscription,
                      st.annual_discount_rate, f.params,
                      ltv.billing_period_elapsed('year', h.subscription_started, h.paid_periods, %(as_of)s) AS elapsed,
                      ltv.sbg_derl((f.params->>'alpha')::float8, (f.params->>'beta')::float8, h.paid_periods - 1,
                                   st.annual_discount_rate::float8) AS derl
               FROM ltv.score_customers(%(as_of)s) s
               JOIN ltv.customer_history(%(as_of)s) h USING (customer_id)
               JOIN ltv.model_fits f ON f.is_active AND f.model = 'sbg' AND f.segment = s.sbg_segment
               CROSS JOIN ltv.settings st
               WHERE s.subscription_status = 'active' AND s.billing_interval = 'year'
               ORDER BY s.customer_id LIMIT 300""",
            {"as_of": AS_OF},
        ).fetchall()
    assert len(rows) == 300
    raised = 0
    for r in rows:
        alpha, beta, cdf = r["params"]["alpha"], r["params"]["beta"], r["params"]["notice_cdf"]
        norm = 1 - cdf[round(20 * r["elapsed"])] * alpha / (alpha + beta + r["paid_periods"] - 1)
        want = float(r["period_amount"]) * float(r["margin_subscription"]) * r["derl"] / norm
        assert float(r["predicted_recurring"]) == pytest.approx(want, abs=1e-4), r
        raised += norm < 0.99
    assert raised > 100  # most of them are well into their year: the notice matters


def test_expected_purchases_are_the_seasonal_sum_of_the_public_formula(demo_url: str) -> None:
    """Scoring splits E[X] into kernel × P(alive) and scales each third of the horizon by its
    season; recomputed here with the public ltv.bgnbd_expected_purchases at the thirds and the
    fit's index averaged over each third (ltv.season_mean)."""
    with psycopg.connect(demo_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            """WITH scored AS (SELECT * FROM ltv.score_customers(%(as_of)s) ORDER BY customer_id LIMIT 400)
               SELECT s.expected_purchases, h.x, h.t_x, h.t_cal, f.params, st.horizon_months AS horizon
               FROM scored s
               JOIN ltv.customer_history(%(as_of)s) h USING (customer_id)
               JOIN ltv.model_fits f ON f.is_active AND f.model = 'bgnbd' AND f.segment = s.bgnbd_segment
               CROSS JOIN ltv.settings st""",
            {"as_of": AS_OF},
        ).fetchall()
        assert len(rows) == 400
        for r in rows:
            p = r["params"]
            t_x, t_cal = round(r["t_x"] * 30.4375) / 30.4375, round(r["t_cal"] * 30.4375) / 30.4375
            thirds = [k * r["horizon"] / 3 for k in range(4)]
            cumulative = [
                conn.execute(
                    "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, %s, %s, %s, %s)",
                    (p["r"], p["alpha"], p["a"], p["b"], r["x"], t_x, t_cal, t),
                ).fetchone()["bgnbd_expected_purchases"]
                for t in thirds[1:]
            ]
            weights = [
                conn.execute(
                    "SELECT ltv.season_mean(%s, %s + %s * interval '30.4375 days', %s + %s * interval '30.4375 days')",
                    (p["season"], AS_OF, start, AS_OF, end),
                ).fetchone()["season_mean"]
                for start, end in zip(thirds, thirds[1:], strict=False)
            ]
            increments = [cumulative[0], cumulative[1] - cumulative[0], cumulative[2] - cumulative[1]]
            want = sum(w * inc for w, inc in zip(weights, increments, strict=True))
            assert r["expected_purchases"] == pytest.approx(want, rel=1e-9, abs=1e-12), r


def test_one_off_interval_and_p_alive_of_everyone_match_the_public_functions(demo_url: str) -> None:
    """Scoring everyone writes P(alive) out and looks the Poisson quantiles up in steps
    (ltv.poisson_quantile_steps); every customer's values are recomputed here with
    ltv.bgnbd_p_alive and ltv.poisson_quantile. Customers without an active subscription have no
    recurring part, so their interval is realised + the one-off value × q / E[purchases]."""
    with psycopg.connect(demo_url, row_factory=dict_row) as conn:
        row = conn.execute(
            """WITH scored AS (SELECT * FROM ltv.score_customers(%(as_of)s)),
                    checked AS (
                        SELECT s.*, h.x,
                               ltv.bgnbd_p_alive((f.params->>'r')::float8, (f.params->>'alpha')::float8,
                                                 (f.params->>'a')::float8, (f.params->>'b')::float8, h.x,
                                                 round(h.t_x * 30.4375) / 30.4375, round(h.t_cal * 30.4375) / 30.4375)
                                   AS p_alive_public,
                               ltv.poisson_quantile(s.expected_purchases, 0.1) AS q_low,
                               ltv.poisson_quantile(s.expected_purchases, 0.9) AS q_high
                        FROM scored s
                        JOIN ltv.customer_history(%(as_of)s) h USING (customer_id)
                        JOIN ltv.model_fits f ON f.is_active AND f.model = 'bgnbd' AND f.segment = s.bgnbd_segment)
               SELECT count(*) AS customers,
                      count(*) FILTER (WHERE p_alive IS DISTINCT FROM p_alive_public) AS p_alive_differs,
                      count(*) FILTER (WHERE subscription_status <> 'active' AND expected_purchases > 0)
                          AS one_off_only,
                      count(*) FILTER (WHERE subscription_status <> 'active' AND expected_purchases > 0 AND (
                          abs(ltv_low - realised_margin - predicted_one_off * q_low / expected_purchases)
                              > 1e-4 * (2 + q_low / expected_purchases)
                          OR abs(ltv_high - realised_margin - predicted_one_off * q_high / expected_purchases)
                              > 1e-4 * (2 + q_high / expected_purchases))) AS interval_differs,
                      count(DISTINCT q_high) AS distinct_high
               FROM checked""",
            {"as_of": AS_OF},
        ).fetchone()
    assert row["customers"] >= 90_000 and row["one_off_only"] > 10_000 and row["distinct_high"] >= 5
    assert row["p_alive_differs"] == 0
    assert row["interval_differs"] == 0
