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
--
-- ltv.sbg_payments_quantiles(alpha, beta, paid, q[]): that quantile for every q of the array,
-- element by element (NULL for a NULL element), in one pass over P(K >= k); the single-q function
-- is this one with one element. Scoring needs two quantiles for each of up to 21 notice levels
-- of one (fit, paid periods); with α ≤ 1 a quantile can take hundreds of steps, and one pass
-- instead of forty took ~3 s off scoring a million customers.

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

CREATE OR REPLACE FUNCTION ltv.sbg_payments_quantiles(alpha float8, beta float8, paid integer, q float8[])
RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_levels float8[];      -- the distinct 1 - q, largest first: the order the tail falls below them
    v_steps  integer[];     -- v_steps[i] = the quantile of the level v_levels[i]
    v_next   integer := 1;  -- the next level the tail has to fall to
    v_tail   float8 := 1;   -- P(K >= k + 1) once updated for k
    k        integer := 0;
BEGIN
    IF alpha <= 0 OR beta <= 0 OR paid < 1 OR EXISTS (SELECT FROM unnest(q) v WHERE v <= 0 OR v >= 1) THEN
        RAISE EXCEPTION 'ltv.sbg_payments_quantiles: need alpha, beta > 0, paid >= 1, 0 < q < 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT array_agg(DISTINCT 1 - v ORDER BY 1 - v DESC) INTO v_levels FROM unnest(q) v WHERE v IS NOT NULL;
    IF v_levels IS NULL THEN
        RETURN array_fill(NULL::integer, ARRAY[cardinality(q)]);
    END IF;
    v_steps := array_fill(NULL::integer, ARRAY[cardinality(v_levels)]);
    -- smallest k with P(K >= k + 1) <= 1 - q, for every level in one walk down the tail
    LOOP
        v_tail := v_tail * (beta + paid + k - 1) / (alpha + beta + paid + k - 1);
        WHILE v_next <= cardinality(v_levels) AND (v_tail <= v_levels[v_next] OR k >= 1200) LOOP
            v_steps[v_next] := k;
            v_next := v_next + 1;
        END LOOP;
        EXIT WHEN v_next > cardinality(v_levels);
        k := k + 1;
    END LOOP;
    RETURN ARRAY(SELECT v_steps[array_position(v_levels, 1 - v)] FROM unnest(q) WITH ORDINALITY AS u(v, i) ORDER BY i);
END;
$$;

COMMENT ON FUNCTION ltv.sbg_payments_quantiles(float8, float8, integer, float8[]) IS
    'ltv.sbg_payments_quantile for every q of an array (same values), in one pass over the sBG predictive tail';

CREATE OR REPLACE FUNCTION ltv.sbg_payments_quantile(alpha float8, beta float8, paid integer, q float8)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
-- smallest k with P(K <= k) >= q, i.e. P(K >= k + 1) <= 1 - q: the one loop, in sbg_payments_quantiles
SELECT (ltv.sbg_payments_quantiles(alpha, beta, paid, ARRAY[q]))[1]
$$;

COMMENT ON FUNCTION ltv.sbg_payments_quantile(float8, float8, integer, float8) IS
    'q-quantile of the number of further payments of a subscriber who paid `paid` periods (sBG posterior predictive)';
