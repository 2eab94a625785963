-- gg_expected_spend.sql — Gamma-Gamma conditional expected average transaction value.
--
-- Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base analysis",
-- JMR 42(4), and Fader & Hardie (2013) "The Gamma-Gamma model of monetary value", eq. 5:
--   E[M | p, q, v, x, m̄] = (q-1)/(p x + q - 1) · v p/(q-1) + p x/(p x + q - 1) · m̄
--                        = p (v + x m̄) / (p x + q - 1)
-- a weighted average of the population mean p v/(q-1) and the customer's observed mean m̄ of x
-- repeat transactions.  With x = 0 it is the population mean (m̄ is then ignored, may be NULL).
-- The population mean exists only for q > 1: q <= 1 is an error.

CREATE OR REPLACE FUNCTION ltv.gg_expected_spend(p float8, q float8, v float8, x float8, m float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    IF p IS NULL OR q IS NULL OR v IS NULL OR x IS NULL OR (x > 0 AND m IS NULL) THEN
        RETURN NULL;
    END IF;
    IF 'NaN'::float8 IN (p, q, v, x, coalesce(m, 0)) THEN
        RAISE EXCEPTION 'ltv.gg_expected_spend: NaN argument' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (p > 0 AND v > 0 AND p < 'Infinity' AND v < 'Infinity' AND q < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.gg_expected_spend: p and v must be positive and finite (p=%, v=%)', p, v
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT q > 1 THEN
        RAISE EXCEPTION 'ltv.gg_expected_spend: q must be > 1 for the mean spend to exist, got q=%', q
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (x >= 0 AND x < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.gg_expected_spend: x must be a finite number >= 0, got %', x
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF x = 0 THEN
        RETURN p * v / (q - 1);
    END IF;
    IF NOT (m >= 0 AND m < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.gg_expected_spend: mean spend m must be finite and >= 0, got %', m
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p * (v + x * m) / (p * x + q - 1);
END
$$;

COMMENT ON FUNCTION ltv.gg_expected_spend(float8, float8, float8, float8, float8) IS
'Gamma-Gamma E[M | x repeat transactions with mean value m] = p(v + x m)/(p x + q - 1) (Fader, Hardie & Lee 2005); the population mean p v/(q-1) when x = 0. Error (22023) for q <= 1 or non-positive p, v.';
