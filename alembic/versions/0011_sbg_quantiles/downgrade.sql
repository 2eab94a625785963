-- 0011_sbg_quantiles: the function it added (score_customers is reinstalled from 0010's predecessors)
DROP FUNCTION IF EXISTS ltv.sbg_payments_quantiles(float8, float8, integer, float8[]);
