-- ltv.segment_ltv: LTV by segment — vendor category × country × plan (tier, billing interval)
-- × acquisition channel × signup cohort, with rollups — so "LTV of photographers by country and
-- channel, and their payback" is one indexed lookup:
--
--   SELECT country, acquisition_channel, customers, mean_ltv, median_ltv, p90_ltv,
--          ltv_to_cac, cac_payback_months
--   FROM ltv.segment_ltv
--   WHERE vendor_category = 'photographer'
--     AND grouping_level = 'vendor_category+country+acquisition_channel';
--
-- Every figure aggregates ltv.customer_ltv_snapshot (total_ltv, current_mrr) and each
-- customer's CAC — the CAC of its channel in its signup month from ltv.unit_economics — so both
-- views are refreshed before this one. Per segment:
--   mean_cac            mean CAC of its customers; a channel-month with no spend recorded
--                       costs 0, one whose spend has no FX rate is left out of the mean
--   ltv_to_cac          mean_ltv ÷ mean_cac
--   cac_payback_months  mean_cac ÷ (ARPA × subscription margin), ARPA = segment MRR ÷ active
--                       subscribers — ltv.channel_economics' payback definition on a segment
-- Dimensions a row does not break down by hold 'all' (never NULL, so a plain unique index
-- covers every row and REFRESH … CONCURRENTLY works); grouping_level names the dimensions it
-- does break down by, '+'-joined in the order vendor_category, country, plan,
-- acquisition_channel, signup_cohort ('total' for the grand total). The grouping sets are the
-- full breakdown and the rollups an executive asks for; anything else is a GROUP BY over
-- ltv.customer_ltv_snapshot.
--
-- DROP + CREATE, WITH NO DATA, and registration: see sql/views/customer_ltv_snapshot.sql.

DROP MATERIALIZED VIEW IF EXISTS ltv.segment_ltv;

