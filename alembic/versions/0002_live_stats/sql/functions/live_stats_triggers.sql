-- Statement-level triggers that keep ltv.customer_stats current in the same transaction as
-- every change to ltv.revenue_events (partitioned: the triggers sit on the parent, so INSERT,
-- COPY, INSERT … SELECT, UPDATE, DELETE and MERGE through it are all seen) and
-- ltv.subscriptions, and notify listeners of the customers whose figures changed
-- (ltv.notify_customers_changed: NOTIFY ltv_changed, delivered at commit).
--
-- Each statement's rows arrive in transition tables and are grouped by customer before any
-- write. The affected rows of ltv.customer_stats are locked in customer_id order
-- (ltv.lock_customer_stats) before they are read, so concurrent writers for the same customer
-- queue and build on each other's committed work, and writers for different customers never
-- wait for each other.
--   * live_stats_after_insert — INSERT of revenue events, the common case, bulk loads
--     included: adds the new events to the stored facts arithmetically (counts, sums, min/max,
--     latest charge by (time, id)). The purchase-day count x stays exact: a new one-off day
--     before the first or after the last stored purchase day is new, one on either of those
--     days is not, and only a day strictly between them is checked by counting that day's
--     purchases (ltv.one_off_purchases_on_day: one index probe in one partition). This
--     restates, for added events, the rules of ltv.customer_facts; ltv.verify_customer_stats
--     and tests/test_live_stats.py hold the two to the same result.
--   * live_stats_after_change — UPDATE and DELETE of revenue events, and every change to
--     subscriptions: recomputes the affected customers from the raw tables
--     (ltv.refresh_customer_stats). An UPDATE counts only customers whose rows changed in a
--     column the facts read (re-tagging batch_id costs nothing); a changed customer_id affects
--     the old and the new customer.
--   * live_stats_after_truncate — rebuilds the table.
-- Rows moved child-to-child by ltv.create_revenue_partition bypass the parent and its triggers
-- by design: moving an event between partitions changes nothing.
-- The functions are SECURITY DEFINER so writers need no privileges on ltv.customer_stats, and
-- run without JIT: compiling these statements would cost seconds and save nothing.

CREATE OR REPLACE FUNCTION ltv.live_stats_after_insert()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, ltv
SET plan_cache_mode = force_custom_plan
SET jit = off
-- bulk statements: per-customer groups hash in memory rather than spilling; the planner
-- cannot estimate how many groups a transition table holds, so joins are hash joins (a nested
-- loop over a mis-estimated group would be quadratic) and lookups are index scans
SET work_mem = '256MB'
SET enable_mergejoin = off
SET enable_nestloop = off
AS $$
DECLARE
    v_ids bigint[];  -- the customers the statement touched, ascending
BEGIN
SELECT array_agg(customer_id ORDER BY customer_id) INTO v_ids
FROM (SELECT DISTINCT customer_id FROM inserted_rows) inserted_customers;
IF v_ids IS NULL THEN
    RETURN NULL;
END IF;

-- Lock the customers' rows, in id order, before anything is read from ltv.customer_stats.
PERFORM ltv.lock_customer_stats(v_ids);

