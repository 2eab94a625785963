-- sbg_survival.sql — shifted-beta-geometric (sBG) survival and retention.
--
-- Fader & Hardie (2007), "How to project customer retention", J. Interactive Marketing 21(1):
--   churn probability θ ~ Beta(α, β) across customers, geometric lifetime given θ;
--   S(t) = B(α, β + t) / B(α, β)                      (eq. 7; t = periods survived, S(0) = 1)
--   r(t) = S(t)/S(t-1) = (β + t - 1)/(α + β + t - 1)   (eq. 8; retention rate in period t >= 1)
-- S is evaluated through ltv.lgamma, so t may be any real >= 0 (it interpolates).

CREATE OR REPLACE FUNCTION ltv.sbg_survival(alpha float8, beta float8, t float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    IF 'NaN'::float8 IN (alpha, beta, t) THEN
        RAISE EXCEPTION 'ltv.sbg_survival: NaN argument' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (alpha > 0 AND beta > 0 AND alpha < 'Infinity' AND beta < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.sbg_survival: alpha and beta must be positive and finite (alpha=%, beta=%)', alpha, beta
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (t >= 0) THEN
        RAISE EXCEPTION 'ltv.sbg_survival: t must be >= 0, got %', t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF t = 0 THEN
        RETURN 1;
    END IF;
    IF t = 'Infinity' THEN
        RETURN 0;
    END IF;
    RETURN ltv.exp0(ltv.lbeta(alpha, beta + t) - ltv.lbeta(alpha, beta));
END
$$;

COMMENT ON FUNCTION ltv.sbg_survival(float8, float8, float8) IS
'sBG survival S(t) = B(alpha, beta + t)/B(alpha, beta): share of a cohort still active after t periods (Fader & Hardie 2007, eq. 7). Error (22023) for non-positive parameters or t < 0.';

CREATE OR REPLACE FUNCTION ltv.sbg_retention(alpha float8, beta float8, t float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    IF 'NaN'::float8 IN (alpha, beta, t) THEN
        RAISE EXCEPTION 'ltv.sbg_retention: NaN argument' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (alpha > 0 AND beta > 0 AND alpha < 'Infinity' AND beta < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.sbg_retention: alpha and beta must be positive and finite (alpha=%, beta=%)', alpha, beta
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (t >= 1 AND t < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.sbg_retention: period t must be >= 1, got %', t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (beta + t - 1) / (alpha + beta + t - 1);
END
$$;

COMMENT ON FUNCTION ltv.sbg_retention(float8, float8, float8) IS
'sBG retention rate of period t (t >= 1): r(t) = (beta + t - 1)/(alpha + beta + t - 1) = S(t)/S(t-1) (Fader & Hardie 2007, eq. 8).';
