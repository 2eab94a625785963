-- 0013_parallel_refresh: ltv.customer_history_via, ltv.customer_history and ltv.score_customers
-- take a range of customer ids (two more arguments, so new signatures: the old ones go first),
-- which the snapshot refresh scores in parallel workers through ltv.score_customer_range; the
-- frozen files of this revision create them.
DROP FUNCTION ltv.score_customers(timestamptz, bigint[], bigint);
DROP FUNCTION ltv.customer_history(timestamptz, bigint);
DROP FUNCTION ltv.customer_history_via(timestamptz, bigint, boolean);
