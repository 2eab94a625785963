-- Statement-level triggers that keep ltv.customer_stats current in the same transaction as
-- every change to ltv.revenue_events (partitioned: the triggers sit on the parent, so INSERT,
-- COPY, INSERT … SELECT, UPDATE, DELETE and MERGE through it are all seen) and
-- ltv.subscriptions, and notify listeners of the customers whose figures changed
-- (ltv.notify_customers_changed: NOTIFY ltv_changed, delivered at commit).
--
-- Each statement's rows arrive in transition tables and are grouped by customer before any
-- write. Concurrent writers for the same customer queue on that customer's row and build on each
-- other's committed work; writers for different customers never wait for each other.
--   * live_stats_after_insert — INSERT of revenue events, the common case, bulk loads
--     included: adds the new events to the stored facts arithmetically, in one UPDATE whose
--     new values are computed from the row it updates (counts, sums, min/max, latest charge by
--     (time, id)). Under READ COMMITTED a row that a concurrent writer changed is locked and
--     re-read at its latest committed version and the new values are computed again from it
--     (EvalPlanQual), so no separate lock statement is needed: the added rows, in customer_id
--     order, drive one primary-key probe each (a nested loop, the only join the function's
--     settings allow), and the rows are locked in id order — two statements never each hold a
--     row the other waits for.
--     The purchase-day count x stays exact: a new one-off day before the first or after the
--     last stored purchase day is new, one on either of those days is not, and a day strictly
--     between them is new when all its purchases are added ones — for such customers the
--     purchase days over the added ones' span are read from the table
--     (ltv.one_off_purchase_days: VOLATILE, so it reads with a snapshot taken after the row was
--     locked, which includes whatever the writer it waited for committed).
--     Charges count only for the customer's latest subscription, which the stored row names:
--     customers whose charges in the statement belong to more than one subscription get them in
--     a second, small UPDATE of their (then locked) rows. When some customer has no row yet
--     (a first event), the UPDATE changes nothing; every customer's row is then locked in id
--     order, the missing ones created (ltv.lock_customer_stats, as the other writers lock), and
--     the merge runs again. A row that a concurrent recomputation deleted after that check is
--     created then and merged again.
--     This restates, for added events, the rules of ltv.customer_facts;
--     ltv.verify_customer_stats and tests/test_live_stats.py hold the two to the same result.
--   * live_stats_after_change — UPDATE and DELETE of revenue events, and every change to
--     subscriptions: recomputes the affected customers from the raw tables
--     (ltv.refresh_customer_stats, which locks their rows in id order first). An UPDATE counts
--     only customers whose rows changed in a column the facts read (re-tagging batch_id costs
--     nothing); a changed customer_id affects the old and the new customer.
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
-- bulk statements: per-customer groups hash in memory (a load of more than some 50,000
-- customers spills part of them to disk). The one join is a nested loop of primary-key probes
-- driven by the added rows in customer_id order: linear at any size whatever the planner
-- guesses about the groups, and it locks the rows in id order.
SET work_mem = '256MB'
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    v_todo     bigint[];           -- the customers the next merge is for (NULL: all the statement's)
    v_added    bigint;             -- how many customers it found in the transition table
    v_updated  bigint[];           -- those whose row it updated
    v_several  bigint[];           -- those of them with charges of more than one subscription
    v_changed  bigint[] := '{}';   -- every customer updated, for the notification
BEGIN
LOOP
-- Merge: one pass over the transition table (with the one-off purchases grouped by day appended
-- to it), one row per customer, added to the stored row. Planned afresh for every statement
-- (plan_cache_mode above): the plan that suits one payment is not the plan that suits a COPY
-- of millions.
WITH
purchase_days AS (  -- one-off purchases per customer and UTC day
    SELECT r.customer_id,
           (r.occurred_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS purchases,
           min(r.occurred_at) AS first_at,
           sum(r.amount_base) AS spend
    FROM inserted_rows r
    WHERE r.kind = 'one_off' AND (v_todo IS NULL OR r.customer_id = ANY (v_todo))
    GROUP BY 1, 2
),
events_and_days AS (  -- the events (day NULL), then one row per purchase day
    SELECT r.customer_id, r.occurred_at, r.kind, r.amount_base, r.subscription_id, r.event_id,
           NULL::date AS day,
           -- net in units of 0.0001 (amount_base is numeric(20,4)): money in (subscription,
           -- one_off) counts plus, money out (refund, chargeback, credit) minus
           CASE WHEN r.kind IN ('subscription', 'one_off') THEN (r.amount_base * 10000)::bigint
                ELSE -(r.amount_base * 10000)::bigint END AS net_units,
           -- recurring = tied to a subscription, or a charge (kind subscription) without one
           r.subscription_id IS NOT NULL OR r.kind = 'subscription' AS recurring
    FROM inserted_rows r
    WHERE v_todo IS NULL OR r.customer_id = ANY (v_todo)
    UNION ALL
    SELECT d.customer_id, d.first_at, 'one_off', d.spend, NULL, NULL, d.day, NULL, NULL
    FROM purchase_days d
),
added AS (
    SELECT e.customer_id,
           count(*) FILTER (WHERE e.day IS NULL) AS events,
           min(e.occurred_at) AS first_event_at,
           max(e.occurred_at) AS last_event_at,
           sum(e.net_units) FILTER (WHERE e.recurring) AS recurring_units,
           sum(e.net_units) FILTER (WHERE NOT e.recurring) AS one_off_units,
           -- charges: the one subscription charged (NULL: none or several — their charges are
           -- added below), how many, and the last by (occurred_at, event_id) with its amount
           -- (arrays compare element by element; the epoch orders like the time)
           min(e.subscription_id) FILTER (WHERE e.kind = 'subscription')
             <> max(e.subscription_id) FILTER (WHERE e.kind = 'subscription') AS several_subscriptions,
           CASE WHEN min(e.subscription_id) FILTER (WHERE e.kind = 'subscription')
                   = max(e.subscription_id) FILTER (WHERE e.kind = 'subscription')
                THEN min(e.subscription_id) FILTER (WHERE e.kind = 'subscription') END AS charged_subscription,
           count(*) FILTER (WHERE e.kind = 'subscription' AND e.subscription_id IS NOT NULL)::integer AS charges,
           max(e.occurred_at) FILTER (WHERE e.kind = 'subscription' AND e.subscription_id IS NOT NULL) AS charge_at,
           max(ARRAY[extract(epoch FROM e.occurred_at), e.event_id, e.amount_base])
               FILTER (WHERE e.kind = 'subscription' AND e.subscription_id IS NOT NULL) AS last_charge,
           -- purchase days: how many, the first and last, the first purchase of the first and of
           -- the last day (days are disjoint), the spend
           count(e.day)::integer AS days,
           min(e.day) AS first_day,
           max(e.day) AS last_day,
           min(e.occurred_at) FILTER (WHERE e.day IS NOT NULL) AS first_purchase_at,
           max(e.occurred_at) FILTER (WHERE e.day IS NOT NULL) AS last_day_first_at,
           sum(e.amount_base) FILTER (WHERE e.day IS NOT NULL) AS spend
    FROM events_and_days e
    GROUP BY e.customer_id
),
ordered AS (
    SELECT * FROM added ORDER BY customer_id
),
without_row AS (  -- customers with no row yet (a first event); if any, the UPDATE does nothing
    SELECT count(*) AS customers
    FROM ordered a
    WHERE NOT EXISTS (SELECT 1 FROM ltv.customer_stats s WHERE s.customer_id = a.customer_id)
),
merged AS (
    UPDATE ltv.customer_stats t
    SET event_count = t.event_count + a.events,
        first_event_at = least(t.first_event_at, a.first_event_at),
        last_event_at = greatest(t.last_event_at, a.last_event_at),
        recurring_net = t.recurring_net + coalesce(a.recurring_units, 0) * 0.0001,
        one_off_net = t.one_off_net + coalesce(a.one_off_units, 0) * 0.0001,
        x = t.x + CASE
            WHEN a.days = 0 THEN 0
            WHEN t.x = 0 OR a.first_day > (t.last_purchase_at AT TIME ZONE 'UTC')::date
                         OR a.last_day < (t.first_purchase_at AT TIME ZONE 'UTC')::date THEN a.days
            -- some added day on or between the stored first and last: the purchase days over the
            -- added ones' span, from the table (which holds the added purchases too). One before
            -- the first or after the last is an added one, and new; one strictly between is new
            -- when all its purchases are added ones; the first and last days are not new.
            ELSE (SELECT count(*)::integer
                  FROM ltv.one_off_purchase_days(t.customer_id, a.first_day, a.last_day) d
                  WHERE d.day < (t.first_purchase_at AT TIME ZONE 'UTC')::date
                     OR d.day > (t.last_purchase_at AT TIME ZONE 'UTC')::date
                     OR (d.day > (t.first_purchase_at AT TIME ZONE 'UTC')::date
                         AND d.day < (t.last_purchase_at AT TIME ZONE 'UTC')::date
                         AND (t.customer_id, d.day, d.purchases)
                             IN (SELECT p.customer_id, p.day, p.purchases FROM purchase_days p)))
            END,
        first_purchase_at = least(t.first_purchase_at, a.first_purchase_at),
        last_purchase_at = CASE
            WHEN a.days = 0 THEN t.last_purchase_at
            WHEN t.x = 0 OR a.last_day > (t.last_purchase_at AT TIME ZONE 'UTC')::date THEN a.last_day_first_at
            WHEN a.last_day = (t.last_purchase_at AT TIME ZONE 'UTC')::date
                THEN least(t.last_purchase_at, a.last_day_first_at)
            ELSE t.last_purchase_at END,
        one_off_spend = t.one_off_spend + coalesce(a.spend, 0),
        -- charges count for the customer's latest subscription only
        paid_periods = t.paid_periods + CASE WHEN a.charged_subscription = t.subscription_id THEN a.charges ELSE 0 END,
        (last_period_at, last_period_event_id, period_amount) =
            (SELECT CASE WHEN charge_is_latest THEN a.charge_at ELSE t.last_period_at END,
                    CASE WHEN charge_is_latest THEN a.last_charge[2]::bigint ELSE t.last_period_event_id END,
                    CASE WHEN charge_is_latest THEN a.last_charge[3] ELSE t.period_amount END
             FROM (SELECT a.charged_subscription = t.subscription_id
                          AND (t.last_period_at IS NULL
                               OR (a.charge_at, a.last_charge[2]::bigint) > (t.last_period_at, t.last_period_event_id))
                          AS charge_is_latest) latest_charge)
    FROM ordered a
    WHERE t.customer_id = a.customer_id
      AND (SELECT customers FROM without_row) = 0  -- else nothing: see after the statement
    RETURNING t.customer_id, a.several_subscriptions
)
SELECT (SELECT count(*) FROM added), array_agg(customer_id),
       array_agg(customer_id) FILTER (WHERE several_subscriptions)
INTO v_added, v_updated, v_several
FROM merged;
EXIT WHEN v_added = 0;  -- an INSERT of no rows
v_changed := v_changed || v_updated;

IF v_several IS NOT NULL THEN
    -- their charges, left out above: those of the subscription the (locked) row names
    WITH
    charges AS (
        SELECT r.customer_id, r.subscription_id,
               count(*)::integer AS charges,
               max(r.occurred_at) AS charge_at,
               max(ARRAY[extract(epoch FROM r.occurred_at), r.event_id, r.amount_base]) AS last_charge
        FROM inserted_rows r
        WHERE r.kind = 'subscription' AND r.subscription_id IS NOT NULL AND r.customer_id = ANY (v_several)
        GROUP BY r.customer_id, r.subscription_id
    )
    UPDATE ltv.customer_stats t
    SET paid_periods = t.paid_periods + c.charges,
        (last_period_at, last_period_event_id, period_amount) =
            (SELECT CASE WHEN charge_is_latest THEN c.charge_at ELSE t.last_period_at END,
                    CASE WHEN charge_is_latest THEN c.last_charge[2]::bigint ELSE t.last_period_event_id END,
                    CASE WHEN charge_is_latest THEN c.last_charge[3] ELSE t.period_amount END
             FROM (SELECT t.last_period_at IS NULL
                          OR (c.charge_at, c.last_charge[2]::bigint) > (t.last_period_at, t.last_period_event_id)
                          AS charge_is_latest) latest_charge)
    FROM charges c
    WHERE t.customer_id = c.customer_id AND t.subscription_id = c.subscription_id;
END IF;

-- Customers the merge did not reach: either some customer had no row yet and nothing was
-- merged — then every customer's row is locked in id order now, the missing ones created
-- (ltv.lock_customer_stats, as every other writer locks), and the merge runs again — or a
-- concurrent recomputation deleted a customer's row after the check (their every event and
-- subscription had gone): that row is created now, after the others were locked, and the merge
-- runs again for it alone. That is the one case that locks out of id order; it needs a customer
-- emptied and refilled at once, and PostgreSQL's deadlock detector settles the rare cycle it
-- could close by failing one of the statements, which changes nothing.
EXIT WHEN coalesce(cardinality(v_updated), 0) = v_added;
SELECT array_agg(customer_id ORDER BY customer_id) INTO v_todo
FROM (SELECT customer_id FROM inserted_rows WHERE v_todo IS NULL OR customer_id = ANY (v_todo)
      EXCEPT
      SELECT unnest(v_updated)) missing;
PERFORM ltv.lock_customer_stats(v_todo);
END LOOP;

IF cardinality(v_changed) > 0 THEN
    PERFORM ltv.notify_customers_changed(v_changed);
END IF;
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
