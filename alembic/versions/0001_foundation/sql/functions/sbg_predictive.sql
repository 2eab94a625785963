-- Predictive quantities of the shifted-beta-geometric model for one subscriber.
--
-- ltv.sbg_expected_payments(alpha, beta, paid, max_payments): expected number of further
-- payments, counting at most max_payments, of a subscriber who has paid `paid` periods:
--   Σ_{k=1}^{max} P(K >= k),  P(K >= k) = Π_{j=paid}^{paid+k-1} (β + j - 1) / (α + β + j - 1).
--
-- ltv.sbg_payments_quantile(alpha, beta, paid, q): the q-quantile of K, the number of further
-- payments of a subscriber who has paid `paid` periods, under the sBG posterior predictive:
--   P(K >= k) = S(paid + k - 1) / S(paid - 1) = Π_{j=paid}^{paid+k-1} (β + j - 1) / (α + β + j - 1).
-- Capped at 1200 periods (a century of monthly payments) because with α ≤ 1 the tail is heavy.

CREATE OR REPLACE FUNCTION ltv.sbg_payments_quantile(alpha float8, beta float8, paid integer, q float8)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_tail float8 := 1;     -- P(K >= k) for the current k
    k      integer := 0;
BEGIN
    IF alpha <= 0 OR beta <= 0 OR paid < 1 OR q <= 0 OR q >= 1 THEN
        RAISE EXCEPTION 'ltv.sbg_payments_quantile: need alpha, beta > 0, paid >= 1, 0 < q < 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- smallest k with P(K <= k) >= q, i.e. P(K >= k + 1) <= 1 - q
    LOOP
        v_tail := v_tail * (beta + paid + k - 1) / (alpha + beta + paid + k - 1);
        EXIT WHEN v_tail <= 1 - q OR k >= 1200;
        k := k + 1;
    END LOOP;
    RETURN k;
END;
$$;

COMMENT ON FUNCTION ltv.sbg_payments_quantile(float8, float8, integer, float8) IS
    'q-quantile of the number of further payments of a subscriber who paid `paid` periods (sBG posterior predictive)';

CREATE OR REPLACE FUNCTION ltv.sbg_expected_payments(alpha float8, beta float8, paid integer, max_payments integer)
RETURNS float8
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_tail float8 := 1;
    v_sum  float8 := 0;
BEGIN
    IF alpha <= 0 OR beta <= 0 OR paid < 1 THEN
        RAISE EXCEPTION 'ltv.sbg_expected_payments: need alpha, beta > 0 and paid >= 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR k IN 1 .. max_payments LOOP
        v_tail := v_tail * (beta + paid + k - 2) / (alpha + beta + paid + k - 2);
        v_sum := v_sum + v_tail;
    END LOOP;
    RETURN v_sum;
END;
$$;

COMMENT ON FUNCTION ltv.sbg_expected_payments(float8, float8, integer, integer) IS
    'Expected further payments (at most max_payments) of a subscriber who paid `paid` periods (sBG)';
