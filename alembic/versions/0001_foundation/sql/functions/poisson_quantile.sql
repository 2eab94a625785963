-- ltv.poisson_quantile(mean, q): the q-quantile of a Poisson(mean) count, by summing the pmf
-- (normal approximation above a mean of 500). Used for the one-off part of the LTV interval.

CREATE OR REPLACE FUNCTION ltv.poisson_quantile(mean float8, q float8)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_pmf float8 := exp(-mean);
    v_cdf float8 := exp(-mean);
    k     integer := 0;
BEGIN
    IF mean < 0 OR q <= 0 OR q >= 1 THEN
        RAISE EXCEPTION 'ltv.poisson_quantile: need mean >= 0 and 0 < q < 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF mean > 500 THEN
        -- exp(-mean) underflows: normal approximation, z from A&S 26.2.23 (|error| < 4.5e-4)
        v_pmf := sqrt(-2 * ln(least(q, 1 - q)));
        v_pmf := v_pmf - (2.515517 + 0.802853 * v_pmf + 0.010328 * v_pmf ^ 2)
                       / (1 + 1.432788 * v_pmf + 0.189269 * v_pmf ^ 2 + 0.001308 * v_pmf ^ 3);
        RETURN greatest(0, round(mean + sqrt(mean) * sign(q - 0.5) * v_pmf)::integer);
    END IF;
    WHILE v_cdf < q AND k < 100000 LOOP
        k := k + 1;
        v_pmf := v_pmf * mean / k;
        v_cdf := v_cdf + v_pmf;
    END LOOP;
    RETURN k;
END;
$$;

COMMENT ON FUNCTION ltv.poisson_quantile(float8, float8) IS 'q-quantile of a Poisson(mean) count';
