-- sbg_derl.sql — sBG discounted expected residual lifetime (DERL).
--
-- Fader & Hardie (2010), "Customer-base valuation in a contractual setting: the perils of ignoring
-- heterogeneity", Marketing Science 29(1), eq. 6: for a customer who has made n renewals (is
-- active in period n+1, about to decide on renewal n+1), with discount rate d per period,
--   DERL(d | α, β, n) = Σ_{t>n} S(t)/S(n) / (1+d)^(t-n-1)
--                     = (β+n)/(α+β+n) · ₂F₁(1, β+n+1; α+β+n+1; 1/(1+d)).
-- Residual value = (margin per period paid at each renewal) × DERL.  d must be > 0: at d = 0 the
-- sum is the undiscounted residual lifetime, infinite whenever α <= 1.
-- Reference: α = 0.6681, β = 3.8061, n = 7, d = 0.10 → 7.530.

CREATE OR REPLACE FUNCTION ltv.sbg_derl(alpha float8, beta float8, renewals int, discount float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    IF 'NaN'::float8 IN (alpha, beta, discount) THEN
        RAISE EXCEPTION 'ltv.sbg_derl: NaN argument' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (alpha > 0 AND beta > 0 AND alpha < 'Infinity' AND beta < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.sbg_derl: alpha and beta must be positive and finite (alpha=%, beta=%)', alpha, beta
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF renewals < 0 THEN
        RAISE EXCEPTION 'ltv.sbg_derl: renewals must be >= 0, got %', renewals
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (discount > 0 AND discount < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.sbg_derl: discount rate must be > 0 (and finite), got %', discount
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN (beta + renewals) / (alpha + beta + renewals)
         * ltv.hyp2f1(1, beta + renewals + 1, alpha + beta + renewals + 1, 1 / (1 + discount));
END
$$;

COMMENT ON FUNCTION ltv.sbg_derl(float8, float8, int, float8) IS
'sBG discounted expected residual lifetime of a customer who has made `renewals` renewals, in periods, discount rate per period > 0 (Fader & Hardie 2010, eq. 6). Error (22023) for discount <= 0, renewals < 0 or non-positive alpha, beta.';
