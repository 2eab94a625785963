-- ltv.recompute_customer_stats(customer_ids): recompute these customers' live statistics from
-- the raw tables (ltv.customer_facts with no cutoff), store them and return the ids of the
-- customers whose row changed (NULL: none). It does not notify: its callers do, once per
-- statement — ltv.refresh_customer_stats for the customers that changed, the INSERT trigger for
-- every customer of the statement.
--
-- Concurrency: the rows are locked first (ltv.lock_customer_stats, in id order, creating
-- missing ones) and only then recomputed, by a new statement whose snapshot includes everything
-- the previous holders of those locks committed. A customer left with no event and no
-- subscription loses its row.

CREATE OR REPLACE FUNCTION ltv.recompute_customer_stats(p_customer_ids bigint[])
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
SET plan_cache_mode = force_custom_plan
SET jit = off
AS $$
DECLARE
    v_ids     bigint[];
    v_changed bigint[];
BEGIN
SELECT array_agg(id ORDER BY id) INTO v_ids
FROM (SELECT DISTINCT id FROM unnest(p_customer_ids) id WHERE id IS NOT NULL) distinct_ids;
IF v_ids IS NULL THEN
    RETURN NULL;
END IF;

PERFORM ltv.lock_customer_stats(v_ids);

-- recompute under the locks
WITH
facts AS (
    SELECT * FROM ltv.customer_facts(NULL, v_ids)
),
updated AS (
    UPDATE ltv.customer_stats t
    SET (event_count, first_event_at, last_event_at, recurring_net, one_off_net, x,
         first_purchase_at, last_purchase_at, one_off_spend, subscription_id, plan_code,
         subscription_started, subscription_cancelled, subscription_ended, paid_periods,
         last_period_at, last_period_event_id, period_amount)
      = (f.event_count, f.first_event_at, f.last_event_at, f.recurring_net, f.one_off_net, f.x,
         f.first_purchase_at, f.last_purchase_at, f.one_off_spend, f.subscription_id, f.plan_code,
         f.subscription_started, f.subscription_cancelled, f.subscription_ended, f.paid_periods,
         f.last_period_at, f.last_period_event_id, f.period_amount)
    FROM facts f
    WHERE t.customer_id = f.customer_id AND t IS DISTINCT FROM f
    RETURNING t.customer_id
),
removed AS (
    DELETE FROM ltv.customer_stats t
    USING unnest(v_ids) AS ids(customer_id)  -- a join: = ANY (v_ids) would be estimated id by id
    WHERE t.customer_id = ids.customer_id
      AND NOT EXISTS (SELECT 1 FROM facts f WHERE f.customer_id = t.customer_id)
    RETURNING t.customer_id
)
SELECT array_agg(customer_id) INTO v_changed
FROM (SELECT customer_id FROM updated UNION ALL SELECT customer_id FROM removed) changed;
RETURN v_changed;
END;
$$;

COMMENT ON FUNCTION ltv.recompute_customer_stats(bigint[]) IS
    'Internal: recompute the live statistics of these customers from the raw tables, locking their rows in id order; returns the customers changed, without notifying';
