-- bgnbd_expected_purchases.sql — BG/NBD expected number of purchases.
--
-- Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to the
-- Pareto/NBD model", Marketing Science 24(2):
--   eq. 10 (conditional):  E[X(t) | x, t_x, T] =
--       (a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; z)]
--       / (1 + δ_{x>0} · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)),          z = t/(α+T+t)
--   eq. 7 (unconditional, a new customer): the same with x = t_x = T = 0, i.e.
--       (a+b-1)/(a-1) · [1 - (α/(α+t))^r ₂F₁(r, b; a+b-1; t/(α+t))].
--
-- Numerics.  With the Euler transform (A&S 15.3.3), since 1 - z = (α+T)/(α+T+t):
--   ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) ₂F₁(a+b-1-r, a-1; a+b+x-1; z)
-- whose series has small numerator and large denominator parameters: it converges fast for x in
-- the hundreds where the original series' terms grow like x^k and overflow.  Writing
-- ₂F₁(·, a-1; ·; z) = 1 + (a-1) G with G = ltv.hyp2f1_tail(...) (the series with the factor a-1
-- taken out), the bracket divided by (a-1) is
--   [1 - e^u]/(a-1),  u = (a-1) w,  w = ln(1-z) + log1p((a-1) G)/(a-1)
--   = -w · expm1(u)/u,
-- which is exact for a → 1 (the formula's removable singularity) and loses no digits to
-- cancellation.  The denominator is evaluated in log space (never overflows for large x).
-- If the series cannot converge (z extremely close to 1), the public ltv.hyp2f1 (which has the
-- 1-z connection formula) is used for the bracket instead.

CREATE OR REPLACE FUNCTION ltv.bgnbd_expected_purchases(
    r float8, alpha float8, a float8, b float8,
    x float8, t_x float8, t_cal float8, t float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    eps   float8 := a - 1;
    z     float8;
    lz1   float8;          -- ln(1 - z) = ln(α+T) - ln(α+T+t)
    g     float8;
    f     float8;
    y     float8;
    w     float8;
    u     float8;
    num   float8;
    ld    float8;
BEGIN
    IF 'NaN'::float8 IN (r, alpha, a, b, x, t_x, t_cal, t) THEN
        RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: NaN argument' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (r > 0 AND alpha > 0 AND a > 0 AND b > 0)
       OR r = 'Infinity' OR alpha = 'Infinity' OR a = 'Infinity' OR b = 'Infinity' THEN
        RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: parameters must be positive and finite (r=%, alpha=%, a=%, b=%)', r, alpha, a, b
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (x >= 0 AND x = floor(x) AND x < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: x must be a non-negative whole number of repeat purchases, got %', x
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (t_x >= 0 AND t_cal >= t_x AND t_cal < 'Infinity' AND t >= 0 AND t < 'Infinity') THEN
        RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: need 0 <= t_x <= t_cal and finite t >= 0 (t_x=%, t_cal=%, t=%)', t_x, t_cal, t
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF t = 0 THEN
        RETURN 0;
    END IF;

    z := t / (alpha + t_cal + t);
    lz1 := ln(alpha + t_cal) - ln(alpha + t_cal + t);
    g := (ltv.hyp2f1_tail(a + b - 1 - r, eps, a + b + x - 1, z)).g;
    IF g IS NOT NULL THEN
        y := eps * g;
        IF y <= -1 THEN
            RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: hypergeometric factor not positive (r=%, alpha=%, a=%, b=%, x=%, z=%)', r, alpha, a, b, x, z
                USING ERRCODE = 'numeric_value_out_of_range';
        END IF;
        w := lz1 + CASE WHEN y = 0 THEN g ELSE ltv.log1p(y) / eps END;
        u := eps * w;
        num := -w * CASE WHEN u = 0 THEN 1 ELSE ltv.expm1(u) / u END;
    ELSE
        -- z so close to 1 that the series is hopeless: connection formula through ltv.hyp2f1
        -- (raises if it cannot either); a = 1 exactly has no such fallback.
        IF eps = 0 THEN
            RAISE EXCEPTION 'ltv.bgnbd_expected_purchases: series did not converge (z = %, a = 1)', z
                USING ERRCODE = 'numeric_value_out_of_range';
        END IF;
        f := ltv.hyp2f1(a + b - 1 - r, eps, a + b + x - 1, z);
        num := -ltv.expm1(eps * lz1 + ln(f)) / eps;
    END IF;
    num := (a + b + x - 1) * num;

    IF x = 0 THEN
        RETURN num;
    END IF;
    -- 1 + exp(ld), ld = ln(a/(b+x-1)) + (r+x) ln((α+T)/(α+t_x)), without overflowing
    ld := ln(a) - ln(b + x - 1) + (r + x) * (ln(alpha + t_cal) - ln(alpha + t_x));
    IF ld > 0 THEN
        RETURN num * ltv.exp0(-ld) / (1 + ltv.exp0(-ld));
    END IF;
    RETURN num / (1 + exp(ld));
END
$$;

COMMENT ON FUNCTION ltv.bgnbd_expected_purchases(float8, float8, float8, float8, float8, float8, float8, float8) IS
'BG/NBD conditional expected number of repeat purchases in (T, T+t] for a customer with x repeat purchases, last at t_x, observed for t_cal: Fader, Hardie & Lee (2005) eq. 10. Time unit = that of the fit. Errors (22023) for non-positive parameters, non-integer x, t_x > t_cal or t < 0.';

CREATE OR REPLACE FUNCTION ltv.bgnbd_unconditional_purchases(
    r float8, alpha float8, a float8, b float8, t float8)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
    -- eq. 7 is eq. 10 at x = t_x = T = 0: one code path for both
    SELECT ltv.bgnbd_expected_purchases(r, alpha, a, b, 0, 0, 0, t)
$$;

COMMENT ON FUNCTION ltv.bgnbd_unconditional_purchases(float8, float8, float8, float8, float8) IS
'BG/NBD expected number of purchases in (0, t] for a randomly chosen new customer: Fader, Hardie & Lee (2005) eq. 7.';
