-- fit_bgnbd.sql — maximum-likelihood fit of the BG/NBD model inside PostgreSQL.
--
-- Fader, Hardie & Lee (2005), "Counting your customers the easy way", eq. 6:
--   L_i = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
--       + δ_{x>0} B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
-- so, with B(a+1, b+x-1)/B(a, b+x) = a/(b+x-1),
--   ln L_i = Σ_{j<x} [ln(r+j) + ln(b+j) - ln(a+b+j)] + r ln α
--          + logsumexp( -(r+x) ln(α+T),  δ_{x>0} [ln a - ln(b+x-1) - (r+x) ln(α+t_x)] ).
-- Reference (CDNOW sample, weeks): r = 0.2426, α = 4.4136, a = 0.7929, b = 2.4259, LL = -9582.43.
--
-- Speed (one naive per-row SQL evaluation with a SQL lgamma over ~30,000 rows costs ~260 ms):
--   * the input is compressed to distinct (x, t_x, t_cal) with summed weight n (temp table);
--   * the Γ/B terms depend on the data only through the integer x: Σ_i Σ_{j<x_i} ln(r+j) =
--     Σ_j c_j ln(r+j) with c_j = total weight of customers with x > j, a second small temp table;
--   * one scan per evaluation returns the log-likelihood and its analytic gradient (4 sums), so
--     BFGS needs a few dozen scans; nested subqueries with OFFSET 0 keep each per-row logarithm
--     from being evaluated more than once.
--   * above 60,000 rows, BFGS first runs on a 1-in-k sample of the rows and hands its optimum and
--     curvature to the run on all rows (ltv.bfgs_minimize_from): a million customers then take
--     a few full scans instead of ~40.
-- Parameters are optimised as ln r, ln α, ln a, ln b by ltv.bfgs_minimize_from.

CREATE OR REPLACE FUNCTION ltv.bgnbd_nll(phi float8[], aux float8[], OUT f float8, OUT g float8[])
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
DECLARE
    r     float8 := exp(phi[1]);
    alpha float8 := exp(phi[2]);
    a     float8 := exp(phi[3]);
    b     float8 := exp(phi[4]);
    lna   float8 := phi[3];
    ntot  float8 := aux[1];        -- total weight (number of customers)
    s_ll  float8;
    s_r   float8;
    s_al  float8;
    s_w   float8;
    s_b   float8;
    x_ll  float8;
    x_r   float8;
    x_ab  float8;
    x_b   float8;
    ll    float8;
BEGIN
    SELECT coalesce(sum(n * (greatest(u, v) + ln(1 + e))), 0),
           coalesce(sum(n * (lat + w * (lax - lat))), 0),
           coalesce(sum(n * (r + x) * ((1 - w) / (alpha + tc) + w / (alpha + tx))), 0),
           coalesce(sum(n * w), 0),
           coalesce(sum(CASE WHEN w = 0 THEN 0 ELSE n * w / (b + x - 1) END), 0)
      INTO s_ll, s_r, s_al, s_w, s_b
      FROM (SELECT n, x, tx, tc, lat, lax, u, v, e,
                   CASE WHEN v >= u THEN 1 / (1 + e) ELSE e / (1 + e) END AS w  -- share of 2nd term
              FROM (SELECT n, x, tx, tc, lat, lax, u, v,
                           CASE WHEN v - u < -745 OR v - u > 745 THEN 0
                                ELSE exp(-abs(v - u)) END AS e
                      FROM (SELECT n, x, tx, tc, lat, lax,
                                   -(r + x) * lat AS u,
                                   CASE WHEN x = 0 THEN '-Infinity'::float8
                                        ELSE lna - ln(b + x - 1) - (r + x) * lax END AS v
                              FROM (SELECT n, x, tx, tc, ln(alpha + tc) AS lat, ln(alpha + tx) AS lax
                                      FROM pg_temp.ltv_bgnbd_fit_rows OFFSET 0) s0
                            OFFSET 0) s1
                    OFFSET 0) s2
            OFFSET 0) s3;

    SELECT coalesce(sum(c * (ln(r + j) + ln(b + j) - ln(a + b + j))), 0),
           coalesce(sum(c / (r + j)), 0),
           coalesce(sum(c / (a + b + j)), 0),
           coalesce(sum(c / (b + j)), 0)
      INTO x_ll, x_r, x_ab, x_b
      FROM pg_temp.ltv_bgnbd_fit_xcnt;

    ll := s_ll + x_ll + ntot * r * ln(alpha);
    f := -ll;
    -- d LL / d θ, times θ for the log parametrisation, negated for minimisation
    g := ARRAY[
        -r * (x_r + ntot * ln(alpha) - s_r),
        -alpha * (ntot * r / alpha - s_al),
        -a * (s_w / a - x_ab),
        -b * (x_b - x_ab - s_b)];