-- Merge. Planned afresh for every statement (plan_cache_mode above, v_ids a parameter): the
-- plan that suits one payment is not the plan that suits a COPY of millions. The transition
-- table is read twice (grouped by customer and subscription, and by customer and purchase
-- day); every join is a hash join and the stored rows are fetched by primary key (= ANY),
-- which is right at any size whatever the planner guesses about the groups.
WITH
added AS (  -- per customer and subscription: money, and for charges how many and the last
    SELECT r.customer_id, r.subscription_id,
           count(*) AS events,
           min(r.occurred_at) AS first_at,
           max(r.occurred_at) AS last_at,
           -- net = money in (subscription, one_off) − money out (refund, chargeback, credit)
           coalesce(sum(r.amount_base) FILTER (WHERE r.kind IN ('subscription', 'one_off')), 0)
             - coalesce(sum(r.amount_base) FILTER (WHERE r.kind NOT IN ('subscription', 'one_off')), 0) AS net,
           -- recurring = tied to a subscription: the whole group when it has a subscription_id,
           -- else only the charges (kind subscription) that lack one
           sum(r.amount_base) FILTER (WHERE r.kind = 'subscription' AND r.subscription_id IS NULL)
               AS unlinked_charges_net,
           count(*) FILTER (WHERE r.kind = 'subscription')::integer AS charges,
           max(r.occurred_at) FILTER (WHERE r.kind = 'subscription') AS charge_at,
           -- the last charge by (occurred_at, event_id) with its amount, in the same pass:
           -- arrays compare element by element, and the epoch (numeric) orders like the time
           max(ARRAY[extract(epoch FROM r.occurred_at), r.event_id, r.amount_base])
               FILTER (WHERE r.kind = 'subscription') AS last_charge
    FROM inserted_rows r
    GROUP BY r.customer_id, r.subscription_id
),
added_money AS (
    SELECT a.customer_id,
           sum(a.events) AS events,
           min(a.first_at) AS first_event_at,
           max(a.last_at) AS last_event_at,
           sum(CASE WHEN a.subscription_id IS NOT NULL THEN a.net ELSE coalesce(a.unlinked_charges_net, 0) END)
               AS recurring_net,
           sum(CASE WHEN a.subscription_id IS NOT NULL THEN 0 ELSE a.net - coalesce(a.unlinked_charges_net, 0) END)
               AS one_off_net
    FROM added a
    GROUP BY a.customer_id
),
added_days AS (
    SELECT r.customer_id,
           (r.occurred_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS purchases,
           min(r.occurred_at) AS first_at,
           sum(r.amount_base) AS spend
    FROM inserted_rows r
    WHERE r.kind = 'one_off'
    GROUP BY 1, 2
),
stored AS (  -- locked above: current, and ours until commit
    SELECT s.customer_id, s.event_count, s.first_event_at, s.last_event_at, s.recurring_net, s.one_off_net,
           s.x, s.first_purchase_at, s.last_purchase_at, s.one_off_spend, s.subscription_id, s.paid_periods,
           s.last_period_at, s.last_period_event_id, s.period_amount,
           (s.first_purchase_at AT TIME ZONE 'UTC')::date AS first_purchase_day,
           (s.last_purchase_at AT TIME ZONE 'UTC')::date  AS last_purchase_day
    FROM ltv.customer_stats s
    WHERE s.customer_id = ANY (v_ids)
),
added_one_off AS (
    SELECT d.customer_id,
           count(*) FILTER (WHERE
               CASE WHEN s.x = 0 THEN true
                    WHEN d.day < s.first_purchase_day OR d.day > s.last_purchase_day THEN true
                    WHEN d.day = s.first_purchase_day OR d.day = s.last_purchase_day THEN false
                    -- strictly between: new unless the table holds more purchases that day than we added
                    ELSE ltv.one_off_purchases_on_day(d.customer_id, d.day) = d.purchases
               END)::integer AS new_days,
           min(d.first_at) AS first_at,
           max(d.day) AS latest_day,
           max(d.first_at) AS latest_day_first_at,  -- days are disjoint: the latest day's first purchase
           sum(d.spend) AS spend
    FROM added_days d
    JOIN stored s USING (customer_id)
    GROUP BY d.customer_id
),
added_charges AS (  -- charges of the customer's latest subscription
    SELECT a.customer_id, a.charges, a.charge_at,
           a.last_charge[2]::bigint AS charge_event_id, a.last_charge[3] AS charge_amount
    FROM added a
    JOIN stored s ON s.customer_id = a.customer_id AND s.subscription_id = a.subscription_id
    WHERE a.charges > 0
),
merged AS (  -- stored facts + added events; charges count only for the latest subscription
    SELECT s.customer_id,
           s.event_count + m.events AS event_count,
           least(s.first_event_at, m.first_event_at) AS first_event_at,
           greatest(s.last_event_at, m.last_event_at) AS last_event_at,
           s.recurring_net + m.recurring_net AS recurring_net,
           s.one_off_net + m.one_off_net AS one_off_net,
           s.x + coalesce(o.new_days, 0) AS x,
           least(s.first_purchase_at, o.first_at) AS first_purchase_at,
           CASE WHEN o.latest_day IS NULL THEN s.last_purchase_at
                WHEN s.x = 0 OR o.latest_day > s.last_purchase_day THEN o.latest_day_first_at
                WHEN o.latest_day = s.last_purchase_day THEN least(s.last_purchase_at, o.latest_day_first_at)
                ELSE s.last_purchase_at END AS last_purchase_at,
           s.one_off_spend + coalesce(o.spend, 0) AS one_off_spend,
           s.paid_periods + coalesce(c.charges, 0) AS paid_periods,
           (c.customer_id IS NOT NULL
            AND (s.last_period_at IS NULL
                 OR (c.charge_at, c.charge_event_id) > (s.last_period_at, s.last_period_event_id))) AS charge_is_latest,
           c.charge_at, c.charge_event_id, c.charge_amount,
           s.last_period_at, s.last_period_event_id, s.period_amount
    FROM stored s
    JOIN added_money m USING (customer_id)
    LEFT JOIN added_one_off o USING (customer_id)
    LEFT JOIN added_charges c ON c.customer_id = s.customer_id
)
UPDATE ltv.customer_stats t
SET (event_count, first_event_at, last_event_at, recurring_net, one_off_net, x,
     first_purchase_at, last_purchase_at, one_off_spend, paid_periods,
     last_period_at, last_period_event_id, period_amount)
  = (m.event_count, m.first_event_at, m.last_event_at, m.recurring_net, m.one_off_net, m.x,
     m.first_purchase_at, m.last_purchase_at, m.one_off_spend, m.paid_periods,
     CASE WHEN m.charge_is_latest THEN m.charge_at ELSE m.last_period_at END,
     CASE WHEN m.charge_is_latest THEN m.charge_event_id ELSE m.last_period_event_id END,
     CASE WHEN m.charge_is_latest THEN m.charge_amount ELSE m.period_amount END)
FROM merged m
WHERE t.customer_id = ANY (v_ids) AND t.customer_id = m.customer_id;

PERFORM ltv.notify_customers_changed(v_ids);
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.live_stats_after_insert() IS
    'Statement trigger on revenue_events: add the inserted events to ltv.customer_stats, then notify';

CREATE OR REPLACE FUNCTION ltv.live_stats_after_change()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, ltv
SET jit = off
AS $$
DECLARE
    v_ids bigint[];
BEGIN
-- each trigger has the transition tables of its own operation only
IF TG_OP = 'INSERT' THEN
    SELECT array_agg(DISTINCT customer_id) INTO v_ids FROM inserted_rows;
ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(DISTINCT customer_id) INTO v_ids FROM deleted_rows;
ELSIF TG_TABLE_NAME = 'subscriptions' THEN
    WITH
    before_rows AS (SELECT customer_id, subscription_id, plan_code, started_at, cancelled_at, ended_at FROM old_rows),
    after_rows  AS (SELECT customer_id, subscription_id, plan_code, started_at, cancelled_at, ended_at FROM new_rows),
    changed_customers AS (
        SELECT customer_id FROM (SELECT * FROM before_rows EXCEPT ALL SELECT * FROM after_rows) gone
        UNION
        SELECT customer_id FROM (SELECT * FROM after_rows EXCEPT ALL SELECT * FROM before_rows) came
    )
    SELECT array_agg(customer_id) INTO v_ids FROM changed_customers;
ELSE
    WITH
    before_rows AS (SELECT customer_id, occurred_at, event_id, kind, amount_base, subscription_id FROM old_rows),
    after_rows  AS (SELECT customer_id, occurred_at, event_id, kind, amount_base, subscription_id FROM new_rows),
    changed_customers AS (
        SELECT customer_id FROM (SELECT * FROM before_rows EXCEPT ALL SELECT * FROM after_rows) gone
        UNION
        SELECT customer_id FROM (SELECT * FROM after_rows EXCEPT ALL SELECT * FROM before_rows) came
    )
    SELECT array_agg(customer_id) INTO v_ids FROM changed_customers;
END IF;
IF v_ids IS NOT NULL THEN
    PERFORM ltv.refresh_customer_stats(v_ids);  -- notifies the customers it changed
END IF;
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.live_stats_after_change() IS
    'Statement trigger: recompute ltv.customer_stats for customers whose revenue events or subscriptions were updated or deleted, or who got a subscription; notifies';

CREATE OR REPLACE FUNCTION ltv.live_stats_after_truncate()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, ltv
SET jit = off
AS $$
BEGIN
PERFORM ltv.refresh_customer_stats(NULL);  -- notifies {"all":true} when anything changed
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.live_stats_after_truncate() IS
    'Statement trigger: rebuild ltv.customer_stats after revenue_events or subscriptions is truncated, then notify everyone';

-- ---- the triggers (CREATE OR REPLACE: rerunning this file is harmless) --------------------------
CREATE OR REPLACE TRIGGER live_stats_insert AFTER INSERT ON ltv.revenue_events
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_insert();
CREATE OR REPLACE TRIGGER live_stats_update AFTER UPDATE ON ltv.revenue_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_change();
CREATE OR REPLACE TRIGGER live_stats_delete AFTER DELETE ON ltv.revenue_events
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_change();
CREATE OR REPLACE TRIGGER live_stats_truncate AFTER TRUNCATE ON ltv.revenue_events
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_truncate();

CREATE OR REPLACE TRIGGER live_stats_insert AFTER INSERT ON ltv.subscriptions
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_change();
CREATE OR REPLACE TRIGGER live_stats_update AFTER UPDATE ON ltv.subscriptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_change();
CREATE OR REPLACE TRIGGER live_stats_delete AFTER DELETE ON ltv.subscriptions
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_change();
CREATE OR REPLACE TRIGGER live_stats_truncate AFTER TRUNCATE ON ltv.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.live_stats_after_truncate();

COMMENT ON TRIGGER live_stats_insert ON ltv.revenue_events IS 'Keeps ltv.customer_stats current: adds inserted events (any INSERT or COPY through the parent)';
COMMENT ON TRIGGER live_stats_update ON ltv.revenue_events IS 'Keeps ltv.customer_stats current: recomputes customers whose events changed';
COMMENT ON TRIGGER live_stats_delete ON ltv.revenue_events IS 'Keeps ltv.customer_stats current: recomputes customers who lost events';
COMMENT ON TRIGGER live_stats_truncate ON ltv.revenue_events IS 'Keeps ltv.customer_stats current: rebuilds it after TRUNCATE';
COMMENT ON TRIGGER live_stats_insert ON ltv.subscriptions IS 'Keeps ltv.customer_stats current: recomputes customers with new subscriptions';
COMMENT ON TRIGGER live_stats_update ON ltv.subscriptions IS 'Keeps ltv.customer_stats current: recomputes customers whose subscriptions changed';
COMMENT ON TRIGGER live_stats_delete ON ltv.subscriptions IS 'Keeps ltv.customer_stats current: recomputes customers who lost subscriptions';
COMMENT ON TRIGGER live_stats_truncate ON ltv.subscriptions IS 'Keeps ltv.customer_stats current: rebuilds it after TRUNCATE';