CREATE MATERIALIZED VIEW ltv.segment_ltv AS
WITH
settings AS (
    SELECT margin_subscription FROM ltv.settings
),
channel_month_cac AS (
    SELECT u.acquisition_channel, u.signup_month,
           CASE WHEN u.spend_unconverted THEN NULL ELSE coalesce(u.cac, 0) END AS cac
    FROM ltv.unit_economics u
    WHERE u.acquisition_channel <> 'all' AND u.period <> 'all'
),
customer_values AS (
    SELECT s.vendor_category, s.country, s.plan_tier, s.billing_interval, s.acquisition_channel,
           s.signup_month, s.total_ltv, s.current_mrr,
           s.subscription_status = 'active' AS is_active,
           c.cac
    FROM ltv.customer_ltv_snapshot s
    LEFT JOIN channel_month_cac c USING (acquisition_channel, signup_month)
),
segments AS (
    SELECT concat_ws('+',
               CASE WHEN GROUPING(v.vendor_category) = 0 THEN 'vendor_category' END,
               CASE WHEN GROUPING(v.country) = 0 THEN 'country' END,
               CASE WHEN GROUPING(v.plan_tier) = 0 THEN 'plan' END,
               CASE WHEN GROUPING(v.acquisition_channel) = 0 THEN 'acquisition_channel' END,
               CASE WHEN GROUPING(v.signup_month) = 0 THEN 'signup_cohort' END) AS dimensions,
           CASE WHEN GROUPING(v.vendor_category) = 0 THEN v.vendor_category ELSE 'all' END AS vendor_category,
           CASE WHEN GROUPING(v.country) = 0 THEN v.country ELSE 'all' END AS country,
           CASE WHEN GROUPING(v.plan_tier) = 0 THEN v.plan_tier ELSE 'all' END AS plan_tier,
           CASE WHEN GROUPING(v.billing_interval) = 0 THEN v.billing_interval ELSE 'all' END AS billing_interval,
           CASE WHEN GROUPING(v.acquisition_channel) = 0 THEN v.acquisition_channel ELSE 'all' END AS acquisition_channel,
           v.signup_month,
           count(*)                                         AS customers,
           count(v.total_ltv)                               AS scored_customers,
           count(*) FILTER (WHERE v.is_active)              AS active_subscribers,
           sum(v.total_ltv)                                 AS total_ltv,
           avg(v.total_ltv)                                 AS mean_ltv,
           percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY v.total_ltv::float8) AS ltv_percentiles,
           sum(v.current_mrr)                               AS mrr,
           avg(v.cac)                                       AS mean_cac
    FROM customer_values v
    GROUP BY GROUPING SETS (
        (v.vendor_category, v.country, v.plan_tier, v.billing_interval, v.acquisition_channel, v.signup_month),
        (v.vendor_category, v.country, v.plan_tier, v.billing_interval, v.acquisition_channel),
        (v.vendor_category, v.country, v.acquisition_channel),
        (v.vendor_category, v.country),
        (v.vendor_category, v.acquisition_channel),
        (v.vendor_category, v.plan_tier, v.billing_interval),
        (v.vendor_category, v.signup_month),
        (v.vendor_category),
        (v.country, v.acquisition_channel),
        (v.country),
        (v.plan_tier, v.billing_interval),
        (v.acquisition_channel, v.signup_month),
        (v.acquisition_channel),
        (v.signup_month),
        ())
)
SELECT CASE WHEN sg.dimensions = '' THEN 'total' ELSE sg.dimensions END            AS grouping_level,
       sg.vendor_category,
       sg.country,
       sg.plan_tier,
       sg.billing_interval,
       sg.acquisition_channel,
       coalesce(to_char(sg.signup_month, 'YYYY-MM'), 'all')                        AS signup_cohort,
       sg.signup_month,
       sg.customers,
       sg.scored_customers,
       sg.active_subscribers,
       round(sg.total_ltv, 2)                                                      AS total_ltv,
       round(sg.mean_ltv, 2)                                                       AS mean_ltv,
       round(sg.ltv_percentiles[1]::numeric, 2)                                    AS median_ltv,
       round(sg.ltv_percentiles[2]::numeric, 2)                                    AS p90_ltv,
       round(sg.mrr, 2)                                                            AS mrr,
       round(sg.mrr / nullif(sg.active_subscribers, 0), 4)                         AS arpa,
       round(sg.mean_cac, 2)                                                       AS mean_cac,
       round(sg.mean_ltv / nullif(sg.mean_cac, 0), 2)                              AS ltv_to_cac,
       round(sg.mean_cac / nullif(sg.mrr / nullif(sg.active_subscribers, 0) * st.margin_subscription, 0), 1)
                                                                                   AS cac_payback_months,
       now()                                                                       AS as_of
FROM segments sg
CROSS JOIN settings st
WITH NO DATA;

CREATE UNIQUE INDEX segment_ltv_key_idx ON ltv.segment_ltv
    (vendor_category, grouping_level, country, acquisition_channel, plan_tier, billing_interval, signup_cohort);
CREATE INDEX segment_ltv_level_idx ON ltv.segment_ltv (grouping_level, country, acquisition_channel);

COMMENT ON MATERIALIZED VIEW ltv.segment_ltv IS
    'LTV by segment: vendor category × country × plan (tier, interval) × acquisition channel × signup cohort, with rollups. Pick the breakdown with grouping_level; dimensions not broken down hold ''all''. Example: WHERE vendor_category = ''photographer'' AND grouping_level = ''vendor_category+country+acquisition_channel''. LTV = combined model LTV (gross margin, base currency) from ltv.customer_ltv_snapshot; CAC from ltv.unit_economics.';
