-- float_helpers.sql — small floating-point primitives the model math needs and PostgreSQL 15 lacks.
--
-- Why these exist:
--   * PostgreSQL raises "value out of range: underflow" when exp() (or a float8 product/quotient)
--     rounds to exactly zero, instead of returning 0.  Likelihood terms routinely ask for e^-800,
--     where 0 is the right answer, so ltv.exp0() returns 0 below the subnormal range.
--   * log1p / expm1 are not built in.  The BG/NBD expectation is computed as
--     -expm1(u)/(a-1) with u of order (a-1), and the lgamma series near 1 and 2 needs log1p:
--     plain ln(1+y) / exp(u)-1 would lose every digit there.
--     Both use the classical correction tricks (Goldberg 1991, "What every computer scientist
--     should know about floating-point arithmetic", Theorem 4; Kahan's expm1 via exp and ln):
--       log1p(y) = ln(1+y) * y / ((1+y) - 1)      (the rounding of 1+y cancels out)
--       expm1(u) = (e^u - 1) * u / ln(e^u)        (the rounding of e^u cancels out)

CREATE OR REPLACE FUNCTION ltv.exp0(x float8)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
    -- e^-745 is the smallest subnormal; below that the true value rounds to 0.
    SELECT CASE WHEN x < -745 THEN 0::float8 ELSE exp(x) END
$$;

COMMENT ON FUNCTION ltv.exp0(float8) IS
'exp(x) that returns 0 instead of raising "underflow" when e^x is below the float8 range (x < -745). Overflow (x > 709.78) still raises.';

CREATE OR REPLACE FUNCTION ltv.log1p(y float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    u float8 := 1 + y;
BEGIN
    IF y <= -1 THEN
        RAISE EXCEPTION 'ltv.log1p: argument % must be greater than -1', y
            USING ERRCODE = 'invalid_argument_for_logarithm';
    END IF;
    IF u = 1 THEN
        RETURN y;              -- |y| below half an ulp of 1: log1p(y) = y to full precision
    END IF;
    IF u = 'Infinity'::float8 THEN
        RETURN u;
    END IF;
    RETURN ln(u) * (y / (u - 1));
END
$$;

COMMENT ON FUNCTION ltv.log1p(float8) IS
'ln(1 + y), accurate to full relative precision also for tiny |y| (Goldberg''s correction). Error for y <= -1.';

CREATE OR REPLACE FUNCTION ltv.expm1(u float8)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    e float8;
BEGIN
    IF u < -40 THEN
        RETURN -1 + ltv.exp0(u);   -- e^u is below half an ulp of 1
    END IF;
    e := exp(u);
    IF e = 1 THEN
        RETURN u;
    END IF;
    RETURN (e - 1) * (u / ln(e));
END
$$;

COMMENT ON FUNCTION ltv.expm1(float8) IS
'e^u - 1, accurate to full relative precision also for tiny |u| (Kahan''s correction). Overflow (u > 709.78) raises.';
