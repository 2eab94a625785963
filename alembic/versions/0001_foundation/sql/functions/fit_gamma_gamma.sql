-- fit_gamma_gamma.sql — maximum-likelihood fit of the Gamma-Gamma spend model inside PostgreSQL.
--
-- Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base analysis";
-- Fader & Hardie (2013), "The Gamma-Gamma model of monetary value": transaction values
-- z ~ Gamma(p, ν), ν ~ Gamma(q, v).  The likelihood is that of the observed mean m̄ of x repeat
-- transactions (the convention of the lifetimes package, which includes the Jacobian x of
-- the change of variable from the sum to the mean):
--   ln L_i = ln Γ(px+q) - ln Γ(px) - ln Γ(q) + q ln v + (px-1) ln m̄ + px ln x - (px+q) ln(x m̄ + v)
-- With it the CDNOW sample (946 repeaters, m̄ = zbar) gives p = 6.2496, q = 3.7442, v = 15.4435,
-- LL = -4055.92 (the density of the sum x·m̄ would differ by Σ ln x).
--
-- Only rows with x > 0 and m > 0 carry information (the model describes repeat transactions).
-- Speed: rows are compressed to distinct (x, m) with summed weight; the Γ and ψ terms depend on x
-- only and are evaluated once per distinct x; Σ n (px-1) ln m̄ and Σ n px ln x are constants
-- times p, precomputed; one scan per evaluation gives ln(x m̄ + v) sums for LL and gradient.
-- Parametrisation: ln p, ln(q - 1), ln v.  q > 1 is needed for the mean spend p v/(q-1) to exist
-- (ltv.gg_expected_spend refuses q <= 1), so the fit searches only there; data whose unconstrained
-- optimum has q <= 1 end at the boundary and are reported as not converged.

CREATE OR REPLACE FUNCTION ltv.gamma_gamma_nll(phi float8[], aux float8[], OUT f float8, OUT g float8[])
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
DECLARE
    p       float8 := exp(phi[1]);
    q       float8 := 1 + exp(phi[2]);
    v       float8 := exp(phi[3]);
    ntot    float8 := aux[1];
    s_xlnm  float8 := aux[2];      -- Σ n x ln m
    s_lnm   float8 := aux[3];      -- Σ n ln m
    s_xlnx  float8 := aux[4];      -- Σ n x ln x
    r_pql   float8;
    r_xl    float8;
    r_l     float8;
    r_inv   float8;
    x_lg    float8;
    x_dp    float8;
    x_dq    float8;
    ll      float8;
BEGIN
    SELECT sum(n * (p * x + q) * l), sum(n * x * l), sum(n * l), sum(n * (p * x + q) / (x * m + v))
      INTO r_pql, r_xl, r_l, r_inv
      FROM (SELECT n, x, m, ln(x * m + v) AS l FROM pg_temp.ltv_gg_fit_rows OFFSET 0) s;

    SELECT sum(w * (ltv.lgamma(p * x + q) - ltv.lgamma(p * x))),
           sum(w * x * (ltv.digamma(p * x + q) - ltv.digamma(p * x))),
           sum(w * ltv.digamma(p * x + q))
      INTO x_lg, x_dp, x_dq
      FROM pg_temp.ltv_gg_fit_x;

    ll := x_lg - ntot * ltv.lgamma(q) + ntot * q * ln(v) + p * s_xlnm - s_lnm + p * s_xlnx - r_pql;
    f := -ll;
    g := ARRAY[
        -p * (x_dp + s_xlnm + s_xlnx - r_xl),
        -(q - 1) * (x_dq - ntot * ltv.digamma(q) + ntot * ln(v) - r_l),
        -v * (ntot * q / v - r_inv)];
END
$$;

COMMENT ON FUNCTION ltv.gamma_gamma_nll(float8[], float8[]) IS
'Gamma-Gamma negative log-likelihood and gradient in (ln p, ln(q-1), ln v) over the compressed data prepared by ltv.fit_gamma_gamma_detail (temp tables ltv_gg_fit_rows, ltv_gg_fit_x); aux = {N, Σn x ln m, Σn ln m, Σn x ln x}.';

CREATE OR REPLACE FUNCTION ltv.fit_gamma_gamma_detail(rfm regclass)
RETURNS TABLE (p float8, q float8, v float8, p_se float8, q_se float8, v_se float8,
               log_likelihood float8, converged boolean, iterations int, n float8)
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
    col    text;
    has_n  boolean;
    chk    record;
    aux    float8[];
    x0     float8[];
    res    record;
    best   record;
    best_f float8 := 'Infinity';
    se     float8[];
