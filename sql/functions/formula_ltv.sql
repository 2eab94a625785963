-- ltv.formula_ltv(as_of): the SaaS-dashboard LTV (what ChartMogul / Baremetrics users expect)
-- per acquisition channel and for all channels:
--   ARPA         current MRR of active subscribers ÷ active subscribers (recurring only,
--                annual plans ÷ 12; MRR as in ltv.customer_history)
--   churn_rate   mean of the monthly customer churn rates of the six complete calendar months
--                before as_of's month (the current month is excluded): customers active at
--                the month's start and not active at its end + settings.churn_grace_days
--                (a quick re-subscription is not churn) ÷ customers active at its start
--   formula_ltv  ARPA × subscription margin ÷ churn_rate; NULL when churn_rate is 0
-- Months are UTC calendar months.
--
-- Two functions, one definition: ltv.formula_ltv_from(as_of, channels, active customers, MRR)
-- applies the formula to MRR figures the caller already has — ltv.customer_ltv_snapshot's
-- refresh sums them from its scored rows instead of reading every customer's history a second
-- time — and ltv.formula_ltv(as_of) is that function fed from ltv.customer_history.

CREATE OR REPLACE FUNCTION ltv.formula_ltv_from(
    p_as_of            timestamptz,
    p_channels         text[],     -- acquisition channels, and 'all' for every channel together
    p_active_customers bigint[],   -- active subscribers of each channel as of p_as_of
    p_mrr              numeric[])  -- their current MRR (the ltv.customer_history current_mrr rule)
RETURNS TABLE (
    acquisition_channel text,
    active_customers    bigint,
    mrr                 numeric,
    arpa                numeric,
    churn_rate          float8,
    formula_ltv         numeric
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
AS $$
WITH
settings AS (
    SELECT margin_subscription, churn_grace_days FROM ltv.settings
),
trailing_months AS MATERIALIZED (  -- six rows (the planner knows: integer generate_series), computed once
    SELECT back.months AS bit,
           (m AT TIME ZONE 'UTC') AS month_start,
           -- the month's end + the grace days: when a customer active at its start must still be
           -- active not to count as churned (computed here, not per subscription and month)
           ((m + interval '1 month') AT TIME ZONE 'UTC') + make_interval(days => st.churn_grace_days) AS churn_checked_at
    FROM generate_series(1, 6) AS back(months)
    CROSS JOIN settings st
    CROSS JOIN LATERAL (SELECT date_trunc('month', p_as_of AT TIME ZONE 'UTC') - make_interval(months => back.months)) AS start(m)
),
window_subscriptions AS ( -- those that can meet a month below (its join condition implies this)
    SELECT s.customer_id, s.started_at, s.ended_at
    FROM ltv.subscriptions s
    CROSS JOIN settings st
    WHERE s.started_at <= (date_trunc('month', p_as_of AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
                          + make_interval(days => st.churn_grace_days)
      AND (s.ended_at IS NULL
           OR s.ended_at > ((date_trunc('month', p_as_of AT TIME ZONE 'UTC') - interval '6 months') AT TIME ZONE 'UTC'))
),
customer_months AS (      -- per customer, one bit per trailing month: active at its start / after its end + grace
    SELECT s.customer_id,
           bit_or(CASE WHEN s.started_at <= tm.month_start AND (s.ended_at IS NULL OR s.ended_at > tm.month_start)
                       THEN 1 << tm.bit ELSE 0 END) AS active_at_start,
           bit_or(CASE WHEN s.started_at <= tm.churn_checked_at
                            AND (s.ended_at IS NULL OR s.ended_at > tm.churn_checked_at)
                       THEN 1 << tm.bit ELSE 0 END) AS active_after
    FROM trailing_months tm
    JOIN window_subscriptions s ON s.started_at <= tm.churn_checked_at
                               AND (s.ended_at IS NULL OR s.ended_at > tm.month_start)
    GROUP BY s.customer_id
),
channel_patterns AS (     -- customers per channel and pattern of bits: a few hundred rows
    SELECT c.acquisition_channel, cm.active_at_start, cm.active_after, count(*) AS customers
    FROM customer_months cm
    JOIN ltv.customers c USING (customer_id)
    GROUP BY 1, 2, 3
),
monthly_churn AS (
    SELECT p.acquisition_channel, tm.month_start,
           coalesce(sum(p.customers) FILTER (WHERE p.active_at_start & (1 << tm.bit) <> 0), 0) AS at_start,
           coalesce(sum(p.customers) FILTER (WHERE p.active_at_start & ~p.active_after & (1 << tm.bit) <> 0), 0) AS churned
    FROM channel_patterns p
    CROSS JOIN trailing_months tm
    GROUP BY GROUPING SETS ((p.acquisition_channel, tm.month_start), (tm.month_start))
),
churn AS (
    SELECT coalesce(acquisition_channel, 'all') AS channel,
           avg(churned::float8 / nullif(at_start, 0)) AS churn_rate
    FROM monthly_churn
    GROUP BY 1
),
mrr AS (
    SELECT * FROM unnest(p_channels, p_active_customers, p_mrr) AS m(channel, active_customers, mrr)
)
SELECT m.channel, m.active_customers, round(m.mrr, 2),
       round(m.mrr / nullif(m.active_customers, 0), 4) AS arpa,
       ch.churn_rate,
       round(m.mrr / nullif(m.active_customers, 0) * st.margin_subscription / nullif(ch.churn_rate, 0)::numeric, 2)
FROM mrr m
CROSS JOIN settings st
LEFT JOIN churn ch ON ch.channel = m.channel
ORDER BY m.channel = 'all', m.channel
$$;

COMMENT ON FUNCTION ltv.formula_ltv_from(timestamptz, text[], bigint[], numeric[]) IS
    'Formula LTV (ltv.formula_ltv''s definition) from given per-channel active subscribers and MRR: ARPA × margin ÷ trailing six-month churn as of p_as_of';

CREATE OR REPLACE FUNCTION ltv.formula_ltv(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (
    acquisition_channel text,
    active_customers    bigint,
    mrr                 numeric,
    arpa                numeric,
    churn_rate          float8,
    formula_ltv         numeric
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
AS $$
WITH
channel_mrr AS (
    SELECT coalesce(h.acquisition_channel, 'all') AS channel,
           count(*) FILTER (WHERE h.subscription_status = 'active') AS active_customers,
           coalesce(sum(h.current_mrr), 0) AS mrr
    FROM ltv.customer_history(p_as_of) h
    GROUP BY ROLLUP (h.acquisition_channel)
),
channel_arrays AS (
    SELECT array_agg(channel) AS channels, array_agg(active_customers) AS active, array_agg(mrr) AS mrr
    FROM channel_mrr
)
SELECT f.* FROM channel_arrays a CROSS JOIN LATERAL ltv.formula_ltv_from(p_as_of, a.channels, a.active, a.mrr) f
$$;

COMMENT ON FUNCTION ltv.formula_ltv(timestamptz) IS
    'Formula LTV per acquisition channel: ARPA × margin ÷ trailing six-month customer churn (current month excluded)';
