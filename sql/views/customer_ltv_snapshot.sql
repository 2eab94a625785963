-- ltv.customer_ltv_snapshot: every customer's LTV by every method, as of the last refresh — the
-- row BI tools scan instead of calling ltv.score_customers for a million customers.
--
-- Every LTV figure here is read from ltv.score_customers(now()) (realised, sBG recurring,
-- BG/NBD × Gamma-Gamma one-off, total, 80 % interval, P(alive)) and ltv.formula_ltv(now())
-- (the customer's channel's formula LTV); nothing is recomputed. The only lookup of our own is
-- the plan code and tier of the customer's latest subscription, chosen by the same rule as
-- ltv.customer_history (latest started before as-of, ties to the higher subscription_id).
--
-- Why DROP + CREATE in this file (not CREATE … IF NOT EXISTS in upgrade.sql): a materialized
-- view cannot be replaced in place, and sql/ is the one source of truth for every view, so a
-- revision that changes a view lists this file again and gets the new definition. The view is
-- created WITH NO DATA (creating it must not score every customer inside DDL);
-- ltv.refresh_views() populates it on its first call (non-concurrently: CONCURRENTLY needs a
-- populated view) and the 0003 migration makes that first call. CASCADE also drops the views
-- that read this one (ltv.unit_economics, ltv.segment_ltv): a revision that re-installs this
-- file must list theirs after it (tests/test_views.py checks every registered view exists).
-- Registering the view in ltv.view_refreshes resets its refresh record. Grants are not set
-- here: ltv.apply_grants(), which every revision from 0004 on ends with, derives them (and
-- ownership) from the catalog, so a re-created view gets them back.

DROP MATERIALIZED VIEW IF EXISTS ltv.customer_ltv_snapshot CASCADE;

CREATE MATERIALIZED VIEW ltv.customer_ltv_snapshot AS
WITH
scores AS (
    SELECT * FROM ltv.score_customers(now())
),
latest_plan AS (
    SELECT DISTINCT ON (s.customer_id) s.customer_id, s.plan_code, p.tier
    FROM ltv.subscriptions s
    JOIN ltv.plans p USING (plan_code)
    WHERE s.started_at < now()
    ORDER BY s.customer_id, s.started_at DESC, s.subscription_id DESC
),
channel_formula AS (
    SELECT f.acquisition_channel, f.formula_ltv FROM ltv.formula_ltv(now()) f
)
SELECT sc.customer_id,
       c.customer_ref,
       sc.vendor_category,
       sc.country,
       c.region,
       sc.acquisition_channel,
       sc.signed_up_at,
       date_trunc('month', sc.signed_up_at AT TIME ZONE 'UTC')::date AS signup_month,
       lp.plan_code,
       coalesce(lp.tier, 'none')               AS plan_tier,
       coalesce(sc.billing_interval, 'none')   AS billing_interval,
       sc.subscription_status,
       sc.net_revenue,
       sc.realised_margin,
       sc.current_mrr,
       cf.formula_ltv                          AS channel_formula_ltv,
       sc.predicted_recurring,
       sc.predicted_one_off,
       sc.total_ltv,
       sc.ltv_low,
       sc.ltv_high,
       sc.p_alive,
       sc.expected_purchases,
       sc.expected_remaining_months,
       sc.sbg_segment,
       sc.bgnbd_segment,
       now()                                   AS as_of
FROM scores sc
JOIN ltv.customers c USING (customer_id)
LEFT JOIN latest_plan lp USING (customer_id)
LEFT JOIN channel_formula cf ON cf.acquisition_channel = sc.acquisition_channel
WITH NO DATA;

CREATE UNIQUE INDEX customer_ltv_snapshot_customer_idx ON ltv.customer_ltv_snapshot (customer_id);
CREATE INDEX customer_ltv_snapshot_segment_idx
    ON ltv.customer_ltv_snapshot (vendor_category, country, acquisition_channel);

COMMENT ON MATERIALIZED VIEW ltv.customer_ltv_snapshot IS
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
