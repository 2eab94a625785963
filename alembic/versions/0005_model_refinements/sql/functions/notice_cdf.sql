-- ltv.notice_cdf(fractions): the cancellation-notice CDF F on the grid 0, 0.05, …, 1 (21 values),
-- from the fraction of the last paid period gone at each leaver's cancellation (1 = cancelled at
-- the very end, no notice); NULL without leavers. See sbg_notice_norm.sql.

CREATE OR REPLACE FUNCTION ltv.notice_cdf(p_fractions float8[])
RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
WITH
buckets AS (  -- bucket k holds fractions in ((k−1)/20, k/20]; 0 holds exactly 0
    SELECT ceil(least(greatest(f, 0), 1) * 20)::integer AS k, count(*) AS n
    FROM unnest(p_fractions) AS f
    WHERE f IS NOT NULL
    GROUP BY 1
),
cumulative AS (
    SELECT g.k, sum(coalesce(b.n, 0)) OVER (ORDER BY g.k) AS at_most, sum(coalesce(b.n, 0)) OVER () AS total
    FROM generate_series(0, 20) AS g(k)
    LEFT JOIN buckets b USING (k)
)
SELECT CASE WHEN max(total) > 0 THEN array_agg(at_most::float8 / nullif(total, 0) ORDER BY k) END
FROM cumulative
$$;

COMMENT ON FUNCTION ltv.notice_cdf(float8[]) IS
    'Cancellation-notice CDF on the grid 0, 0.05, ..., 1 from leavers'' elapsed fractions at cancellation (NULL without leavers)';
