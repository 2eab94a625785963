-- fit_sbg.sql — maximum-likelihood fit of the shifted-beta-geometric (sBG) model.
--
-- Fader & Hardie (2007), "How to project customer retention", eq. 5–6 and Appendix B:
-- survivors[1] = cohort size n_0, survivors[k+1] = n_k still active after k periods.  With
-- P(T = t) = S(t-1) · α/(α+β+t-1) and S(t) = S(t-1) · (β+t-1)/(α+β+t-1):
--   LL(α, β) = Σ_{t=1..K} (n_{t-1} - n_t) ln P(T = t) + n_K ln S(K)
-- (the n_K still active are right-censored).  Computed by these recursions (no Γ needed), with the
-- analytic gradient carried along.  Optimised over (ln α, ln β) by ltv.bfgs_minimize.
-- Reference: 1000, 869, 743, 653, 593, 551, 517, 491 → α = 0.6681, β = 3.8061, LL = -1611.16.
--
-- Degenerate data have no interior maximum; the fit then stops at the box edge (α or β at
-- e^±25) and reports converged = false (ltv.fit_sbg_detail):
--   * nobody churns:            LL → 0 as β/α → ∞ (retention → 1);
--   * everybody churns at once:  LL → 0 as α/β → ∞ (retention → 0);
--   * homogeneous churn:        α, β → ∞ with α/(α+β) fixed (the plain geometric model);
--   * a single period:          only α/(α+β) is identified (singular Hessian).
-- The returned numbers are finite and the log-likelihood is the supremum approached; callers must
-- not activate a fit with converged = false.

