-- ltv.season_mean(season, from, to): the time-weighted mean of a 12-month seasonal index (as
-- ltv.one_off_season_index returns, January first) over [from, to), in UTC calendar months.
-- 1 when there is no index (NULL) or the span is empty: no seasonal adjustment.

CREATE OR REPLACE FUNCTION ltv.season_mean(p_season float8[], p_from timestamptz, p_to timestamptz)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
SELECT CASE WHEN p_season IS NULL OR cardinality(p_season) <> 12 OR p_to IS NULL OR p_from IS NULL OR p_to <= p_from
            THEN 1.0
            ELSE (SELECT sum(p_season[extract(month FROM m)::integer]
                             * extract(epoch FROM least(m + interval '1 month', span.ends) - greatest(m, span.starts))
                             / extract(epoch FROM span.ends - span.starts))
                  FROM (SELECT p_from AT TIME ZONE 'UTC' AS starts, p_to AT TIME ZONE 'UTC' AS ends) span,
                       generate_series(date_trunc('month', span.starts), span.ends - interval '1 microsecond',
                                       interval '1 month') AS m)
       END
$$;

COMMENT ON FUNCTION ltv.season_mean(float8[], timestamptz, timestamptz) IS
    'Time-weighted mean of a 12-month seasonal index over [from, to) (1 without an index)';
