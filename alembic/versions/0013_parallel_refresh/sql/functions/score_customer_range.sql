-- ltv.score_customer_range(as_of, from_id, to_id): ltv.score_customers for the customers with ids
-- in [from_id, to_id], from the active fits — one part of the snapshot refresh's scoring, which
-- runs the parts side by side in parallel workers (ltv.refresh_customer_ltv_snapshot).
--
-- Labelled PARALLEL SAFE for that one use, which it is when no customer in the range has an
-- event or subscription dated at or after the as-of: ltv.customer_history then reads the live
-- statistics only. Such customers are recomputed from the raw tables by ltv.customer_facts,
-- which sets enable_nestloop, and a parallel worker may not set parameters — the refresh scores
-- serially through ltv.score_customers when there are any. ltv.score_customers itself stays
-- parallel unsafe: backtests score at past cutoffs.

CREATE OR REPLACE FUNCTION ltv.score_customer_range(p_as_of timestamptz, p_from_id bigint, p_to_id bigint)
RETURNS SETOF ltv.customer_ltv_result
LANGUAGE sql STABLE PARALLEL SAFE
-- seconds per call, not the default few operators: the planner then runs the parts in workers
COST 10000000
SET search_path = pg_catalog, ltv
AS $$
SELECT * FROM ltv.score_customers(p_as_of, NULL, NULL, p_from_id, p_to_id)
$$;

COMMENT ON FUNCTION ltv.score_customer_range(timestamptz, bigint, bigint) IS
    'Internal: ltv.score_customers for the customers with ids in [from_id, to_id] — one part of the snapshot refresh''s parallel scoring';
