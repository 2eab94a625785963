-- ltv.season_thirds(bgnbd_params, from, months): a BG/NBD fit's seasonal index (its params'
-- 'season', see one_off_season_index.sql) averaged over each third of [from, from + months),
-- months of 30.4375 days: {w1, w2, w3}, each 1 without an index. Scoring and backtests both
-- scale the expected purchases of each third by these (ltv.season_mean does the averaging).

CREATE OR REPLACE FUNCTION ltv.season_thirds(p_bgnbd_params jsonb, p_from timestamptz, p_months float8)
RETURNS float8[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE  -- PL/pgSQL: its plans are kept for the session
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_season float8[] := ARRAY(SELECT jsonb_array_elements_text(p_bgnbd_params->'season')::float8);
    v_third  interval := p_months / 3 * interval '30.4375 days';
BEGIN
    RETURN ARRAY[ltv.season_mean(v_season, p_from, p_from + v_third),
                 ltv.season_mean(v_season, p_from + v_third, p_from + 2 * v_third),
                 ltv.season_mean(v_season, p_from + 2 * v_third, p_from + 3 * v_third)];
END;
$$;

COMMENT ON FUNCTION ltv.season_thirds(jsonb, timestamptz, float8) IS
    'A BG/NBD fit''s seasonal index averaged over each third of [from, from + months) (1 without an index)';
