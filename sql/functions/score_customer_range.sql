-- ltv.score_customer_range(as_of, from_id, to_id): ltv.score_customers for the customers with ids
-- in [from_id, to_id], from the active fits, with what the snapshot shows beside the scores (the
-- customer's reference and region, the plan code and tier of the subscription scored) — one part
-- of the snapshot refresh's scoring, which runs the parts side by side in parallel workers
-- (ltv.refresh_customer_ltv_snapshot), so the workers look these up too, not the leader after
-- them.
--
-- Labelled PARALLEL SAFE for that one use, which it is when no customer in the range has an
-- event or subscription dated at or after the as-of: ltv.customer_history then reads the live
-- statistics only, and the plan is the one of the statistics' subscription — the one it scored.
-- Such customers are recomputed from the raw tables by ltv.customer_facts, which sets
-- enable_nestloop, and a parallel worker may not set parameters — the refresh scores serially
-- through ltv.score_customers when there are any. ltv.score_customers itself stays parallel
-- unsafe: backtests score at past cutoffs.

CREATE OR REPLACE FUNCTION ltv.score_customer_range(p_as_of timestamptz, p_from_id bigint, p_to_id bigint)
RETURNS TABLE (
    customer_id               bigint,
    vendor_category           text,
    country                   text,
    acquisition_channel       text,
    signed_up_at              timestamptz,
    subscription_status       text,
    billing_interval          text,
    sbg_segment               text,
    bgnbd_segment             text,
    net_revenue               numeric,
    realised_margin           numeric,
    current_mrr               numeric,
    predicted_recurring       numeric,
    predicted_one_off         numeric,
    total_ltv                 numeric,
    p_alive                   float8,
    expected_purchases        float8,
    expected_remaining_months float8,
    ltv_low                   numeric,
    ltv_high                  numeric,
    customer_ref              text,
    region                    text,
    plan_code                 text,
    plan_tier                 text
)
LANGUAGE sql STABLE PARALLEL SAFE
-- seconds per call, not the default few operators: the planner then runs the parts in workers
COST 10000000
SET search_path = pg_catalog, ltv
AS $$
SELECT sc.*, c.customer_ref, c.region, st.plan_code, p.tier
FROM ltv.score_customers(p_as_of, NULL, NULL, p_from_id, p_to_id) sc
-- the part's own ids only: each worker reads its part of the lookups
JOIN ltv.customers c
  ON c.customer_id = sc.customer_id
 AND c.customer_id BETWEEN coalesce(p_from_id, -9223372036854775808) AND coalesce(p_to_id, 9223372036854775807)
LEFT JOIN ltv.customer_stats st
  ON st.customer_id = sc.customer_id
 AND st.customer_id BETWEEN coalesce(p_from_id, -9223372036854775808) AND coalesce(p_to_id, 9223372036854775807)
LEFT JOIN ltv.plans p ON p.plan_code = st.plan_code
$$;

COMMENT ON FUNCTION ltv.score_customer_range(timestamptz, bigint, bigint) IS
    'Internal: ltv.score_customers for the customers with ids in [from_id, to_id], with their reference, region, plan code and tier — one part of the snapshot refresh''s parallel scoring';
