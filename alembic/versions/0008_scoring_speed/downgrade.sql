-- 0008_scoring_speed: the function it added (the changed ones are reinstalled from 0007's predecessors)
DROP FUNCTION IF EXISTS ltv.poisson_quantile_steps(float8, float8);
DROP FUNCTION IF EXISTS ltv.few_active_since(timestamptz);
