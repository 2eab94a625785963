"""The closed-form model math in SQL (ltv.lgamma, ltv.hyp2f1, BG/NBD, Gamma-Gamma, sBG) against
independent Python references: the standard library, scipy, mpmath (high precision) and the
published CDNOW / Fader & Hardie values in shared/data/README.md.

Every reference is computed here by a different route than the SQL (other libraries, the
untransformed textbook formula, direct sums), so an error in the SQL cannot cancel out.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path

import mpmath
import psycopg
import pytest
from psycopg import errors
from scipy import special

# Published CDNOW BG/NBD and Gamma-Gamma parameters (Fader, Hardie & Lee 2005)
BGNBD = (0.2426, 4.4136, 0.7929, 2.4259)
GG = (6.2496, 3.7442, 15.4435)
# sBG high-end segment (Fader & Hardie 2007)
SBG = (0.6681, 3.8061)


def shared_data_dir() -> Path:
    env = os.environ.get("LTV_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def scalar(db: psycopg.Connection, sql: str, params: Sequence[object] = ()) -> float:
    row = db.execute(sql, params).fetchone()
    assert row is not None
    return row[0]


def column(db: psycopg.Connection, sql: str, params: Sequence[object] = ()) -> list[float]:
    return [r[0] for r in db.execute(sql, params).fetchall()]


def assert_close(got: float, want: float, rel: float, abs_: float = 0.0) -> None:
    assert math.isfinite(got), got
    assert abs(got - want) <= rel * abs(want) + abs_, (got, want, (got - want) / (want or 1))


# --------------------------------------------------------------------------- lgamma family


LGAMMA_GRID = [
    1e-300,
    1e-12,
    1e-6,
    0.01,
    0.1,
    0.3,
    0.5,
    0.7,
    0.8,
    0.95,
    0.999999,
    1.0,
    1.000001,
    1.05,
    1.2,
    1.5,
    1.8,
    1.99,
    2.0,
    2.01,
    2.2,
    2.5,
    3.0,
    3.7,
    5.5,
    7.25,
    9.999,
    10.0,
    10.5,
    15.3,
    33.3,
    100.0,
    171.5,
    1000.25,
    12345.678,
    1e6,
    1e10,
    1e100,
    1e300,
]
LGAMMA_NEGATIVE = [-0.5, -0.999, -1.5, -2.3, -7.9, -20.25, -100.5]


def test_lgamma_matches_math_lgamma_on_grid(db: psycopg.Connection) -> None:
    got = column(
        db, "SELECT ltv.lgamma(x) FROM unnest(%s::float8[]) WITH ORDINALITY u(x, i) ORDER BY i", (LGAMMA_GRID,)
    )
    for x, g in zip(LGAMMA_GRID, got, strict=True):
        # ~1e-13 relative; the absolute floor covers math.lgamma's own error near its zeros 1, 2
        assert_close(g, math.lgamma(x), rel=1e-13, abs_=1e-15)


def test_lgamma_near_its_zeros_keeps_relative_precision(db: psycopg.Connection) -> None:
    # math.lgamma loses relative digits next to 1 and 2; mpmath at 40 digits does not
    mpmath.mp.dps = 40
    xs = [1 + 1e-9, 1 - 1e-7, 1.1, 0.9, 2 + 1e-9, 2 - 1e-6, 2.15, 1.85]
    got = column(db, "SELECT ltv.lgamma(x) FROM unnest(%s::float8[]) WITH ORDINALITY u(x, i) ORDER BY i", (xs,))
    for x, g in zip(xs, got, strict=True):
        assert_close(g, float(mpmath.loggamma(mpmath.mpf(x))), rel=1e-13)


def test_lgamma_reflection_for_negative_arguments(db: psycopg.Connection) -> None:
    got = column(
        db, "SELECT ltv.lgamma(x) FROM unnest(%s::float8[]) WITH ORDINALITY u(x, i) ORDER BY i", (LGAMMA_NEGATIVE,)
    )
    for x, g in zip(LGAMMA_NEGATIVE, got, strict=True):
        assert_close(g, math.lgamma(x), rel=1e-12, abs_=1e-13)


@pytest.mark.parametrize("x", [0.0, -1.0, -2.0, -50.0])
def test_lgamma_poles_raise(db: psycopg.Connection, x: float) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="pole"):
        db.execute("SELECT ltv.lgamma(%s::float8)", (x,))


def test_lbeta_and_digamma(db: psycopg.Connection) -> None:
    pairs = [(0.5, 0.5), (0.6681, 3.8061 + 7), (3.0, 1e4), (120.5, 0.01)]
    for a, b in pairs:
        want = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        assert_close(scalar(db, "SELECT ltv.lbeta(%s, %s)", (a, b)), want, rel=1e-12, abs_=1e-12)
    xs = [1e-5, 0.3, 1.0, 1.4616321449683622, 2.5, 9.5, 10.0, 77.7, 1e7, -0.5, -3.3]
    got = column(db, "SELECT ltv.digamma(x) FROM unnest(%s::float8[]) WITH ORDINALITY u(x, i) ORDER BY i", (xs,))
    for x, g in zip(xs, got, strict=True):
        assert_close(g, float(special.digamma(x)), rel=1e-12, abs_=1e-14)


def test_log1p_expm1_keep_precision_for_tiny_arguments(db: psycopg.Connection) -> None:
    for y in [1e-18, -3e-12, 1e-6, 0.25, -0.75, 40.0]:
        assert_close(scalar(db, "SELECT ltv.log1p(%s)", (y,)), math.log1p(y), rel=1e-15)
        assert_close(scalar(db, "SELECT ltv.expm1(%s)", (y,)), math.expm1(y), rel=1e-15)
    assert scalar(db, "SELECT ltv.exp0(-800)") == 0.0  # PostgreSQL's exp() would raise underflow


# --------------------------------------------------------------------------- hyp2f1


def mp_hyp2f1(a: float, b: float, c: float, z: float) -> float:
    mpmath.mp.dps = 50
    return float(mpmath.hyp2f1(a, b, c, z))


HYP_GRID = [
    (a, b, c, z)
    for a in (0.3, 1.0, 4.7, 25.0, -2.5)
    for b in (0.5, 2.2, 13.0)
    for c in (0.7, 3.5, 40.0)
    for z in (-4.0, -0.6, 0.1, 0.5, 0.85, 0.95, 0.99)
]


def sql_hyp2f1(db: psycopg.Connection, grid: Sequence[tuple[float, float, float, float]]) -> list[float]:
    cols = list(zip(*grid, strict=True))
    return column(
        db,
        "SELECT ltv.hyp2f1(a, b, c, z) FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::float8[])"
        " WITH ORDINALITY u(a, b, c, z, i) ORDER BY i",
        [list(c) for c in cols],
    )


def test_hyp2f1_matches_scipy_and_mpmath_on_grid(db: psycopg.Connection) -> None:
    refused = []
    for a, b, c, z in HYP_GRID:
        try:
            got = scalar(db, "SELECT ltv.hyp2f1(%s, %s, %s, %s)", (a, b, c, z))
        except errors.NumericValueOutOfRange as exc:
            # allowed only as an explicit refusal for an ill-conditioned (cancelling) series
            assert "cancellation" in str(exc) or "cancel" in str(exc)
            refused.append((a, b, c, z))
            continue
        assert_close(got, mp_hyp2f1(a, b, c, z), rel=1e-11, abs_=1e-300)
        sp = float(special.hyp2f1(a, b, c, z))
        if math.isfinite(sp) and a > 0 and z > -1:
            # scipy as the everyday cross-check inside the unit disc; outside it (z = -4) scipy
            # itself is off by up to 3e-3 on this grid — mpmath at 50 digits, above, is exact
            assert_close(got, sp, rel=1e-7)
    # the models' domain (positive parameters, 0 <= z < 1) is never refused
    assert all(z < 0 or a < 0 for a, _b, _c, z in refused), refused
    assert len(refused) <= 6, refused


def test_hyp2f1_bgnbd_arguments_z_near_one_and_large_x(db: psycopg.Connection) -> None:
    # the exact triples the BG/NBD expectation produces: (r+x, b+x; a+b+x-1; z), with z → 1 when the
    # horizon dwarfs α + T, and x in the hundreds
    r, _alpha, a, b = BGNBD
    grid = [
        (r + x, b + x, a + b + x - 1, z)
        for x in (0, 1, 7, 60, 250)
        for z in (0.3, 0.7, 0.9, 0.99, 0.999, 0.99995)
        if x * -math.log1p(-z) < 600
    ]  # keep the value itself inside float8
    got = sql_hyp2f1(db, grid)
    for (aa, bb, cc, z), g in zip(grid, got, strict=True):
        assert_close(g, mp_hyp2f1(aa, bb, cc, z), rel=1e-10)


def test_hyp2f1_special_cases(db: psycopg.Connection) -> None:
    # z = 1: Gauss's theorem
    assert_close(scalar(db, "SELECT ltv.hyp2f1(0.5, 0.3, 2, 1)"), float(special.hyp2f1(0.5, 0.3, 2, 1)), rel=1e-13)
    # terminating polynomial, valid beyond |z| = 1: 2F1(-3, 2; 5; 7) = 1 - 8.4 + 29.4 - 39.2
    assert_close(scalar(db, "SELECT ltv.hyp2f1(-3, 2, 5, 7)"), 1 - 8.4 + 29.4 - 39.2, rel=1e-14)
    # elementary closed forms
    z = 0.9
    assert_close(scalar(db, "SELECT ltv.hyp2f1(1, 1, 2, %s)", (z,)), -math.log1p(-z) / z, rel=1e-14)
    arctan = math.atan(math.sqrt(z)) / math.sqrt(z)
    assert_close(scalar(db, "SELECT ltv.hyp2f1(0.5, 1, 1.5, %s)", (-z,)), arctan, rel=1e-14)
    assert scalar(db, "SELECT ltv.hyp2f1(3, 4, 5, 0)") == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.5, 2.5, 3.0, 1.5), "branch cut"),
        ((1.5, 2.5, -2.0, 0.5), "pole"),
        ((1.5, 2.5, 3.0, 1.0), "diverges"),
        ((1.5, float("nan"), 3.0, 0.5), "NaN"),
    ],
)
def test_hyp2f1_invalid_arguments_raise(db: psycopg.Connection, args: tuple[float, ...], message: str) -> None:
    with pytest.raises(errors.InvalidParameterValue, match=message):
        db.execute("SELECT ltv.hyp2f1(%s, %s, %s, %s)", args)


def test_hyp2f1_refuses_rather_than_guess(db: psycopg.Connection) -> None:
    # c - a - b = 0 (the logarithmic case of the 1-z formula) and z within 1e-7 of 1: the series
    # would need ~10^8 terms; the function must say so, not return a truncated sum
    with pytest.raises(errors.NumericValueOutOfRange, match="did not converge"):
        db.execute("SELECT ltv.hyp2f1(1, 1, 2, 1 - 1e-7)")


# --------------------------------------------------------------------------- BG/NBD


def mp_expected_purchases(
    r: float, alpha: float, a: float, b: float, x: int, t_x: float, t_cal: float, t: float
) -> float:
    """FHL 2005 eq. 10 verbatim (no Euler transform, no log space) at 60 digits."""
    mpmath.mp.dps = 60
    r_, al, a_, b_ = (mpmath.mpf(v) for v in (r, alpha, a, b))
    tx, tc, tt = mpmath.mpf(t_x), mpmath.mpf(t_cal), mpmath.mpf(t)
    z = tt / (al + tc + tt)
    num = (
        (a_ + b_ + x - 1)
        / (a_ - 1)
        * (1 - ((al + tc) / (al + tc + tt)) ** (r_ + x) * mpmath.hyp2f1(r_ + x, b_ + x, a_ + b_ + x - 1, z))
    )
    den = 1 + (a_ / (b_ + x - 1) * ((al + tc) / (al + tx)) ** (r_ + x) if x > 0 else 0)
    return float(num / den)


def test_bgnbd_conditional_expectation_reference(db: psycopg.Connection) -> None:
    got = scalar(db, "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, 2, 30.43, 38.86, 39)", BGNBD)
    assert round(got, 3) == 1.226
    assert_close(got, mp_expected_purchases(*BGNBD, 2, 30.43, 38.86, 39), rel=1e-12)


def test_bgnbd_unconditional_expectation_reference(db: psycopg.Connection) -> None:
    published = {1: 0.0532, 3: 0.1506, 32: 1.0437, 78: 1.8576}
    for t, want in published.items():
        got = scalar(db, "SELECT ltv.bgnbd_unconditional_purchases(%s, %s, %s, %s, %s)", (*BGNBD, t))
        assert abs(got - want) <= 0.001, (t, got, want)
        # eq. 7 independently: mpmath with the unconditional formula itself
        mpmath.mp.dps = 40
        r, al, a, b = (mpmath.mpf(v) for v in BGNBD)
        exact = (a + b - 1) / (a - 1) * (1 - (al / (al + t)) ** r * mpmath.hyp2f1(r, b, a + b - 1, t / (al + t)))
        assert_close(got, float(exact), rel=1e-12)


CUSTOMERS = [
    # (x, t_x, t_cal, t)
    (0, 0.0, 38.86, 39.0),
    (0, 0.0, 0.5, 500.0),
    (1, 1.71, 38.86, 39.0),
    (5, 20.0, 30.0, 0.5),
    (12, 37.9, 38.0, 52.0),
    (29, 38.0, 38.86, 78.0),
    (150, 200.0, 210.0, 104.0),
    (400, 380.0, 400.0, 260.0),
]


def test_bgnbd_expectation_matches_textbook_formula_in_mpmath(db: psycopg.Connection) -> None:
    for params in (BGNBD, (1.7, 0.4, 3.2, 9.0), (0.05, 60.0, 0.3, 0.2)):
        for x, t_x, t_cal, t in CUSTOMERS:
            got = scalar(
                db, "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, %s, %s, %s, %s)", (*params, x, t_x, t_cal, t)
            )
            assert_close(got, mp_expected_purchases(*params, x, t_x, t_cal, t), rel=1e-10, abs_=1e-300)


def test_bgnbd_expectation_continuous_through_a_equal_one(db: psycopg.Connection) -> None:
    # (a-1) in the denominator is a removable singularity: a = 1 exactly must work and agree
    # with its neighbours
    r, alpha, _a, b = BGNBD
    vals = [
        scalar(db, "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, 2, 30.43, 38.86, 39)", (r, alpha, a, b))
        for a in (1 - 1e-7, 1.0, 1 + 1e-7)
    ]
    assert abs(vals[0] - vals[1]) < 1e-6 and abs(vals[2] - vals[1]) < 1e-6
    assert_close(vals[2], mp_expected_purchases(r, alpha, 1 + 1e-7, b, 2, 30.43, 38.86, 39), rel=1e-9)


def test_bgnbd_expectation_against_simulated_integral(db: psycopg.Connection) -> None:
    # A third route: E[X(t)] for a new customer is ∫∫ E[X(t) | λ, p] dG(λ) dB(p) with
    # E[X(t) | λ, p] = (1 - e^{-λ p t}) / p (FHL 2005 eq. 8 before mixing); Gauss quadrature in mpmath.
    r, alpha, a, b = BGNBD
    mpmath.mp.dps = 20
    t = 32.0

    def inner(p: mpmath.mpf) -> mpmath.mpf:
        # ∫ (1 - e^{-λ p t}) gamma(λ; r, α) dλ = 1 - (α/(α + p t))^r
        return (1 - (alpha / (alpha + p * t)) ** r) / p * p ** (a - 1) * (1 - p) ** (b - 1) / mpmath.beta(a, b)

    integral = float(mpmath.quad(inner, [0, 0.001, 0.1, 1]))
    got = scalar(db, "SELECT ltv.bgnbd_unconditional_purchases(%s, %s, %s, %s, %s)", (*BGNBD, t))
    assert_close(got, integral, rel=1e-8)


def test_bgnbd_p_alive(db: psycopg.Connection) -> None:
    r, alpha, a, b = BGNBD
    assert scalar(db, "SELECT ltv.bgnbd_p_alive(%s, %s, %s, %s, 0, 0, 38.86)", BGNBD) == 1.0
    for x, t_x, t_cal, _t in CUSTOMERS[2:]:
        want = 1 / (1 + a / (b + x - 1) * ((alpha + t_cal) / (alpha + t_x)) ** (r + x))
        got = scalar(db, "SELECT ltv.bgnbd_p_alive(%s, %s, %s, %s, %s, %s, %s)", (*BGNBD, x, t_x, t_cal))
        assert_close(got, want, rel=1e-12)
    # huge x long ago: (α+T)/(α+t_x))^(r+x) overflows float8, P(alive) is just ~0
    got = scalar(db, "SELECT ltv.bgnbd_p_alive(%s, %s, %s, %s, 5000, 10, 400)", BGNBD)
    assert got == 0.0 or 0 < got < 1e-300


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ltv.bgnbd_expected_purchases(-0.1, 4, 0.8, 2.4, 2, 30, 38, 39)",
        "SELECT ltv.bgnbd_expected_purchases(0.2, 4, 0.8, 2.4, 2.5, 30, 38, 39)",
        "SELECT ltv.bgnbd_expected_purchases(0.2, 4, 0.8, 2.4, 2, 40, 38, 39)",
        "SELECT ltv.bgnbd_expected_purchases(0.2, 4, 0.8, 2.4, 2, 30, 38, -1)",
        "SELECT ltv.bgnbd_p_alive(0.2, 0, 0.8, 2.4, 2, 30, 38)",
        "SELECT ltv.bgnbd_p_alive(0.2, 4, 0.8, 2.4, -1, 30, 38)",
    ],
)
def test_bgnbd_invalid_arguments_raise(db: psycopg.Connection, sql: str) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        db.execute(sql)


def test_bgnbd_zero_horizon_and_nulls(db: psycopg.Connection) -> None:
    assert scalar(db, "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, 3, 10, 20, 0)", BGNBD) == 0.0
    assert scalar(db, "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, NULL, 10, 20, 5)", BGNBD) is None


# The expectation has four routes to G = (₂F₁(A, a-1; C; z) - 1)/(a-1), A = a+b-1-r, C = a+b+x-1.
# Inside 1e-6 <= z <= 0.95, 0.01 <= a <= 10, 1e-3 <= C <= 1e6, A > -4: for A > -1 a backward Horner
# sum whose length comes from an a-priori tail bound, in closed form when a - r - x <= 2 and
# A(a-1) <= C (every a <= 2), iterated otherwise; for A <= -1 (or when no length is found) a
# forward loop with a sign-changing prefix and a running tail bound.  Everything else takes the
# rigorous ltv.hyp2f1_tail / ltv.hyp2f1 route.  These parameter sets visit each of them and the
# switches between them; the reference is the textbook formula in mpmath (mp_expected_purchases).
BGNBD_ROUTE_PARAMS = [
    BGNBD,  # CDNOW: backward, closed-form length
    (0.55, 2.1, 0.79, 2.43),  # a realistic monthly fit: backward, closed-form length
    (1.7, 0.6, 3.2, 9.0),  # A(a-1) > C: backward, iterated length
    (3.0, 50.0, 5.0, 20.0),
    (0.1, 10.0, 2.5, 15.0),  # a - r - x = 2.4 > 2 at x = 0: terms grow first; iterated length
    (0.5, 5.0, 2.5, 1.0),  # a - r = 2 exactly: the switch itself (closed form at x = 0)
    (0.4999, 5.0, 2.5, 1.0),  # ... just beyond it: iterated at x = 0
    (3.0, 1.0, 0.5, 1.2),  # A = -2.3: forward with a sign-changing prefix
    (2.95, 5.0, 1.0001, 2.9),  # A = -0.05: backward, all terms negative
    (1.2, 3.0, 0.6, 1.6),  # A = 2e-16 (a + b - 1 = r up to rounding)
    (2.9, 0.6, 0.31, 0.54),  # C = a+b-1 = -0.15 < 0 at x = 0: rigorous route (₂F₁ factor < 0)
    (0.3, 3.0, 10.0, 3.0),  # a = 10: last fast a
    (0.3, 3.0, 10.5, 3.0),  # a > 10: rigorous route
    (0.1, 0.5, 1.3, 20.0),  # x = 0, small r, big b: w cancels by ~200 (accuracy of ln(1-z))
]
BGNBD_ROUTE_CUSTOMERS = [
    (x, t_x, t_cal)
    for x in (0, 1, 2, 7, 30, 120, 300)
    for t_x, t_cal in ((0.0, 0.0), (0.0, 6.0), (5.0, 30.0), (29.5, 30.0), (10.0, 120.0), (119.0, 120.0))
    if x > 0 or t_x == 0
]
# with α + T = 1 the horizon t = 19 is z = 0.95 exactly, the last z of the fast paths
BGNBD_ROUTE_HORIZONS = (1.0, 12.0, 36.0, 60.0)


def sql_expected_purchases(db: psycopg.Connection, rows: Sequence[tuple[float, ...]]) -> list[float]:
    cols = [list(c) for c in zip(*rows, strict=True)]
    return column(
        db,
        "SELECT ltv.bgnbd_expected_purchases(r, al, a, b, x, tx, tc, t)"
        " FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],"
        " %s::float8[], %s::float8[]) WITH ORDINALITY u(r, al, a, b, x, tx, tc, t, i) ORDER BY i",
        cols,
    )


def test_bgnbd_expectation_all_routes_match_mpmath(db: psycopg.Connection) -> None:
    rows = [
        (*params, x, t_x, t_cal, t)
        for params in BGNBD_ROUTE_PARAMS
        for x, t_x, t_cal in BGNBD_ROUTE_CUSTOMERS
        for t in BGNBD_ROUTE_HORIZONS
    ]
    got = sql_expected_purchases(db, rows)
    worst = 0.0
    for row, g in zip(rows, got, strict=True):
        want = mp_expected_purchases(*row[:4], int(row[4]), *row[5:])
        # P(alive) ~ e^-700 for x = 300 long ago: subnormal results keep fewer digits
        assert_close(g, want, rel=1e-11, abs_=1e-300)
        if abs(want) > 1e-290:
            worst = max(worst, abs(g - want) / abs(want))
    assert worst < 1e-12, worst


def test_bgnbd_expectation_continuous_across_route_switches(db: psycopg.Connection) -> None:
    # Each pair straddles one switch between the routes; the values must agree with mpmath and so
    # with each other (no seam).
    r, alpha, a, b = 0.55, 0.5, 0.79, 2.43
    cases = [
        # z = t/(α + T + t) = 0.95 exactly (fast), then just above (rigorous route)
        ((r, alpha, a, b, 0, 0.0, 0.5, 19.0), (r, alpha, a, b, 0, 0.0, 0.5, 19.0 * (1 + 1e-12))),
        ((r, alpha, a, b, 3, 0.2, 0.5, 19.0), (r, alpha, a, b, 3, 0.2, 0.5, 19.0 * (1 + 1e-12))),
        # z = t/(1 + t) just above 1e-6 (fast), then just below (rigorous route)
        ((r, 1.0, a, b, 0, 0.0, 0.0, 1.0000011e-6), (r, 1.0, a, b, 0, 0.0, 0.0, 1.0000009e-6)),
        # a - r - x = 2: closed-form, then iterated length
        ((0.5, 3.0, 2.5, 1.0, 0, 0.0, 4.0, 12.0), (0.5, 3.0, 2.5 + 1e-12, 1.0, 0, 0.0, 4.0, 12.0)),
        # A = a + b - 1 - r = -1: backward, then forward with a sign-changing prefix
        ((2.2 - 1e-9, 3.0, 0.6, 0.6, 0, 0.0, 4.0, 12.0), (2.2 + 1e-9, 3.0, 0.6, 0.6, 0, 0.0, 4.0, 12.0)),
        # a = 10: fast, then the rigorous route
        ((0.3, 3.0, 10.0, 3.0, 2, 1.0, 4.0, 12.0), (0.3, 3.0, 10.0 + 1e-9, 3.0, 2, 1.0, 4.0, 12.0)),
        # a = 1: the removable singularity of the formula, inside the backward route
        ((r, alpha, 1 - 1e-9, b, 2, 3.0, 6.0, 12.0), (r, alpha, 1 + 1e-9, b, 2, 3.0, 6.0, 12.0)),
    ]
    rows = [row for pair in cases for row in pair]
    got = sql_expected_purchases(db, rows)
    for i, (lo, hi) in enumerate(cases):
        g_lo, g_hi = got[2 * i], got[2 * i + 1]
        assert_close(g_lo, mp_expected_purchases(*lo[:4], int(lo[4]), *lo[5:]), rel=1e-11)
        assert_close(g_hi, mp_expected_purchases(*hi[:4], int(hi[4]), *hi[5:]), rel=1e-11)
        assert abs(g_hi - g_lo) <= 1e-6 * abs(g_lo), (lo, hi, g_lo, g_hi)


def test_bgnbd_expectation_random_realistic_inputs_match_mpmath(db: psycopg.Connection) -> None:
    # the scoring domain, months: r 0.1-3, α 0.5-50, a 0.3-5, b 0.5-20, x 0-300, t_x <= T <= 120,
    # t 1-60 (includes a + b < 1 at x = 0, where ₂F₁(A, a-1; C; z) can be negative)
    import random

    rng = random.Random(20261128)
    rows = []
    for _ in range(600):
        x = min(300, int(rng.expovariate(1 / rng.choice((2, 30)))))
        t_cal = rng.uniform(0, 120)
        rows.append(
            (
                rng.uniform(0.1, 3),
                math.exp(rng.uniform(math.log(0.5), math.log(50))),
                rng.uniform(0.3, 5),
                math.exp(rng.uniform(math.log(0.5), math.log(20))),
                x,
                0.0 if x == 0 else rng.uniform(0, t_cal),
                t_cal,
                rng.uniform(1, 60),
            )
        )
    got = sql_expected_purchases(db, rows)
    for row, g in zip(rows, got, strict=True):
        assert_close(g, mp_expected_purchases(*row[:4], int(row[4]), *row[5:]), rel=1e-11, abs_=1e-300)


def test_bgnbd_expected_purchases_multi(db: psycopg.Connection) -> None:
    horizons = [12.0, 0.0, None, 24.0, 36.0, 500.0]
    for x, t_x, t_cal in ((0, 0.0, 7.0), (3, 20.0, 38.0), (250, 1.0, 60.0)):
        multi = scalar(
            db,
            "SELECT ltv.bgnbd_expected_purchases_multi(%s, %s, %s, %s, %s, %s, %s, %s::float8[])",
            (*BGNBD, x, t_x, t_cal, horizons),
        )
        one = "SELECT ltv.bgnbd_expected_purchases(%s, %s, %s, %s, %s, %s, %s, %s)"
        single = [None if t is None else scalar(db, one, (*BGNBD, x, t_x, t_cal, t)) for t in horizons]
        assert multi == single  # bit-identical, NULL for NULL, 0 for 0
    assert scalar(db, "SELECT ltv.bgnbd_expected_purchases_multi(0.2, 4, 0.8, 2.4, 2, 30, 38, '{}')") == []
    assert scalar(db, "SELECT ltv.bgnbd_expected_purchases_multi(0.2, 4, 0.8, 2.4, 2, 30, 38, NULL)") is None
    for bad in ("'{12, -1}'", "'{12, NaN}'", "'{Infinity}'"):
        with pytest.raises(errors.InvalidParameterValue):
            db.execute(f"SELECT ltv.bgnbd_expected_purchases_multi(0.2, 4, 0.8, 2.4, 2, 30, 38, {bad})")
    for args in ("0.2, 4, 0.8, 2.4, 2.5, 30, 38", "0.2, 4, 0.8, 2.4, 2, 40, 38", "0.2, 0, 0.8, 2.4, 2, 30, 38"):
        with pytest.raises(errors.InvalidParameterValue):
            db.execute(f"SELECT ltv.bgnbd_expected_purchases_multi({args}, '{{12}}')")


# --------------------------------------------------------------------------- Gamma-Gamma


def test_gg_expected_spend_first_ten_cdnow_customers(db: psycopg.Connection) -> None:
    published = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    path = shared_data_dir() / "cdnow" / "cdnow_customers_summary_with_transactions.csv"
    with path.open() as fh:
        rows = [r for _, r in zip(range(10), csv.DictReader(fh), strict=False)]
    for row, want in zip(rows, published, strict=True):
        got = scalar(db, "SELECT ltv.gg_expected_spend(%s, %s, %s, %s, %s)", (*GG, float(row["x"]), float(row["zbar"])))
        assert abs(got - want) <= 0.1, (row, got, want)
        p, q, v = GG
        x, m = float(row["x"]), float(row["zbar"])
        assert_close(got, (q - 1) / (p * x + q - 1) * v * p / (q - 1) + p * x / (p * x + q - 1) * m, rel=1e-14)


def test_gg_population_mean_and_errors(db: psycopg.Connection) -> None:
    p, q, v = GG
    got = scalar(db, "SELECT ltv.gg_expected_spend(%s, %s, %s, 0, NULL)", GG)
    assert_close(got, p * v / (q - 1), rel=1e-15)
    assert round(got, 2) == 35.17
    for q_bad in (1.0, 0.5):
        with pytest.raises(errors.InvalidParameterValue, match="q must be > 1"):
            db.execute("SELECT ltv.gg_expected_spend(6.2, %s, 15.4, 2, 20)", (q_bad,))
    with pytest.raises(errors.InvalidParameterValue):
        db.execute("SELECT ltv.gg_expected_spend(6.2, 3.7, 15.4, 2, -5)")


# --------------------------------------------------------------------------- sBG


def test_sbg_survival_and_projection(db: psycopg.Connection) -> None:
    alpha, beta = SBG
    projected = column(db, "SELECT 1000 * ltv.sbg_survival(%s, %s, t) FROM generate_series(8, 12) t ORDER BY t", SBG)
    for got, want in zip(projected, [460, 436, 414, 395, 378], strict=True):
        assert abs(got - want) <= 1.0, (got, want)
    # S(t) = Π r(i): the survival curve and the retention rates must agree
    surv = 1.0
    for t in range(1, 30):
        ret = scalar(db, "SELECT ltv.sbg_retention(%s, %s, %s)", (alpha, beta, t))
        assert_close(ret, (beta + t - 1) / (alpha + beta + t - 1), rel=1e-15)
        surv *= ret
        assert_close(scalar(db, "SELECT ltv.sbg_survival(%s, %s, %s)", (alpha, beta, t)), surv, rel=1e-12)
    assert scalar(db, "SELECT ltv.sbg_survival(%s, %s, 0)", SBG) == 1.0


def direct_derl(alpha: float, beta: float, n: int, d: float) -> float:
    """Σ_{t>n} S(t)/S(n) (1+d)^-(t-n-1), summed until the terms vanish."""
    total, s_ratio, t = 0.0, 1.0, n
    while True:
        t += 1
        s_ratio *= (beta + t - 1) / (alpha + beta + t - 1)
        term = s_ratio / (1 + d) ** (t - n - 1)
        total += term
        if term < 1e-17 * total:
            return total


def test_sbg_derl_reference_and_direct_sum(db: psycopg.Connection) -> None:
    got = scalar(db, "SELECT ltv.sbg_derl(%s, %s, 7, 0.10)", SBG)
    assert round(got, 3) == 7.530
    for alpha, beta in (SBG, (0.1, 0.3), (5.0, 40.0), (1.0, 1.0)):
        for n in (0, 1, 7, 40):
            for d in (0.01, 0.1, 0.5):
                got = scalar(db, "SELECT ltv.sbg_derl(%s, %s, %s, %s)", (alpha, beta, n, d))
                assert_close(got, direct_derl(alpha, beta, n, d), rel=1e-10)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ltv.sbg_derl(0.67, 3.8, 7, 0)",
        "SELECT ltv.sbg_derl(0.67, 3.8, 7, -0.1)",
        "SELECT ltv.sbg_derl(0.67, 3.8, -1, 0.1)",
        "SELECT ltv.sbg_derl(0, 3.8, 7, 0.1)",
        "SELECT ltv.sbg_survival(0.67, 3.8, -1)",
        "SELECT ltv.sbg_retention(0.67, 3.8, 0)",
    ],
)
def test_sbg_invalid_arguments_raise(db: psycopg.Connection, sql: str) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        db.execute(sql)


def test_public_functions_are_documented_and_pinned(db: psycopg.Connection) -> None:
    rows = db.execute(
        """
        SELECT p.proname, obj_description(p.oid, 'pg_proc'), p.proconfig, p.provolatile, p.proparallel
          FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace
         WHERE s.nspname = 'ltv'
           AND p.proname IN ('lgamma', 'lbeta', 'hyp2f1', 'bgnbd_expected_purchases',
                             'bgnbd_expected_purchases_multi', 'bgnbd_unconditional_purchases',
                             'bgnbd_p_alive', 'gg_expected_spend', 'sbg_survival', 'sbg_retention',
                             'sbg_derl')
        """
    ).fetchall()
    assert len(rows) == 11
    for name, comment, config, volatility, parallel in rows:
        assert comment, name
        assert any(c.startswith("search_path=") for c in config or []), name
        assert (volatility, parallel) == ("i", "s"), name


def test_bgnbd_kernel_is_internal_and_search_path_proof(db: psycopg.Connection) -> None:
    # The kernel has no SET search_path (its GUC save/restore would cost more than the whole fast
    # path); it must not depend on the caller's search_path either.
    config, volatility, parallel, comment = db.execute(
        "SELECT proconfig, provolatile, proparallel, obj_description(oid, 'pg_proc') FROM pg_proc"
        " WHERE oid = 'ltv.bgnbd_expected_purchases_kernels'::regproc"
    ).fetchone()
    assert config is None and (volatility, parallel) == ("i", "s") and comment
    kernel = "SELECT (ltv.bgnbd_expected_purchases_kernels(%s, %s, %s, %s, 2, 38.86, ARRAY[39]))[1]"
    want = scalar(db, kernel, BGNBD)
    db.execute("CREATE SCHEMA decoy")
    db.execute("CREATE FUNCTION decoy.ln(float8) RETURNS float8 LANGUAGE sql AS 'SELECT 0::float8'")
    db.execute("CREATE FUNCTION decoy.exp(float8) RETURNS float8 LANGUAGE sql AS 'SELECT 0::float8'")
    # a fresh session, so that the kernel's expressions are planned under the hostile path
    with psycopg.connect(db.info.dsn, autocommit=True) as other:
        other.execute("SET search_path = decoy, pg_catalog")
        got = scalar(other, kernel, BGNBD)
        assert scalar(other, "SELECT ln(2::float8)") == 0.0  # the decoy is live in that session
    assert got == want
