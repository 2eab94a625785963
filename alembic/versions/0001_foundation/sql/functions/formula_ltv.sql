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
settings AS (
    SELECT margin_subscription, churn_grace_days FROM ltv.settings
),
trailing_months AS (
    SELECT (m AT TIME ZONE 'UTC') AS month_start,
           ((m + interval '1 month') AT TIME ZONE 'UTC') AS month_end
    FROM generate_series(date_trunc('month', p_as_of AT TIME ZONE 'UTC') - interval '6 months',
                         date_trunc('month', p_as_of AT TIME ZONE 'UTC') - interval '1 month',
                         interval '1 month') AS m
),
customer_month_status AS (
    SELECT c.acquisition_channel, tm.month_start, c.customer_id,
           bool_or(s.started_at <= tm.month_start AND (s.ended_at IS NULL OR s.ended_at > tm.month_start)) AS active_at_start,
           bool_or(s.started_at <= tm.month_end + make_interval(days => st.churn_grace_days)
                   AND (s.ended_at IS NULL OR s.ended_at > tm.month_end + make_interval(days => st.churn_grace_days))) AS active_after
    FROM trailing_months tm
    CROSS JOIN settings st
    JOIN ltv.subscriptions s ON s.started_at <= tm.month_end + make_interval(days => st.churn_grace_days)
                            AND (s.ended_at IS NULL OR s.ended_at > tm.month_start)
    JOIN ltv.customers c USING (customer_id)
    GROUP BY 1, 2, 3
),
monthly_churn AS (
    SELECT acquisition_channel, month_start,
           count(*) FILTER (WHERE active_at_start) AS at_start,
           count(*) FILTER (WHERE active_at_start AND NOT active_after) AS churned
    FROM customer_month_status
    GROUP BY GROUPING SETS ((acquisition_channel, month_start), (month_start))
),
churn AS (
    SELECT coalesce(acquisition_channel, 'all') AS channel,
           avg(churned::float8 / nullif(at_start, 0)) AS churn_rate
    FROM monthly_churn
    GROUP BY 1
),
mrr AS (
    SELECT coalesce(h.acquisition_channel, 'all') AS channel,
           count(*) FILTER (WHERE h.subscription_status = 'active') AS active_customers,
           coalesce(sum(h.current_mrr), 0) AS mrr
    FROM ltv.customer_history(p_as_of) h
    GROUP BY ROLLUP (h.acquisition_channel)
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

COMMENT ON FUNCTION ltv.formula_ltv(timestamptz) IS
    'Formula LTV per acquisition channel: ARPA × margin ÷ trailing six-month customer churn (current month excluded)';
