-- ltv.customer_facts(cutoff, customer_ids): the time-independent facts about each customer's
-- money and subscription, computed from the raw tables with only what happened before the
-- cutoff — one row per customer with any revenue event or subscription before it, in the
-- shape of ltv.customer_stats. This is the one definition of the per-customer statistics:
--   * ltv.customer_history(cutoff) derives the model inputs (t_x, t_cal, status, MRR, margin)
--     from these facts at any cut-off (refits, backtests);
--   * ltv.customer_stats holds customer_facts(NULL), kept current by statement triggers
--     (ltv.refresh_customer_stats recomputes rows with this function; the INSERT trigger adds
--     new events arithmetically and ltv.verify_customer_stats proves both agree).
--
-- Facts: revenue events count with a sign by kind (subscription and one_off add; refund,
-- chargeback, credit subtract); recurring = tied to a subscription (subscription_id set or kind
-- subscription), one-off = the rest. One-off purchases on the same UTC day are one transaction:
-- x = purchase days, last_purchase_at = first purchase of the latest day, one_off_spend = gross
-- one-off spend. The latest subscription = greatest (started_at, subscription_id); its charges
-- (kind subscription) give paid_periods, and the last of them by (occurred_at, event_id) the
-- period amount.
--
-- p_cutoff NULL = no cutoff: everything recorded (what the live statistics hold).
-- p_customer_ids NULL = every customer; an empty array = nobody.

CREATE OR REPLACE FUNCTION ltv.customer_facts(p_cutoff timestamptz, p_customer_ids bigint[] DEFAULT NULL)
RETURNS SETOF ltv.customer_stats
LANGUAGE plpgsql STABLE  -- not parallel safe: sets enable_nestloop per call
SET search_path = pg_catalog, ltv
SET enable_nestloop = on  -- set per call below; restored on return
AS $$
DECLARE
    -- Customers are chosen by a join with the id list, never by `customer_id = ANY (ids)`: the
    -- planner estimates = ANY element by element, partition by partition, which for a bulk
    -- statement's 100,000 ids costs more than the query. One text, two filters; planned for
    -- every call (EXECUTE).
    v_chosen text := CASE WHEN p_customer_ids IS NULL THEN 'true'
                          ELSE '%1$s.customer_id IN (SELECT DISTINCT id FROM unnest($2) id)' END;
BEGIN
IF cardinality(p_customer_ids) = 0 THEN
    RETURN;
END IF;
-- Up to a few thousand customers: primary-key lookups, partition by partition. More, or
-- everyone: one pass over the events with hash joins. The planner cannot choose by itself — it
-- takes the distinct ids of any list for 200 (no statistics on an array), and at 200 monthly
-- partitions the lookups cost ~0.7 ms per customer: 30,000 customers (a day's refunds, a
-- subscriptions file, the customers active since a refit's cutoff) took 24 s that way against
-- 4 s in one pass (benchmarks/RESULTS.md, mrr_movements section).
PERFORM set_config('enable_nestloop', CASE WHEN cardinality(p_customer_ids) <= 2500 THEN 'on' ELSE 'off' END, true);
RETURN QUERY EXECUTE format($query$
WITH
events_before AS (
    SELECT e.customer_id, e.occurred_at, e.event_id, e.kind, e.subscription_id, e.amount_base,
           CASE WHEN e.kind IN ('subscription', 'one_off') THEN e.amount_base ELSE -e.amount_base END AS signed_base,
           (e.subscription_id IS NOT NULL OR e.kind = 'subscription') AS is_recurring
    FROM ltv.revenue_events e
    WHERE ($1 IS NULL OR e.occurred_at < $1)
      AND %1$s
),
money AS (
    SELECT customer_id,
           count(*) AS event_count,
           min(occurred_at) AS first_event_at,
           max(occurred_at) AS last_event_at,
           coalesce(sum(signed_base) FILTER (WHERE is_recurring), 0)     AS recurring_net,
           coalesce(sum(signed_base) FILTER (WHERE NOT is_recurring), 0) AS one_off_net
    FROM events_before
    GROUP BY customer_id
),
one_off_days AS (
    SELECT customer_id,
           (occurred_at AT TIME ZONE 'UTC')::date AS day,
           min(occurred_at) AS first_at,
           sum(amount_base) AS spend
    FROM events_before
    WHERE kind = 'one_off'
    GROUP BY 1, 2
),
one_off_summary AS (
    SELECT customer_id,
           count(*)::integer AS x,
           min(first_at) AS first_purchase_at,
           max(first_at) AS last_purchase_at,
           sum(spend) AS one_off_spend
    FROM one_off_days
    GROUP BY customer_id
),
latest_subscription AS (
    SELECT DISTINCT ON (s.customer_id)
           s.customer_id, s.subscription_id, s.plan_code, s.started_at, s.cancelled_at, s.ended_at
    FROM ltv.subscriptions s
    WHERE ($1 IS NULL OR s.started_at < $1)
      AND %2$s
    ORDER BY s.customer_id, s.started_at DESC, s.subscription_id DESC
),
latest_charge AS (
    SELECT ls.customer_id,
           count(*)::integer AS paid_periods,
           max(e.occurred_at) AS last_period_at,
           -- the last charge by (occurred_at, event_id) with its amount, without a sort: arrays
           -- compare element by element, and the epoch (numeric) orders like the time
           max(ARRAY[extract(epoch FROM e.occurred_at), e.event_id, e.signed_base]) AS last_charge
    FROM latest_subscription ls
    JOIN events_before e
      ON e.customer_id = ls.customer_id AND e.subscription_id = ls.subscription_id AND e.kind = 'subscription'
    GROUP BY ls.customer_id
),
customers_with_facts AS (
    SELECT customer_id FROM money
    UNION
    SELECT customer_id FROM latest_subscription
)
SELECT c.customer_id,
       coalesce(m.event_count, 0),
       m.first_event_at,
       m.last_event_at,
       coalesce(m.recurring_net, 0),
       coalesce(m.one_off_net, 0),
       coalesce(o.x, 0),
       o.first_purchase_at,
       o.last_purchase_at,
       coalesce(o.one_off_spend, 0),
       ls.subscription_id,
       ls.plan_code,
       ls.started_at,
       ls.cancelled_at,
       ls.ended_at,
       coalesce(lc.paid_periods, 0),
       lc.last_period_at,
       lc.last_charge[2]::bigint,
       lc.last_charge[3]
FROM customers_with_facts c
LEFT JOIN money m USING (customer_id)
LEFT JOIN one_off_summary o USING (customer_id)
LEFT JOIN latest_subscription ls USING (customer_id)
LEFT JOIN latest_charge lc USING (customer_id)
$query$, format(v_chosen, 'e'), format(v_chosen, 's'))
USING p_cutoff, p_customer_ids;
END;
$$;

COMMENT ON FUNCTION ltv.customer_facts(timestamptz, bigint[]) IS
    'Per-customer facts (money, one-off purchase days, latest subscription and its charges) from events and subscriptions before the cutoff (NULL: all); NULL ids = everyone';
