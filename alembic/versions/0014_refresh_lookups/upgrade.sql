-- 0014_refresh_lookups: ltv.score_customer_range returns four more columns (the customer's
-- reference and region, the scored plan's code and tier), so the old function goes first; the
-- frozen files of this revision create it again.
DROP FUNCTION ltv.score_customer_range(timestamptz, bigint, bigint);
