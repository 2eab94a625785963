-- ltv.sbg_derl_series(alpha, beta, from_renewals, to_renewals, discount): ltv.sbg_derl(alpha, beta,
-- n, discount) for every n = from_renewals .. to_renewals, as an array (element n − from + 1),
-- from one ₂F₁ evaluation (at from_renewals) and the recurrence
--   D(n) = q_n (1 + v D(n + 1)),   q_n = (β + n) / (α + β + n),   v = 1 / (1 + d)
-- (the next payment comes with probability q_n; after it the residual lifetime is D(n + 1), one
-- period later), run forwards: D(n + 1) = (D(n) / q_n − 1) / v.
--
-- Why: scoring needs the DERL of every renewal count of every fit, and ₂F₁ at z = 1/(1 + d) —
-- close to 1 at a monthly rate — costs milliseconds per call (its series converges slowly
-- there), the recurrence a microsecond per step. Forwards, the relative error grows by
-- 1/(q_n v) per step (≈ 30 over 100 monthly renewals of a typical fit: α ≈ 1, β ≈ 8, d ≈ 0.8 %);
-- over 120 renewals of fits from α = 0.47 to 2.5 it stays within 1e-9 of ltv.sbg_derl. Starting
-- at the smallest renewal count needed keeps a one-customer call at one ₂F₁ evaluation.

CREATE OR REPLACE FUNCTION ltv.sbg_derl_series(alpha float8, beta float8, from_renewals integer, to_renewals integer,
                                                discount float8)
RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v      float8 := 1 / (1 + discount);
    d      float8;
    series float8[];
BEGIN
    IF NOT (0 <= from_renewals AND from_renewals <= to_renewals AND to_renewals - from_renewals <= 100000) THEN
        RAISE EXCEPTION 'ltv.sbg_derl_series: need 0 <= from_renewals <= to_renewals (at most 100000 apart), got % and %',
            from_renewals, to_renewals USING ERRCODE = 'invalid_parameter_value';
    END IF;
    d := ltv.sbg_derl(alpha, beta, from_renewals, discount);  -- validates alpha, beta and the rate
    series := ARRAY[d];
    FOR n IN from_renewals .. to_renewals - 1 LOOP
        d := (d * (alpha + beta + n) / (beta + n) - 1) / v;
        series := series || d;
    END LOOP;
    RETURN series;
END
$$;

COMMENT ON FUNCTION ltv.sbg_derl_series(float8, float8, integer, integer, float8) IS
    'ltv.sbg_derl for renewals from..to (element n-from+1), by one 2F1 evaluation and the DERL recurrence';