CREATE OR REPLACE FUNCTION ltv.sbg_nll(phi float8[], aux float8[], OUT f float8, OUT g float8[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = ltv, pg_catalog
AS $$
DECLARE
    alpha float8 := exp(phi[1]);
    beta  float8 := exp(phi[2]);
    k     int := cardinality(aux) - 1;
    ln_s  float8 := 0;          -- ln S(t-1)
    ds_a  float8 := 0;          -- d ln S(t-1) / dα
    ds_b  float8 := 0;          -- d ln S(t-1) / dβ
    ll    float8 := 0;
    ga    float8 := 0;
    gb    float8 := 0;
    died  float8;
    den   float8;
    t     int;
BEGIN
    FOR t IN 1..k LOOP
        died := aux[t] - aux[t + 1];
        den := alpha + beta + t - 1;
        IF died > 0 THEN
            ll := ll + died * (ln_s + ln(alpha) - ln(den));
            ga := ga + died * (ds_a + 1 / alpha - 1 / den);
            gb := gb + died * (ds_b - 1 / den);
        END IF;
        ln_s := ln_s + ln(beta + t - 1) - ln(den);
        ds_a := ds_a - 1 / den;
        ds_b := ds_b + 1 / (beta + t - 1) - 1 / den;
    END LOOP;
    IF aux[k + 1] > 0 THEN
        ll := ll + aux[k + 1] * ln_s;
        ga := ga + aux[k + 1] * ds_a;
        gb := gb + aux[k + 1] * ds_b;
    END IF;
    f := -ll;
    g := ARRAY[-ga * alpha, -gb * beta];      -- chain rule to log space
END
$$;

COMMENT ON FUNCTION ltv.sbg_nll(float8[], float8[]) IS
'sBG negative log-likelihood and its gradient in (ln alpha, ln beta); aux = survivors. Objective of ltv.fit_sbg.';

CREATE OR REPLACE FUNCTION ltv.fit_sbg_detail(survivors bigint[])
RETURNS TABLE (alpha float8, beta float8, log_likelihood float8,
               alpha_se float8, beta_se float8, converged boolean, iterations int, n bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
DECLARE
    k    int;
    aux  float8[];
    res  record;
    best record;
    x0   float8[];
    ret  float8;
    i    int;
    best_f float8 := 'Infinity';
BEGIN
    IF survivors IS NULL OR array_ndims(survivors) IS DISTINCT FROM 1 OR cardinality(survivors) < 2 THEN
        RAISE EXCEPTION 'ltv.fit_sbg: survivors must be a one-dimensional array of at least 2 counts (cohort size, then survivors after each period), got %', survivors
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    k := cardinality(survivors) - 1;
    FOR i IN 1..k + 1 LOOP
        IF survivors[array_lower(survivors, 1) + i - 1] IS NULL THEN
            RAISE EXCEPTION 'ltv.fit_sbg: survivors[%] is NULL', i USING ERRCODE = 'invalid_parameter_value';
        END IF;
        aux[i] := survivors[array_lower(survivors, 1) + i - 1];
    END LOOP;
    IF aux[1] <= 0 THEN
        RAISE EXCEPTION 'ltv.fit_sbg: cohort size survivors[1] must be positive, got %', aux[1]
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR i IN 2..k + 1 LOOP
        IF aux[i] < 0 OR aux[i] > aux[i - 1] THEN
            RAISE EXCEPTION 'ltv.fit_sbg: survivor counts must be non-negative and non-increasing, got % after %', aux[i], aux[i - 1]
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;

    -- start where the mean retention of the data is matched with moderate heterogeneity
    -- (α + β = 2 would be a flat Beta prior), plus a plain (1, 1) start; keep the better optimum.
    ret := least(greatest((aux[k + 1] / aux[1]) ^ (1.0 / k), 0.01), 0.99);
    FOREACH x0 SLICE 1 IN ARRAY ARRAY[[ln(2 * (1 - ret)), ln(2 * ret)], [0, 0]]::float8[] LOOP
        SELECT * INTO res FROM ltv.bfgs_minimize('ltv.sbg_nll'::regproc, x0, aux);
        IF NOT res.converged THEN     -- restart from where it stopped, fresh Hessian
            SELECT * INTO res FROM ltv.bfgs_minimize('ltv.sbg_nll'::regproc, res.x, aux);
        END IF;
        IF res.f < best_f THEN
            best := res;
            best_f := res.f;
        END IF;
    END LOOP;

    alpha := exp(best.x[1]);
    beta := exp(best.x[2]);
    log_likelihood := -best.f;
    iterations := best.iterations;
    n := aux[1]::bigint;
    -- An optimum at the box edge is no interior MLE (see header).  The two extreme data sets
    -- (nobody churns / everybody churns in period 1) are recognised directly: their supremum is
    -- approached along a whole curve, and the optimiser may stop anywhere on it with a tiny
    -- gradient.  A strict maximum also needs a positive-definite Hessian: a single period
    -- identifies only α/(α+β), not the heterogeneity.
    converged := best.converged AND abs(best.x[1]) < 18.4 AND abs(best.x[2]) < 18.4
                 AND aux[k + 1] < aux[1] AND aux[2] > 0 AND k >= 2;
    IF converged THEN
        SELECT se[1], se[2] INTO alpha_se, beta_se
        FROM ltv.mle_standard_errors('ltv.sbg_nll'::regproc, best.x, aux, ARRAY[alpha, beta]) AS se;
        converged := alpha_se IS NOT NULL;
    END IF;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION ltv.fit_sbg_detail(bigint[]) IS
'Maximum-likelihood sBG fit (Fader & Hardie 2007) on cohort survivor counts (survivors[1] = cohort size, survivors[k+1] = active after k periods) with standard errors, convergence flag and iteration count. Degenerate data (no churn, all churn at once, homogeneous churn) give finite boundary values with converged = false. Errors (22023) for malformed input.';

CREATE OR REPLACE FUNCTION ltv.fit_sbg(survivors bigint[])
RETURNS TABLE (alpha float8, beta float8, log_likelihood float8)
LANGUAGE sql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
    SELECT d.alpha, d.beta, d.log_likelihood FROM ltv.fit_sbg_detail(survivors) AS d
$$;

COMMENT ON FUNCTION ltv.fit_sbg(bigint[]) IS
'Maximum-likelihood sBG fit: (alpha, beta, log_likelihood) from cohort survivor counts. See ltv.fit_sbg_detail for standard errors and the convergence flag (boundary solutions for degenerate data).';
