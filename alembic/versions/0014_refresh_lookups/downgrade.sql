-- 0014_refresh_lookups: back to ltv.score_customer_range's earlier result type and one GROUP BY
-- for segment_ltv (the downgrade reinstalls the earlier frozen copies after this file).
DROP FUNCTION IF EXISTS ltv.score_customer_range(timestamptz, bigint, bigint);
DROP FUNCTION IF EXISTS ltv.segment_figures(integer);
