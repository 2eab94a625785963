-- ltv.customer_ltv_snapshot: every customer's LTV by every method, as of the last refresh — the
-- row BI tools scan instead of calling ltv.score_customers for a million customers.
--
-- A plain view over ltv.customer_ltv_snapshot_store, which ltv.refresh_customer_ltv_snapshot
-- (run by ltv.refresh_views, so by the refresh-views pg_cron job) rewrites from
-- ltv.score_customers in one transaction: readers keep reading the previous rows until it
-- commits, never a half-written snapshot. Every figure changes on every refresh (the customers'
-- ages move with the clock), and for a rewrite of every row REFRESH MATERIALIZED VIEW
-- CONCURRENTLY costs the most: it diffs the old and new contents row by row before rewriting
-- them all. The unique index is the store's primary key (customer_id); ltv.view_freshness has
-- the as-of time.
--
-- A plain view so ltv_reader gets SELECT on it (ltv.apply_grants) and none on the store; the
-- view runs as its owner. CREATE OR REPLACE (the 0012 migration dropped the materialized view
-- it replaces); registering resets the refresh record. Grants: ltv.apply_grants(), which every
-- revision from 0004 on ends with, derives them (and ownership) from the catalog.

CREATE OR REPLACE VIEW ltv.customer_ltv_snapshot AS
SELECT
       s.customer_id,
       s.customer_ref,
       s.vendor_category,
       s.country,
       s.region,
       s.acquisition_channel,
       s.signed_up_at,
       s.signup_month,
       s.plan_code,
       s.plan_tier,
       s.billing_interval,
       s.subscription_status,
       s.net_revenue,
       s.realised_margin,
       s.current_mrr,
       s.channel_formula_ltv,
       s.predicted_recurring,
       s.predicted_one_off,
       s.total_ltv,
       s.ltv_low,
       s.ltv_high,
       s.p_alive,
       s.expected_purchases,
       s.expected_remaining_months,
       s.sbg_segment,
       s.bgnbd_segment,
       s.as_of
FROM ltv.customer_ltv_snapshot_store s;

COMMENT ON VIEW ltv.customer_ltv_snapshot IS
    'One row per customer (signed up before as_of): LTV by every method — realised, formula (channel), sBG recurring, BG/NBD one-off, total with 80% interval — from ltv.score_customers as of the last refresh (see ltv.view_freshness). Money in base-currency major units; LTV values are gross margin, not revenue.';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.customer_id IS 'Customer (ltv.customers.customer_id); unique';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.customer_ref IS 'The customer''s external reference (ltv.customers.customer_ref)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.vendor_category IS 'Kind of supplier (photographer, venue, …; ltv.vendor_categories)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.country IS 'ISO 3166 two-letter country code';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.region IS 'Free-text region within the country (may be NULL)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.acquisition_channel IS 'Marketing channel the customer was acquired through (ltv.acquisition_channels)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.signed_up_at IS 'When the customer signed up';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.signup_month IS 'Signup cohort: first day of the UTC calendar month of signed_up_at';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.plan_code IS 'Plan of the customer''s latest subscription started before as_of (NULL = never subscribed)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.plan_tier IS 'Tier of that plan (basic, pro, …); ''none'' = never subscribed';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.billing_interval IS 'Billing interval of that plan: month or year; ''none'' = never subscribed';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.subscription_status IS 'Latest subscription as of as_of: active, cancelled (still in its paid period), ended, or none';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.net_revenue IS 'Historical LTV, revenue: all money received to date net of refunds, chargebacks and credits (recurring + one-off)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.realised_margin IS 'Historical LTV, gross margin: net recurring revenue × subscription margin + net one-off revenue × one-off margin (ltv.settings)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.current_mrr IS 'Monthly recurring revenue now: last charge of the active subscription, annual plans ÷ 12; 0 unless active';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.channel_formula_ltv IS 'Formula LTV of the customer''s acquisition channel (ARPA × margin ÷ trailing six-month churn, ltv.formula_ltv); the same for every customer of the channel; NULL when churn is 0';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.predicted_recurring IS 'sBG: expected discounted gross margin of future subscription payments (0 when not active; NULL when active but no sBG fit exists)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.predicted_one_off IS 'BG/NBD × Gamma-Gamma: expected discounted gross margin of one-off purchases over settings.horizon_months';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.total_ltv IS 'Combined LTV: realised_margin + predicted_recurring + predicted_one_off (NULL when predicted_recurring is)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.ltv_low IS 'Lower end of the 80% interval of total_ltv (10th percentile; method in ltv.score_customers)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.ltv_high IS 'Upper end of the 80% interval of total_ltv (90th percentile)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.p_alive IS 'BG/NBD probability that the customer is still an active one-off buyer (NULL without a BG/NBD fit)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.expected_purchases IS 'BG/NBD expected one-off purchases over settings.horizon_months (undiscounted)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.expected_remaining_months IS 'sBG expected further paid months of subscription within the horizon';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.sbg_segment IS 'Segment whose active sBG fit priced the recurring value (own category/interval or a parent)';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.bgnbd_segment IS 'Segment whose active BG/NBD fit priced the one-off value (own category or ''all'')';
COMMENT ON COLUMN ltv.customer_ltv_snapshot.as_of IS 'Moment the figures were computed (the refresh transaction''s start); same for every row';

INSERT INTO ltv.view_refreshes (view_name, refresh_order, description)
VALUES ('customer_ltv_snapshot', 10, 'Every customer''s LTV by every method (from ltv.score_customers)')
ON CONFLICT (view_name) DO UPDATE
SET refresh_order = EXCLUDED.refresh_order, description = EXCLUDED.description,
    last_refreshed_at = NULL, last_duration_ms = NULL, last_concurrently = NULL,
    last_refreshed_by = NULL, refresh_count = 0;
