-- fit_sbg_lifetimes.sql — sBG maximum likelihood on lifetimes from many cohorts at once.
--
-- Real subscription data are not one cohort observed for K periods: subscriptions start every
-- day and are observed for different lengths. Per number of paid periods t, churned[t] counts
-- subscriptions that paid exactly t periods and left (P(T = t)), censored[t] those that have
-- paid t periods and are still running (P(T ≥ t) = S(t − 1)):
--   LL(α, β) = Σ_t churned[t] ln P(T = t) + censored[t] ln S(t − 1),
--   P(T = t) = S(t − 1) α / (α + β + t − 1),  S(t) = S(t − 1) (β + t − 1) / (α + β + t − 1).
-- A single cohort's survivor counts are the special case churned[t] = n_{t−1} − n_t for t ≤ K
-- and censored[K + 1] = n_K. Optimised in (ln α, ln β) by ltv.bfgs_minimize with the analytic
-- gradient; standard errors by ltv.mle_standard_errors.

CREATE OR REPLACE FUNCTION ltv.sbg_lifetimes_nll(phi float8[], aux float8[], OUT f float8, OUT g float8[])
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    alpha float8 := exp(phi[1]);
    beta  float8 := exp(phi[2]);
    k     int := cardinality(aux) / 2;   -- aux = churned[1..k] || censored[1..k]
    ln_s  float8 := 0;                   -- ln S(t - 1)
    ds_a  float8 := 0;                   -- d ln S(t - 1) / dα
    ds_b  float8 := 0;                   -- d ln S(t - 1) / dβ
    ll    float8 := 0;
    ga    float8 := 0;
    gb    float8 := 0;
    den   float8;
BEGIN
    FOR t IN 1..k LOOP
        den := alpha + beta + t - 1;
        IF aux[t] > 0 THEN
            ll := ll + aux[t] * (ln_s + ln(alpha) - ln(den));
            ga := ga + aux[t] * (ds_a + 1 / alpha - 1 / den);
            gb := gb + aux[t] * (ds_b - 1 / den);
        END IF;
        IF aux[k + t] > 0 THEN
            ll := ll + aux[k + t] * ln_s;
            ga := ga + aux[k + t] * ds_a;
            gb := gb + aux[k + t] * ds_b;
        END IF;
        ln_s := ln_s + ln(beta + t - 1) - ln(den);
        ds_a := ds_a - 1 / den;
        ds_b := ds_b + 1 / (beta + t - 1) - 1 / den;
    END LOOP;
    f := -ll;
    g := ARRAY[-ga * alpha, -gb * beta];      -- chain rule to log space
END
$$;

COMMENT ON FUNCTION ltv.sbg_lifetimes_nll(float8[], float8[]) IS
    'sBG negative log-likelihood and gradient in (ln alpha, ln beta) on churned/censored lifetime counts (aux = churned || censored)';

CREATE OR REPLACE FUNCTION ltv.fit_sbg_lifetimes(churned bigint[], censored bigint[])
RETURNS TABLE (alpha float8, beta float8, log_likelihood float8,
               alpha_se float8, beta_se float8, converged boolean, iterations int, n bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    k        int := cardinality(churned);
    aux      float8[];
    res      record;
    best     record;
    x0       float8[];
    best_f   float8 := 'Infinity';
    n_churn  float8;
    n_all    float8;
    exposure float8;
    ret      float8;
BEGIN
    IF k IS NULL OR k = 0 OR cardinality(censored) IS DISTINCT FROM k
       OR array_position(churned, NULL) IS NOT NULL OR array_position(censored, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ltv.fit_sbg_lifetimes: churned and censored must be non-empty arrays of equal length without NULLs'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    aux := churned::float8[] || censored::float8[];
    IF EXISTS (SELECT 1 FROM unnest(aux) v WHERE v < 0) THEN
        RAISE EXCEPTION 'ltv.fit_sbg_lifetimes: counts must be non-negative' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT sum(v) INTO n_churn FROM unnest(churned) v;
    n_all := n_churn + (SELECT sum(v) FROM unnest(censored) v);
    IF n_all = 0 THEN
        RAISE EXCEPTION 'ltv.fit_sbg_lifetimes: no subscriptions to fit' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- start at the geometric retention matching churn events per period of exposure
    SELECT sum(aux[t] * t + aux[k + t] * (t - 1)) INTO exposure FROM generate_series(1, k) t;
    ret := least(greatest(1 - n_churn / greatest(exposure, 1), 0.01), 0.99);
    FOREACH x0 SLICE 1 IN ARRAY ARRAY[[ln(2 * (1 - ret)), ln(2 * ret)], [0, 0]]::float8[] LOOP
        SELECT * INTO res FROM ltv.bfgs_minimize('ltv.sbg_lifetimes_nll'::regproc, x0, aux);
        IF NOT res.converged THEN     -- restart from where it stopped, fresh Hessian
            SELECT * INTO res FROM ltv.bfgs_minimize('ltv.sbg_lifetimes_nll'::regproc, res.x, aux);
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
    n := n_all::bigint;
    -- No churn at all, or no survivor of any period: the supremum is at the box edge.
    converged := best.converged AND abs(best.x[1]) < 18.4 AND abs(best.x[2]) < 18.4
                 AND n_churn > 0 AND n_churn < n_all;
    IF converged THEN
        SELECT se[1], se[2] INTO alpha_se, beta_se
        FROM ltv.mle_standard_errors('ltv.sbg_lifetimes_nll'::regproc, best.x, aux, ARRAY[alpha, beta]) AS se;
        converged := alpha_se IS NOT NULL;
    END IF;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION ltv.fit_sbg_lifetimes(bigint[], bigint[]) IS
    'Maximum-likelihood sBG fit on churned / right-censored lifetime counts per paid period (many cohorts), with standard errors';
