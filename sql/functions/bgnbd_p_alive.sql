-- bgnbd_p_alive.sql — BG/NBD probability that a customer is still alive at the end of calibration.
--
-- Fader, Hardie & Lee (2005) eq. 13 (and their note "Computing P(alive) using the BG/NBD model"):
--   P(alive | x, t_x, T) = 1 / (1 + δ_{x>0} · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))
-- With x = 0 the model says the customer cannot have dropped out (dropout happens only right after
-- a purchase), so P(alive) = 1.  Evaluated in log space: ((α+T)/(α+t_x))^(r+x) overflows float8 for
-- x in the thousands, while P(alive) itself merely tends to 0.

CREATE OR REPLACE FUNCTION ltv.bgnbd_p_alive(
    r float8, alpha float8, a float8, b float8,
    x float8, t_x float8, t_cal float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    ld float8;
    e  float8;
BEGIN
    -- one test for the valid case (NaN fails it too: NaN sorts above 'Infinity'), the detailed
    -- checks only to say what is wrong; exp0 written out inline: a call of a function with
    -- SET search_path costs more than this whole function (GUC save/restore per call)
    IF NOT (r > 0 AND alpha > 0 AND a > 0 AND b > 0 AND r < 'Infinity' AND alpha < 'Infinity'
            AND a < 'Infinity' AND b < 'Infinity' AND x >= 0 AND x = floor(x) AND x < 'Infinity'
            AND t_x >= 0 AND t_cal >= t_x AND t_cal < 'Infinity') THEN
        IF 'NaN'::float8 IN (r, alpha, a, b, x, t_x, t_cal) THEN
            RAISE EXCEPTION 'ltv.bgnbd_p_alive: NaN argument' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT (r > 0 AND alpha > 0 AND a > 0 AND b > 0)
           OR r = 'Infinity' OR alpha = 'Infinity' OR a = 'Infinity' OR b = 'Infinity' THEN
            RAISE EXCEPTION 'ltv.bgnbd_p_alive: parameters must be positive and finite (r=%, alpha=%, a=%, b=%)', r, alpha, a, b
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT (x >= 0 AND x = floor(x) AND x < 'Infinity') THEN
            RAISE EXCEPTION 'ltv.bgnbd_p_alive: x must be a non-negative whole number of repeat purchases, got %', x
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        RAISE EXCEPTION 'ltv.bgnbd_p_alive: need 0 <= t_x <= t_cal (t_x=%, t_cal=%)', t_x, t_cal
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF x = 0 THEN
        RETURN 1;
    END IF;
    ld := ln(a) - ln(b + x - 1) + (r + x) * (ln(alpha + t_cal) - ln(alpha + t_x));
    IF ld > 0 THEN
        e := CASE WHEN ld > 745 THEN 0 ELSE exp(-ld) END;      -- ltv.exp0(-ld)
        RETURN e / (1 + e);
    END IF;
    RETURN 1 / (1 + exp(ld));
END
$$;

COMMENT ON FUNCTION ltv.bgnbd_p_alive(float8, float8, float8, float8, float8, float8, float8) IS
'BG/NBD P(alive | x, t_x, T = t_cal) (Fader, Hardie & Lee 2005); 1 when x = 0. Errors (22023) for non-positive parameters, non-integer x or t_x > t_cal.';
