"""The pieces that make scoring everyone fast (revisions 0008, 0011), each against the route it
replaces: Poisson quantiles looked up in ltv.poisson_quantile_steps vs ltv.poisson_quantile's
loop, ltv.months_between inlined (no SET search_path) yet immune to the caller's search_path,
and the sBG quantiles of every notice level in one pass (ltv.sbg_payments_quantiles).
Scoring's own values are held to the public functions in test_model_accuracy.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99])
def test_quantile_steps_give_the_loops_quantiles(db: psycopg.Connection, q: float) -> None:
    # a dense grid of means (step 0.001 up to 40, then coarser to 500), and each step's own
    # value and a hair (1e-12 relative) to either side: the steps are exact to that (within a
    # few ulps the loop's own rounding noise decides, see poisson_quantile_steps.sql)
    mismatches = db.execute(
        """WITH steps AS (SELECT ltv.poisson_quantile_steps(%(q)s, 500) AS s),
                means AS (
                    SELECT i / 1000.0::float8 AS m FROM generate_series(0, 40000) i
                    UNION ALL SELECT i / 7.0::float8 FROM generate_series(280, 3500) i
                    UNION ALL SELECT unnest(s) FROM steps
                    UNION ALL SELECT unnest(s) * (1 - 1e-12::float8) FROM steps
                    UNION ALL SELECT unnest(s) * (1 + 1e-12::float8) FROM steps)
           SELECT count(*) FILTER (WHERE width_bucket(m, s) <> ltv.poisson_quantile(m, %(q)s)),
                  count(*)
           FROM means, steps WHERE m <= 500""",
        {"q": q},
    ).fetchone()
    assert mismatches[1] > 44_000
    assert mismatches[0] == 0


def test_quantile_steps_cover_the_largest_mean_asked_for(db: psycopg.Connection) -> None:
    steps = db.execute("SELECT ltv.poisson_quantile_steps(0.9, 3.5)").fetchone()[0]
    assert steps == sorted(steps) and steps[-1] > 3.5 and steps[-2] <= 3.5
    # the 90th percentile is 0 while P(0) = e^-m >= 0.9, i.e. up to m = ln(1/0.9)
    assert steps[0] == pytest.approx(0.10536051565782628, rel=1e-15)
    assert db.execute("SELECT ltv.poisson_quantile_steps(0.5, 0)").fetchone()[0] == [pytest.approx(0.6931471805599453)]


@pytest.mark.parametrize(("q", "max_mean"), [(0, 1), (1, 1), (0.5, -1), (0.5, float("inf")), (float("nan"), 1)])
def test_quantile_steps_refuse_bad_input(db: psycopg.Connection, q: float, max_mean: float) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="poisson_quantile_steps"):
        db.execute("SELECT ltv.poisson_quantile_steps(%s, %s)", (q, max_mean))


def test_facts_dated_from_is_inlined_and_never_null(db: psycopg.Connection) -> None:
    """The one rule for "its facts as of the cutoff come from the raw tables", which
    customer_history_via applies to a million statistics rows and the snapshot refresh checks
    before scoring in parallel: inlined into the scan (no call per row), and NULL dates — no
    event, no subscription — are never at or after the cutoff."""
    assert db.execute("SELECT proconfig FROM pg_proc WHERE oid = 'ltv.facts_dated_from'::regproc").fetchone()[0] is None
    plan = db.execute(
        "EXPLAIN (VERBOSE, COSTS OFF) SELECT customer_id FROM ltv.customer_stats s "
        "WHERE ltv.facts_dated_from(s.last_event_at, s.subscription_started, now())"
    ).fetchall()
    output = " ".join(line for (line,) in plan)
    assert "facts_dated_from" not in output and "last_event_at >=" in output  # the body, not a call
    cutoff = datetime(2026, 6, 1, tzinfo=UTC)
    before, at = datetime(2026, 5, 31, tzinfo=UTC), cutoff
    cases = [((None, None), False), ((before, None), False), ((None, before), False), ((before, before), False),
             ((at, None), True), ((None, at), True), ((before, at), True), ((at, before), True)]
    for (last_event, started), want in cases:
        got = db.execute("SELECT ltv.facts_dated_from(%s, %s, %s)", (last_event, started, cutoff)).fetchone()[0]
        assert got is want, (last_event, started)


def test_months_between_is_inlined_and_search_path_proof(db: psycopg.Connection) -> None:
    config = db.execute("SELECT proconfig FROM pg_proc WHERE oid = 'ltv.months_between'::regproc").fetchone()[0]
    assert config is None
    plan = db.execute(
        "EXPLAIN (VERBOSE, COSTS OFF) SELECT ltv.months_between(signed_up_at, now()) FROM ltv.customers"
    ).fetchall()
    output = " ".join(line for (line,) in plan)
    assert "months_between" not in output and "EXTRACT(epoch" in output  # the body, not a call
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, 10, 30, tzinfo=UTC)
    want = (end - start).total_seconds() / (30.4375 * 86400)
    db.execute("CREATE SCHEMA decoy")
    db.execute("CREATE FUNCTION decoy.date_part(text, interval) RETURNS numeric LANGUAGE sql AS 'SELECT 0::numeric'")
    db.execute("CREATE FUNCTION decoy.extract(text, interval) RETURNS numeric LANGUAGE sql AS 'SELECT 0::numeric'")
    with psycopg.connect(db.info.dsn, autocommit=True) as other:
        other.execute("SET search_path = decoy, pg_catalog")
        got = other.execute("SELECT ltv.months_between(%s, %s)", (start, end)).fetchone()[0]
    assert got == pytest.approx(want, rel=1e-15)


def _sbg_quantile(alpha: float, beta: float, paid: int, q: float) -> int:
    """The q-quantile of further payments walked in Python: smallest k with P(K >= k + 1) <= 1 - q,
    P(K >= k + 1) the product over j <= k of (beta + paid + j - 1) / (alpha + beta + paid + j - 1),
    capped at 1200 — the same float operations in the same order as the SQL."""
    tail, k = 1.0, 0
    while True:
        tail = tail * (beta + paid + k - 1) / (alpha + beta + paid + k - 1)
        if tail <= 1 - q or k >= 1200:
            return k
        k += 1


def test_sbg_quantiles_in_one_pass_are_the_walked_quantiles(db: psycopg.Connection) -> None:
    """ltv.sbg_payments_quantiles (and the single-q ltv.sbg_payments_quantile, which is it with one
    element) against the tail walked in Python, element by element: heavy and light tails, the
    1200-period cap, repeated and NULL levels, any order."""
    rows = db.execute(
        """WITH cases AS (
               SELECT a, b, n, array_agg(q ORDER BY i) AS qs
               FROM (VALUES (0.3), (0.8), (1.3), (4.0)) AS a_(a), (VALUES (0.5), (2.5), (9.0), (60.0)) AS b_(b),
                    (VALUES (1), (2), (9), (120)) AS n_(n),
                    LATERAL (SELECT i, CASE WHEN i % 9 = 0 THEN NULL
                                            WHEN i % 5 = 0 THEN 1 - 0.9 * (0.5 + i / 80.0)
                                            ELSE 1 - (i * 0.0371 + 0.002) END AS q
                             FROM generate_series(1, 26) i) qq
               GROUP BY a, b, n),
                levels AS (SELECT a::float8, b::float8, n, (qs || ARRAY[qs[3], qs[1], qs[3]])::float8[] AS qs
                           FROM cases)
           SELECT a, b, n, qs, ltv.sbg_payments_quantiles(a, b, n, qs),
                  ARRAY(SELECT ltv.sbg_payments_quantile(a, b, n, q) FROM unnest(qs) WITH ORDINALITY u(q, i) ORDER BY i)
           FROM levels"""
    ).fetchall()
    assert len(rows) == 64
    capped = 0
    for alpha, beta, paid, qs, got, singles in rows:
        want = [None if q is None else _sbg_quantile(alpha, beta, paid, q) for q in qs]
        assert got == want, (alpha, beta, paid)
        assert singles == want, (alpha, beta, paid)
        capped += 1200 in want
    assert capped > 0
    assert db.execute("SELECT ltv.sbg_payments_quantiles(1, 2, 3, ARRAY[NULL]::float8[])").fetchone()[0] == [None]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT ltv.sbg_payments_quantiles(1, 2, 3, ARRAY[0.5, 1.0])")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        db.execute("SELECT ltv.sbg_payments_quantile(1, 2, 3, 1.0)")


def test_kernel_horizons_in_one_call_are_the_single_calls_in_any_order(db: psycopg.Connection) -> None:
    """ltv.bgnbd_expected_purchases_kernels (revision 0011) loops over its horizons in one call; each
    value must not depend on the horizons before it (no state left from an earlier pass: the
    routes below take the backward series, the forward series and the rigorous fallback)."""
    differ, cases = db.execute(
        """WITH grid AS (
               SELECT r, al, a, b, x, tc, ARRAY[t, NULL, 0.02 * t, 30 * t, t] AS ts
               FROM (VALUES (0.24), (3.0)) AS r_(r), (VALUES (0.5), (40.0)) AS al_(al),
                    (VALUES (0.05), (1.0), (1.3), (9.0)) AS a_(a), (VALUES (0.3), (20.0)) AS b_(b),
                    (VALUES (0), (7), (250)) AS x_(x), (VALUES (0.0), (60.0)) AS tc_(tc),
                    (VALUES (1.0), (12.0)) AS t_(t))
           SELECT count(*) FILTER (WHERE ltv.bgnbd_expected_purchases_kernels(r, al, a, b, x, tc, ts) IS DISTINCT FROM
                      ARRAY(SELECT (ltv.bgnbd_expected_purchases_kernels(r, al, a, b, x, tc, ARRAY[u.t]))[1]
                            FROM unnest(ts) WITH ORDINALITY AS u(t, i) ORDER BY u.i)),
                  count(*)
           FROM grid"""
    ).fetchone()
    assert cases == 384
    assert differ == 0
