"""The two refinements of the plain models (revision 0005): the cancellation notice in the sBG
predictions and the seasonal index of one-off purchases — each against an independent route:
numerical integration over the Beta posterior (scipy), calendar arithmetic in Python, and
hand-countable inputs.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

import psycopg
import pytest
from scipy import integrate

NOTICE_CASES = [  # alpha, beta, paid periods, F(elapsed)
    (0.6681, 3.8061, 1, 0.5),
    (0.6681, 3.8061, 7, 0.95),
    (1.1, 9.0, 3, 0.25),
    (0.8, 3.5, 2, 1.0),
    (2.5, 1.2, 1, 0.0),
]


def _no_notice_survival(alpha: float, beta: float, paid: int, notice: float, k: int) -> float:
    """P(K >= k | paid periods, no cancellation notice yet) by integrating over θ: prior
    Beta(α, β) updated by paid − 1 renewals, times the no-notice likelihood 1 − θ F; renewing k
    more times has likelihood (1 − θ)^k / (1 − θ F) given no notice (renewing implies it)."""

    def posterior(theta: float) -> float:
        return theta ** (alpha - 1) * (1 - theta) ** (beta + paid - 2)

    evidence = integrate.quad(lambda t: posterior(t) * (1 - t * notice), 0, 1, limit=200)[0]
    return integrate.quad(lambda t: posterior(t) * (1 - t) ** k, 0, 1, limit=200)[0] / evidence


@pytest.mark.parametrize(("alpha", "beta", "paid", "notice"), NOTICE_CASES)
def test_notice_adjusted_payments_match_a_direct_integral(db: psycopg.Connection, alpha, beta, paid, notice) -> None:
    horizon = 24
    want = sum(_no_notice_survival(alpha, beta, paid, notice, k) for k in range(1, horizon + 1))
    got = db.execute(
        "SELECT ltv.sbg_expected_payments(%(a)s, %(b)s, %(n)s, %(h)s)"
        "       / ltv.sbg_notice_norm(%(a)s, %(b)s, %(n)s, %(f)s)",
        {"a": alpha, "b": beta, "n": paid, "h": horizon, "f": notice},
    ).fetchone()[0]
    assert got == pytest.approx(want, rel=1e-7)
    # the quantile rule: the plain quantile at 1 - (1 - q) * norm is the adjusted quantile
    for q in (0.1, 0.5, 0.9):
        want_k = next(k for k in range(0, 2000) if _no_notice_survival(alpha, beta, paid, notice, k + 1) <= 1 - q)
        got_k = db.execute(
            "SELECT ltv.sbg_payments_quantile(%(a)s, %(b)s, %(n)s,"
            "                                 1 - (1 - %(q)s) * ltv.sbg_notice_norm(%(a)s, %(b)s, %(n)s, %(f)s))",
            {"a": alpha, "b": beta, "n": paid, "q": q, "f": notice},
        ).fetchone()[0]
        assert got_k == want_k, q


def test_no_notice_data_changes_nothing(db: psycopg.Connection) -> None:
    assert db.execute("SELECT ltv.sbg_notice_norm(0.7, 3.8, 4, NULL), ltv.sbg_notice_norm(0.7, 3.8, 4, 0)").fetchone() \
        == (1.0, 1.0)
    # with a notice at the very end of the period, the next renewal is certain
    assert _no_notice_survival(0.7, 3.8, 4, 1.0, 1) == pytest.approx(1.0, abs=1e-9)


def test_notice_cdf_counts_fractions_on_the_grid(db: psycopg.Connection) -> None:
    cdf = db.execute("SELECT ltv.notice_cdf(ARRAY[0, 0.5, 0.52, 1, 1.0, 1.3, -0.2, NULL]::float8[])").fetchone()[0]
    # seven non-NULL fractions, clamped to [0, 1]: 0 and -0.2 -> 0; 0.5; 0.52 -> bucket 0.55; 1, 1, 1.3 -> 1
    want = [2 / 7] * 10 + [3 / 7] + [4 / 7] * 9 + [1.0]
    assert cdf == pytest.approx(want)
    assert db.execute("SELECT ltv.notice_cdf('{}'::float8[]), ltv.notice_cdf(ARRAY[NULL]::float8[])").fetchone() \
        == (None, None)


@pytest.mark.parametrize(
    ("interval", "started", "paid", "at", "want"),
    [
        ("month", "2024-01-31T00:00:00Z", 1, "2024-01-31T00:00:00Z", 0.0),
        # period 2 of a start on 31 January: 29 February (leap year, clamped) to 31 March
        ("month", "2024-01-31T00:00:00Z", 2, "2024-03-14T00:00:00Z", 14 / 31),
        ("year", "2024-01-31T00:00:00Z", 1, "2024-07-31T00:00:00Z", 182 / 366),
        ("year", "2023-03-01T12:00:00Z", 2, "2026-01-01T00:00:00Z", 1.0),   # overdue: clamped
        ("month", "2026-05-10T00:00:00Z", 1, "2026-05-01T00:00:00Z", 0.0),  # before the start: clamped
    ],
)
def test_billing_period_elapsed(db: psycopg.Connection, interval, started, paid, at, want) -> None:
    got = db.execute("SELECT ltv.billing_period_elapsed(%s, %s, %s, %s)", (interval, started, paid, at)).fetchone()[0]
    assert got == pytest.approx(want, abs=1e-12)


def test_billing_period_elapsed_refuses_what_it_cannot_place(db: psycopg.Connection) -> None:
    row = db.execute(
        "SELECT ltv.billing_period_elapsed('week', now(), 1, now()),"
        "       ltv.billing_period_elapsed('month', now(), 0, now())"
    ).fetchone()
    assert row == (None, None)


def _calendar_weighted_mean(season: list[float], start: datetime, end: datetime) -> float:
    """Mean of a monthly index over [start, end), walking the days (an independent route)."""
    total = weighted = 0.0
    day = start
    while day < end:
        days_in_month = calendar.monthrange(day.year, day.month)[1]
        step = min(end, datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)) - day
        weighted += season[day.month - 1] * step.total_seconds()
        total += step.total_seconds()
        day += step
        assert days_in_month >= 28
    return weighted / total


def test_season_mean_weights_calendar_months_by_time(db: psycopg.Connection) -> None:
    season = [0.8 + 0.04 * m for m in range(12)]
    for start, end in [
        (datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
        (datetime(2024, 2, 10, 6, tzinfo=UTC), datetime(2025, 3, 20, tzinfo=UTC)),  # a leap February
        (datetime(2026, 7, 3, tzinfo=UTC), datetime(2026, 7, 9, tzinfo=UTC)),       # inside one month
    ]:
        got = db.execute("SELECT ltv.season_mean(%s, %s, %s)", (season, start, end)).fetchone()[0]
        assert got == pytest.approx(_calendar_weighted_mean(season, start, end), rel=1e-12)
    # no index, a malformed one, or an empty span: no adjustment
    assert db.execute(
        "SELECT ltv.season_mean(NULL, now(), now() + interval '1 month'),"
        "       ltv.season_mean('{1.2, 0.8}', now(), now() + interval '1 month'),"
        "       ltv.season_mean(%s, now(), now())",
        (season,),
    ).fetchone() == (1.0, 1.0, 1.0)


def test_season_index_needs_three_years_of_purchases(db: psycopg.Connection) -> None:
    assert db.execute("SELECT ltv.one_off_season_index(now())").fetchone()[0] is None


@pytest.mark.parametrize(("alpha", "beta", "discount"), [(1.0, 8.5, 0.00797), (0.67, 3.8, 0.1), (0.47, 1.3, 0.1),
                                                         (2.5, 0.9, 0.00797), (1.55, 9.1, 0.00797)])
def test_derl_series_matches_derl_at_every_renewal_count(db: psycopg.Connection, alpha, beta, discount) -> None:
    direct = db.execute(
        "SELECT array_agg(ltv.sbg_derl(%s, %s, n, %s) ORDER BY n) FROM generate_series(0, 120) n",
        (alpha, beta, discount),
    ).fetchone()[0]
    for start in (0, 7, 120):
        series = db.execute(
            "SELECT ltv.sbg_derl_series(%s, %s, %s, 120, %s)", (alpha, beta, start, discount)
        ).fetchone()[0]
        assert len(series) == 121 - start
        assert series == pytest.approx(direct[start:], rel=1e-9)
    for bad in ((-1, 3), (5, 4)):
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            db.execute("SELECT ltv.sbg_derl_series(1, 2, %s, %s, 0.1)", bad)
