-- ltv.refresh_customer_stats(customer_ids): recompute customers' live statistics from the raw
-- tables (ltv.customer_facts with no cutoff) and store them; NULL = rebuild the whole table.
-- The statement triggers call it for updates and deletes of revenue events and for every
-- subscription change; operators call it to repair the table after loading with the triggers
-- disabled (ltv.verify_customer_stats says whether that is needed). Returns the number of
-- customers whose row changed, and tells listeners which (NOTIFY ltv_changed, via
-- ltv.notify_customers_changed; {"all":true} after a full rebuild that changed anything).
--
-- Concurrency: the rows are locked first (ltv.lock_customer_stats) and only then recomputed, by
-- a new statement whose snapshot includes everything the previous holders of those locks
-- committed. A customer left with no event and no subscription loses its row. The full
-- rebuild takes a SHARE ROW EXCLUSIVE lock on the table (writers wait for it; readers do not).

CREATE OR REPLACE FUNCTION ltv.refresh_customer_stats(p_customer_ids bigint[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
SET plan_cache_mode = force_custom_plan
SET jit = off
AS $$
DECLARE
    v_ids     bigint[];
    v_changed bigint[];
BEGIN
IF p_customer_ids IS NULL THEN
    LOCK TABLE ltv.customer_stats IN SHARE ROW EXCLUSIVE MODE;
    WITH
    facts AS (
        SELECT * FROM ltv.customer_facts(NULL)
    ),
    removed AS (
        DELETE FROM ltv.customer_stats t
        WHERE NOT EXISTS (SELECT 1 FROM facts f WHERE f.customer_id = t.customer_id)
        RETURNING t.customer_id
    ),
    written AS (
        INSERT INTO ltv.customer_stats AS t
        SELECT * FROM facts
        ON CONFLICT (customer_id) DO UPDATE
        SET (event_count, first_event_at, last_event_at, recurring_net, one_off_net, x,
             first_purchase_at, last_purchase_at, one_off_spend, subscription_id, plan_code,
             subscription_started, subscription_cancelled, subscription_ended, paid_periods,
             last_period_at, last_period_event_id, period_amount)
          = (excluded.event_count, excluded.first_event_at, excluded.last_event_at, excluded.recurring_net,
             excluded.one_off_net, excluded.x, excluded.first_purchase_at, excluded.last_purchase_at,
             excluded.one_off_spend, excluded.subscription_id, excluded.plan_code, excluded.subscription_started,
             excluded.subscription_cancelled, excluded.subscription_ended, excluded.paid_periods,
             excluded.last_period_at, excluded.last_period_event_id, excluded.period_amount)
        WHERE t IS DISTINCT FROM excluded
        RETURNING t.customer_id
    )
    SELECT array_agg(customer_id) INTO v_changed
    FROM (SELECT customer_id FROM removed UNION ALL SELECT customer_id FROM written) changed;
    IF v_changed IS NOT NULL THEN
        PERFORM ltv.notify_customers_changed(NULL);
    END IF;
    RETURN coalesce(cardinality(v_changed), 0);
END IF;

SELECT array_agg(id ORDER BY id) INTO v_ids
FROM (SELECT DISTINCT id FROM unnest(p_customer_ids) id WHERE id IS NOT NULL) distinct_ids;
IF v_ids IS NULL THEN
    RETURN 0;
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
IF v_changed IS NOT NULL THEN
    PERFORM ltv.notify_customers_changed(v_changed);
END IF;
RETURN coalesce(cardinality(v_changed), 0);
END;
$$;

COMMENT ON FUNCTION ltv.refresh_customer_stats(bigint[]) IS
    'Recompute the live statistics of these customers (NULL = everyone) from the raw tables, locking their rows in id order; notifies and returns the customers changed';
