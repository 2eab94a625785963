-- ltv.customer_history(cutoff): one row per customer who signed up before the cutoff, holding
-- everything the models and the LTV figures read, computed from the raw tables with only the
-- events before the cutoff. Refits, backtests and the LTV snapshot all read this one
-- definition; the live statistics table keeps the same figures current for cutoff = now().
--
-- One-off purchases (BG/NBD): time 0 is the signup; x = number of UTC days with a one-off
-- purchase (same-day purchases are one transaction), t_x = months from signup to the last of
-- them, t_cal = months from signup to the cutoff, mean_one_off = mean spend per purchase day.
-- Money: recurring = everything tied to a subscription (charges and their refunds), one-off =
-- the rest; both net of refunds, chargebacks and credits, in base-currency major units.
-- Subscription: the customer's latest subscription started before the cutoff; status is
-- 'ended' (ended_at ≤ cutoff), 'cancelled' (cancelled, still in its paid period), 'active' or
-- 'none'; paid_periods counts its charges; current_mrr is its last charge normalised to a month
-- (annual ÷ 12), zero unless active.

CREATE OR REPLACE FUNCTION ltv.customer_history(p_cutoff timestamptz, p_customer_id bigint DEFAULT NULL)
RETURNS TABLE (
    customer_id          bigint,
    vendor_category      text,
    country              text,
    acquisition_channel  text,
    signed_up_at         timestamptz,
    x                    integer,
    t_x                  float8,
    t_cal                float8,
    mean_one_off         float8,
    recurring_net        numeric,
    one_off_net          numeric,
    net_revenue          numeric,
    realised_margin      numeric,
    first_event_at       timestamptz,
    last_event_at        timestamptz,
    subscription_id      bigint,
    billing_interval     text,
    subscription_status  text,
    subscription_started timestamptz,
    paid_periods         integer,
    period_amount        numeric,
    current_mrr          numeric
)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
#variable_conflict use_column
BEGIN
-- PL/pgSQL so each call gets a custom plan: with p_customer_id set, every scan below is an
-- index lookup on customer_id; with NULL the filters fold away and it is one pass over all.
RETURN QUERY
WITH
settings AS (
    SELECT margin_subscription, margin_one_off FROM ltv.settings
),
events_before AS (
    SELECT e.customer_id, e.occurred_at, e.kind, e.subscription_id,
           CASE WHEN e.kind IN ('subscription', 'one_off') THEN e.amount_base ELSE -e.amount_base END AS signed_base,
           (e.subscription_id IS NOT NULL OR e.kind = 'subscription') AS is_recurring
    FROM ltv.revenue_events e
    WHERE e.occurred_at < p_cutoff
      AND (p_customer_id IS NULL OR e.customer_id = p_customer_id)
),
money AS (
    SELECT customer_id,
           coalesce(sum(signed_base) FILTER (WHERE is_recurring), 0)     AS recurring_net,
           coalesce(sum(signed_base) FILTER (WHERE NOT is_recurring), 0) AS one_off_net,
           min(occurred_at) AS first_event_at,
           max(occurred_at) AS last_event_at
    FROM events_before
    GROUP BY customer_id
),
one_off_days AS (
    SELECT customer_id,
           (occurred_at AT TIME ZONE 'UTC')::date AS day,
           min(occurred_at) AS first_at,
           sum(signed_base) AS spend
    FROM events_before
    WHERE kind = 'one_off'
    GROUP BY 1, 2
),
one_off_summary AS (
    SELECT customer_id, count(*)::integer AS x, max(first_at) AS last_purchase_at,
           avg(spend)::float8 AS mean_one_off
    FROM one_off_days
    GROUP BY customer_id
),
latest_subscription AS (
    SELECT DISTINCT ON (s.customer_id)
           s.customer_id, s.subscription_id, p.billing_interval, s.started_at,
           CASE WHEN s.ended_at <= p_cutoff THEN 'ended'
                WHEN s.cancelled_at <= p_cutoff THEN 'cancelled'
                ELSE 'active' END AS status
    FROM ltv.subscriptions s
    JOIN ltv.plans p USING (plan_code)
    WHERE s.started_at < p_cutoff
      AND (p_customer_id IS NULL OR s.customer_id = p_customer_id)
    ORDER BY s.customer_id, s.started_at DESC, s.subscription_id DESC
),
subscription_charges AS (
    SELECT DISTINCT ON (ls.customer_id)
           ls.customer_id,
           count(*) OVER (PARTITION BY ls.customer_id)::integer AS paid_periods,
           e.signed_base AS period_amount
    FROM latest_subscription ls
    JOIN events_before e
      ON e.customer_id = ls.customer_id AND e.subscription_id = ls.subscription_id AND e.kind = 'subscription'
    ORDER BY ls.customer_id, e.occurred_at DESC
)
SELECT c.customer_id, c.vendor_category, c.country, c.acquisition_channel, c.signed_up_at,
       coalesce(o.x, 0),
       coalesce(ltv.months_between(c.signed_up_at, o.last_purchase_at), 0),
       ltv.months_between(c.signed_up_at, p_cutoff),
       o.mean_one_off,
       coalesce(m.recurring_net, 0),
       coalesce(m.one_off_net, 0),
       coalesce(m.recurring_net, 0) + coalesce(m.one_off_net, 0),
       round(coalesce(m.recurring_net, 0) * st.margin_subscription + coalesce(m.one_off_net, 0) * st.margin_one_off, 4),
       m.first_event_at,
       m.last_event_at,
       ls.subscription_id,
       ls.billing_interval,
       coalesce(ls.status, 'none'),
       ls.started_at,
       coalesce(sc.paid_periods, 0),
       sc.period_amount,
       CASE WHEN ls.status = 'active'
            THEN round(coalesce(sc.period_amount, 0) / CASE ls.billing_interval WHEN 'year' THEN 12 ELSE 1 END, 4)
            ELSE 0 END
FROM ltv.customers c
CROSS JOIN settings st
LEFT JOIN money m USING (customer_id)
LEFT JOIN one_off_summary o USING (customer_id)
LEFT JOIN latest_subscription ls USING (customer_id)
LEFT JOIN subscription_charges sc USING (customer_id)
WHERE c.signed_up_at < p_cutoff
  AND (p_customer_id IS NULL OR c.customer_id = p_customer_id);
END;
$$;

COMMENT ON FUNCTION ltv.customer_history(timestamptz, bigint) IS
    'Per-customer model inputs and money to date as of a cutoff (events before it only), from raw tables; one customer or all';
