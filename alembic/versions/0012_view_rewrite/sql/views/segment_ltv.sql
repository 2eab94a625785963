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
-- covers every row); grouping_level names the dimensions it
-- does break down by, '+'-joined in the order vendor_category, country, plan,
-- acquisition_channel, signup_cohort ('total' for the grand total). The grouping sets are the
-- full breakdown and the rollups an executive asks for; anything else is a GROUP BY over
-- ltv.customer_ltv_snapshot.
--
-- A plain view over ltv.segment_ltv_store, which ltv.refresh_segment_ltv (run by
-- ltv.refresh_views after the two views it reads, so by the refresh-views pg_cron job) computes
-- and writes in one transaction: readers see the previous figures until it commits. The unique
-- index is the store's primary key; ltv.view_freshness has the as-of time. A plain view so
-- ltv_reader gets SELECT on it and none on the store (ltv.apply_grants); CREATE OR REPLACE (the
-- 0012 migration dropped the materialized view it replaces); registering resets the refresh
-- record.

CREATE OR REPLACE VIEW ltv.segment_ltv AS
SELECT
       s.grouping_level,
       s.vendor_category,
       s.country,
       s.plan_tier,
       s.billing_interval,
       s.acquisition_channel,
       s.signup_cohort,
       s.signup_month,
       s.customers,
       s.scored_customers,
       s.active_subscribers,
       s.total_ltv,
       s.mean_ltv,
       s.median_ltv,
       s.p90_ltv,
       s.mrr,
       s.arpa,
       s.mean_cac,
       s.ltv_to_cac,
       s.cac_payback_months,
       s.as_of
FROM ltv.segment_ltv_store s;

COMMENT ON VIEW ltv.segment_ltv IS
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