BEGIN
    IF rfm IS NULL THEN
        RAISE EXCEPTION 'ltv.fit_gamma_gamma: relation is NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH col IN ARRAY ARRAY['x', 'm'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                        WHERE attrelid = rfm AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'ltv.fit_gamma_gamma: relation % has no column "%" (needs x, m and optionally n)', rfm, col
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    has_n := EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                      WHERE attrelid = rfm AND attname = 'n' AND attnum > 0 AND NOT attisdropped);

    IF to_regclass('pg_temp.ltv_gg_fit_rows') IS NOT NULL THEN
        DROP TABLE pg_temp.ltv_gg_fit_rows;
    END IF;
    IF to_regclass('pg_temp.ltv_gg_fit_x') IS NOT NULL THEN
        DROP TABLE pg_temp.ltv_gg_fit_x;
    END IF;
    -- repeaters with positive mean spend only; weights validated on those rows
    EXECUTE format(
        'CREATE TEMP TABLE ltv_gg_fit_rows AS
         SELECT x, m, sum(w) AS n,
                count(*) FILTER (WHERE w IS NULL OR NOT w >= 0 OR w = ''Infinity'') AS bad_w
           FROM (SELECT %I::float8 AS x, %I::float8 AS m, %s::float8 AS w FROM %s) s
          WHERE x > 0 AND m > 0
          GROUP BY x, m',
        'x', 'm', CASE WHEN has_n THEN format('%I', 'n') ELSE '1' END, rfm);

    SELECT count(*) FILTER (WHERE x = 'Infinity' OR m = 'Infinity') AS bad_v,
           coalesce(sum(bad_w), 0) AS bad_w,
           coalesce(sum(n), 0) AS total
      INTO chk FROM pg_temp.ltv_gg_fit_rows;
    IF chk.bad_v > 0 THEN
        RAISE EXCEPTION 'ltv.fit_gamma_gamma: x and m in % must be finite', rfm USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chk.bad_w > 0 THEN
        RAISE EXCEPTION 'ltv.fit_gamma_gamma: weights n in % must be finite, non-NULL and >= 0', rfm
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chk.total = 0 THEN
        RAISE EXCEPTION 'ltv.fit_gamma_gamma: % has no repeat customer with positive mean spend (rows with x > 0 and m > 0)', rfm
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM pg_temp.ltv_gg_fit_rows WHERE n = 0;
    CREATE TEMP TABLE ltv_gg_fit_x AS
    SELECT fr.x, sum(fr.n) AS w FROM pg_temp.ltv_gg_fit_rows fr GROUP BY fr.x;
    ANALYZE pg_temp.ltv_gg_fit_rows;

    SELECT ARRAY[sum(fr.n), sum(fr.n * fr.x * ln(fr.m)), sum(fr.n * ln(fr.m)), sum(fr.n * fr.x * ln(fr.x))],
           -- start: p = 1, q = 2, v = mean spend (the population mean p v/(q-1) then equals it)
           ARRAY[0, 0, ln(sum(fr.n * fr.m) / sum(fr.n))]
      INTO aux, x0 FROM pg_temp.ltv_gg_fit_rows fr;
    FOR i IN 1..3 LOOP
        SELECT * INTO res FROM ltv.bfgs_minimize('ltv.gamma_gamma_nll'::regproc, x0, aux);
        IF res.f < best_f THEN
            best := res;
            best_f := res.f;
        END IF;
        EXIT WHEN res.converged;
        x0 := res.x;
    END LOOP;

    p := exp(best.x[1]);
    q := 1 + exp(best.x[2]);
    v := exp(best.x[3]);
    log_likelihood := -best.f;
    iterations := best.iterations;
    n := chk.total;
    converged := best.converged
                 AND (SELECT bool_and(abs(t) < 18.4) FROM unnest(best.x) AS t);   -- not at the box edge
    IF converged THEN
        se := ltv.mle_standard_errors('ltv.gamma_gamma_nll'::regproc, best.x, aux, ARRAY[p, q - 1, v]);
        p_se := se[1]; q_se := se[2]; v_se := se[3];
        converged := se IS NOT NULL;      -- a strict maximum has a positive-definite Hessian
    END IF;
    DROP TABLE pg_temp.ltv_gg_fit_rows;
    DROP TABLE pg_temp.ltv_gg_fit_x;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION ltv.fit_gamma_gamma_detail(regclass) IS
'Maximum-likelihood Gamma-Gamma fit (Fader, Hardie & Lee 2005; lifetimes likelihood convention) on a relation with columns x (repeat transactions), m (their mean value) and optional weight n, using rows with x > 0 and m > 0; returns parameters, standard errors, log-likelihood, convergence flag, BFGS iterations and total weight. Error (22023) when no such row exists.';

CREATE OR REPLACE FUNCTION ltv.fit_gamma_gamma(rfm regclass)
RETURNS TABLE (p float8, q float8, v float8, log_likelihood float8, converged boolean)
LANGUAGE sql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
    SELECT d.p, d.q, d.v, d.log_likelihood, d.converged FROM ltv.fit_gamma_gamma_detail(rfm) AS d
$$;

COMMENT ON FUNCTION ltv.fit_gamma_gamma(regclass) IS
'Maximum-likelihood Gamma-Gamma fit on a relation with columns x, m (mean repeat spend) and optional weight n: (p, q, v, log_likelihood, converged). See ltv.fit_gamma_gamma_detail for standard errors.';