COMMENT ON COLUMN ltv.segment_ltv.grouping_level IS 'Which dimensions this row breaks down by, ''+''-joined: vendor_category+country+plan+acquisition_channel+signup_cohort (the full breakdown), vendor_category+country+plan+acquisition_channel, vendor_category+country+acquisition_channel, vendor_category+country, vendor_category+acquisition_channel, vendor_category+plan, vendor_category+signup_cohort, vendor_category, country+acquisition_channel, country, plan, acquisition_channel+signup_cohort, acquisition_channel, signup_cohort, or total';
COMMENT ON COLUMN ltv.segment_ltv.vendor_category IS 'Kind of supplier, or ''all'' when the row does not break down by it';
COMMENT ON COLUMN ltv.segment_ltv.country IS 'Country code, or ''all''';
COMMENT ON COLUMN ltv.segment_ltv.plan_tier IS 'Tier of the customers'' latest plan (''none'' = never subscribed), or ''all'' (plan = tier and billing interval together)';
COMMENT ON COLUMN ltv.segment_ltv.billing_interval IS 'Billing interval of the customers'' latest plan: month, year, ''none'', or ''all''';
COMMENT ON COLUMN ltv.segment_ltv.acquisition_channel IS 'Acquisition channel, or ''all''';
COMMENT ON COLUMN ltv.segment_ltv.signup_cohort IS 'Signup month as YYYY-MM, or ''all''';
COMMENT ON COLUMN ltv.segment_ltv.signup_month IS 'First day of the signup month (UTC), for date axes; NULL when signup_cohort is ''all''';
COMMENT ON COLUMN ltv.segment_ltv.customers IS 'Customers in the segment';
COMMENT ON COLUMN ltv.segment_ltv.scored_customers IS 'Customers with a model LTV (total_ltv not NULL); the LTV statistics are over these';
COMMENT ON COLUMN ltv.segment_ltv.active_subscribers IS 'Customers whose latest subscription is active now';
COMMENT ON COLUMN ltv.segment_ltv.total_ltv IS 'Sum of the customers'' combined model LTV (realised margin + predicted recurring + predicted one-off)';
COMMENT ON COLUMN ltv.segment_ltv.mean_ltv IS 'Mean combined model LTV per customer';
COMMENT ON COLUMN ltv.segment_ltv.median_ltv IS 'Median combined model LTV (continuous percentile)';
COMMENT ON COLUMN ltv.segment_ltv.p90_ltv IS '90th percentile of combined model LTV (continuous percentile)';
COMMENT ON COLUMN ltv.segment_ltv.mrr IS 'Monthly recurring revenue of the segment now (annual plans ÷ 12)';
COMMENT ON COLUMN ltv.segment_ltv.arpa IS 'Average revenue per active subscriber: mrr ÷ active_subscribers';
COMMENT ON COLUMN ltv.segment_ltv.mean_cac IS 'Mean acquisition cost per customer: each customer costs its channel''s CAC in its signup month (ltv.unit_economics); no spend recorded = 0; spend without an FX rate is left out';
COMMENT ON COLUMN ltv.segment_ltv.ltv_to_cac IS 'mean_ltv ÷ mean_cac; NULL when mean_cac is 0 or unknown';
COMMENT ON COLUMN ltv.segment_ltv.cac_payback_months IS 'Months of gross margin to earn the acquisition cost back: mean_cac ÷ (arpa × subscription margin)';
COMMENT ON COLUMN ltv.segment_ltv.as_of IS 'Moment the figures were computed (the refresh transaction''s start)';

INSERT INTO ltv.view_refreshes (view_name, refresh_order, description)
VALUES ('segment_ltv', 30, 'LTV by vendor category × country × plan × channel × signup cohort, with rollups')
ON CONFLICT (view_name) DO UPDATE
SET refresh_order = EXCLUDED.refresh_order, description = EXCLUDED.description,
    last_refreshed_at = NULL, last_duration_ms = NULL, last_concurrently = NULL,
    last_refreshed_by = NULL, refresh_count = 0;
