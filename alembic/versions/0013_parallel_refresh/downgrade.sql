-- 0013_parallel_refresh: back to the signatures without a range of customers (the downgrade
-- reinstalls the earlier frozen copies after this file).
DROP FUNCTION IF EXISTS ltv.score_customer_range(timestamptz, bigint, bigint);
DROP FUNCTION IF EXISTS ltv.score_customers(timestamptz, bigint[], bigint, bigint, bigint);
DROP FUNCTION IF EXISTS ltv.customer_history(timestamptz, bigint, bigint, bigint);
DROP FUNCTION IF EXISTS ltv.customer_history_via(timestamptz, bigint, boolean, bigint, bigint);
DROP FUNCTION IF EXISTS ltv.facts_dated_from(timestamptz, timestamptz, timestamptz);