END
$$;

COMMENT ON FUNCTION ltv.bgnbd_nll(float8[], float8[]) IS
'BG/NBD negative log-likelihood and gradient in (ln r, ln alpha, ln a, ln b) over the compressed data prepared by ltv.fit_bgnbd_detail (temp tables ltv_bgnbd_fit_rows, ltv_bgnbd_fit_xcnt); aux = {total weight}.';

-- ltv.bgnbd_fit_counts(max_x): (re)builds pg_temp.ltv_bgnbd_fit_xcnt — c_j = weight of the
-- customers with x > j, j = 0 .. max_x - 1 — from the rows in pg_temp.ltv_bgnbd_fit_rows: the
-- second input of ltv.bgnbd_nll, rebuilt whenever fit_bgnbd_detail changes the rows it fits
-- (a sample, then all of them).
CREATE OR REPLACE FUNCTION ltv.bgnbd_fit_counts(max_x bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
BEGIN
    IF to_regclass('pg_temp.ltv_bgnbd_fit_xcnt') IS NOT NULL THEN
        DROP TABLE pg_temp.ltv_bgnbd_fit_xcnt;
    END IF;
    CREATE TEMP TABLE ltv_bgnbd_fit_xcnt AS
    SELECT j::float8 AS j, sum(coalesce(wx.w, 0)) OVER (ORDER BY j DESC) AS c
      FROM generate_series(0, max_x - 1) AS j
      LEFT JOIN (SELECT fr.x, sum(fr.n) AS w FROM pg_temp.ltv_bgnbd_fit_rows fr GROUP BY fr.x) wx
        ON wx.x = j + 1;
END
$$;

COMMENT ON FUNCTION ltv.bgnbd_fit_counts(bigint) IS
'Internal (ltv.fit_bgnbd_detail): builds the temp table of c_j = weight of customers with more than j repeat purchases from the rows being fitted.';

CREATE OR REPLACE FUNCTION ltv.fit_bgnbd_detail(rfm regclass)
RETURNS TABLE (r float8, alpha float8, a float8, b float8,
               r_se float8, alpha_se float8, a_se float8, b_se float8,
               log_likelihood float8, converged boolean, iterations int, n float8)
LANGUAGE plpgsql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
#variable_conflict use_column
DECLARE
    col      text;
    has_n    boolean;
    chk      record;
    maxx     bigint;
    aux      float8[];
    x0       float8[];
    res      record;
    best     record;
    best_f   float8 := 'Infinity';
    se       float8[];
    n_rows   bigint;
    h0       float8[];
    sample_total float8;
    sample_ok    boolean;
BEGIN
    IF rfm IS NULL THEN
        RAISE EXCEPTION 'ltv.fit_bgnbd: relation is NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH col IN ARRAY ARRAY['x', 't_x', 't_cal'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                        WHERE attrelid = rfm AND attname = col AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'ltv.fit_bgnbd: relation % has no column "%" (needs x, t_x, t_cal and optionally n)', rfm, col
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    has_n := EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                      WHERE attrelid = rfm AND attname = 'n' AND attnum > 0 AND NOT attisdropped);

    -- compress: one row per distinct (x, t_x, t_cal), weight = number of customers
    -- leftovers of an earlier call in this transaction (IF EXISTS alone would NOTICE when the
    -- session has no temp schema yet)
    IF to_regclass('pg_temp.ltv_bgnbd_fit_rows') IS NOT NULL THEN
        DROP TABLE pg_temp.ltv_bgnbd_fit_rows;
    END IF;
    IF to_regclass('pg_temp.ltv_bgnbd_fit_xcnt') IS NOT NULL THEN
        DROP TABLE pg_temp.ltv_bgnbd_fit_xcnt;
    END IF;
    EXECUTE format(
        'CREATE TEMP TABLE ltv_bgnbd_fit_rows AS
         SELECT x, tx, tc, sum(w) AS n,
                count(*) FILTER (WHERE w IS NULL OR NOT w >= 0 OR w = ''Infinity'') AS bad_w
           FROM (SELECT %I::float8 AS x, %I::float8 AS tx, %I::float8 AS tc, %s::float8 AS w FROM %s) s
          GROUP BY x, tx, tc',
        'x', 't_x', 't_cal', CASE WHEN has_n THEN format('%I', 'n') ELSE '1' END, rfm);

    SELECT count(*) FILTER (WHERE x IS NULL OR tx IS NULL OR tc IS NULL) AS nulls,
           count(*) FILTER (WHERE NOT (x >= 0 AND x = floor(x) AND x < 'Infinity')) AS bad_x,
           count(*) FILTER (WHERE NOT (tx >= 0 AND tc >= tx AND tc < 'Infinity')) AS bad_t,
           coalesce(sum(bad_w), 0) AS bad_w,
           coalesce(sum(n), 0) AS total,
           coalesce(sum(n) FILTER (WHERE x > 0), 0) AS repeaters,
           max(x) AS maxx
      INTO chk FROM pg_temp.ltv_bgnbd_fit_rows;
    IF chk.nulls > 0 THEN
        RAISE EXCEPTION 'ltv.fit_bgnbd: % has NULL x, t_x or t_cal', rfm USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF chk.bad_x > 0 THEN
        RAISE EXCEPTION 'ltv.fit_bgnbd: x in % must be non-negative whole numbers (repeat purchases)', rfm
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chk.bad_t > 0 THEN
        RAISE EXCEPTION 'ltv.fit_bgnbd: % needs finite 0 <= t_x <= t_cal on every row', rfm
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chk.bad_w > 0 THEN
        RAISE EXCEPTION 'ltv.fit_bgnbd: weights n in % must be finite, non-NULL and >= 0', rfm
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chk.total = 0 THEN
        RAISE EXCEPTION 'ltv.fit_bgnbd: % has no customers to fit', rfm USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF chk.repeaters = 0 THEN
        -- the likelihood is then Σ n r ln(α/(α+T)): increasing as r → 0, free of a and b
        RAISE EXCEPTION 'ltv.fit_bgnbd: no customer in % has a repeat purchase (all x = 0); BG/NBD parameters are not identifiable', rfm
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM pg_temp.ltv_bgnbd_fit_rows WHERE n = 0;

    maxx := chk.maxx;
    ANALYZE pg_temp.ltv_bgnbd_fit_rows;

    aux := ARRAY[chk.total];
    -- start: r = 1 and α matching the mean purchase rate (r/α ≈ Σx / ΣT), a = b = 1;
    -- restart from the stopping point if the first run has not converged
    SELECT ARRAY[0, ln(least(greatest(sum(n * tc) / greatest(sum(n * x), 1), 1e-6), 1e6)), 0, 0], count(*)
      INTO x0, n_rows FROM pg_temp.ltv_bgnbd_fit_rows;
    IF n_rows > 60000 THEN
        -- warm start (a million customers: ~900,000 rows, ~0.7 s per scan): BFGS on a
        -- systematic 1-in-k sample of the rows (weights kept) from that start, then on all rows
        -- from the sample's optimum with its inverse Hessian scaled to the whole (the
        -- log-likelihood is a sum over customers), which needs a few steps instead of ~20
        -- iterations. Only the start changes: the result is the optimum of all the data.
        ALTER TABLE pg_temp.ltv_bgnbd_fit_rows RENAME TO ltv_bgnbd_fit_all;
        CREATE TEMP TABLE ltv_bgnbd_fit_rows AS
        SELECT s.x, s.tx, s.tc, s.n
          FROM (SELECT a.*, row_number() OVER () AS rn FROM pg_temp.ltv_bgnbd_fit_all a) s
         WHERE s.rn % ceil(n_rows / 30000.0)::bigint = 0;
        PERFORM ltv.bgnbd_fit_counts(maxx);
        SELECT sum(fr.n), bool_or(fr.x > 0) INTO sample_total, sample_ok FROM pg_temp.ltv_bgnbd_fit_rows fr;
        IF sample_ok THEN
            SELECT * INTO res FROM ltv.bfgs_minimize_from('ltv.bgnbd_nll'::regproc, x0, NULL, ARRAY[sample_total]);
            IF res.converged THEN
                x0 := res.x;
                h0 := array_fill(0::float8, ARRAY[4, 4]);
                FOR i IN 1..4 LOOP
                    FOR j IN 1..4 LOOP h0[i][j] := res.h[i][j] * (sample_total / chk.total); END LOOP;
                END LOOP;
            END IF;
        END IF;
        DROP TABLE pg_temp.ltv_bgnbd_fit_rows;
        ALTER TABLE pg_temp.ltv_bgnbd_fit_all RENAME TO ltv_bgnbd_fit_rows;
    END IF;
    PERFORM ltv.bgnbd_fit_counts(maxx);  -- c_j of all the rows
    FOR i IN 1..3 LOOP
        SELECT * INTO res FROM ltv.bfgs_minimize_from('ltv.bgnbd_nll'::regproc, x0, h0, aux);
        IF res.f < best_f THEN
            best := res;
            best_f := res.f;
        END IF;
        EXIT WHEN res.converged;
        x0 := res.x;
        h0 := NULL;
    END LOOP;

    r := exp(best.x[1]);
    alpha := exp(best.x[2]);
    a := exp(best.x[3]);
    b := exp(best.x[4]);
    log_likelihood := -best.f;
    iterations := best.iterations;
    n := chk.total;
    converged := best.converged
                 AND (SELECT bool_and(abs(v) < 18.4) FROM unnest(best.x) AS v);   -- not at the box edge
    IF converged THEN
        se := ltv.mle_standard_errors('ltv.bgnbd_nll'::regproc, best.x, aux, ARRAY[r, alpha, a, b]);
        r_se := se[1]; alpha_se := se[2]; a_se := se[3]; b_se := se[4];
        converged := se IS NOT NULL;      -- a strict maximum has a positive-definite Hessian
    END IF;
    DROP TABLE pg_temp.ltv_bgnbd_fit_rows;
    DROP TABLE pg_temp.ltv_bgnbd_fit_xcnt;
    RETURN NEXT;
END
$$;

COMMENT ON FUNCTION ltv.fit_bgnbd_detail(regclass) IS
'Maximum-likelihood BG/NBD fit (Fader, Hardie & Lee 2005) on a relation with columns x (repeat purchases), t_x (time of last purchase), t_cal (observation length) and optional weight n; returns parameters, standard errors (observed information), log-likelihood, convergence flag, BFGS iterations and total weight. Errors (22023) for empty input, invalid rows or no repeat purchases at all.';

CREATE OR REPLACE FUNCTION ltv.fit_bgnbd(rfm regclass)
RETURNS TABLE (r float8, alpha float8, a float8, b float8, log_likelihood float8, converged boolean)
LANGUAGE sql VOLATILE
SET search_path = ltv, pg_catalog
AS $$
    SELECT d.r, d.alpha, d.a, d.b, d.log_likelihood, d.converged FROM ltv.fit_bgnbd_detail(rfm) AS d
$$;

COMMENT ON FUNCTION ltv.fit_bgnbd(regclass) IS
'Maximum-likelihood BG/NBD fit on a relation with columns x, t_x, t_cal and optional weight n: (r, alpha, a, b, log_likelihood, converged). See ltv.fit_bgnbd_detail for standard errors.';
