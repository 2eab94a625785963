-- ltv.refresh_customer_ltv_snapshot(as_of): rewrite ltv.customer_ltv_snapshot as of a moment —
-- what ltv.refresh_views (and so the pg_cron job) runs for this view.
--
-- Every LTV figure is read from ltv.score_customers(as_of) (realised, sBG recurring, BG/NBD ×
-- Gamma-Gamma one-off, total, 80 % interval, P(alive)); nothing is recomputed. The customer's
-- channel formula LTV is ltv.formula_ltv's definition (ltv.formula_ltv_from) fed with the
-- active subscribers and MRR of the scored rows themselves, which are ltv.customer_history's —
-- the same figures ltv.formula_ltv(as_of) reads, without reading every customer's history a
-- second time. Beside the scores the snapshot shows the customer's reference and region and the
-- plan code and tier of the subscription ltv.customer_history scored (the latest started before
-- the as-of, ties to the higher subscription_id), looked up with the scoring.
--
-- Every row changes on every refresh (the customers' ages move with the clock). The rows are
-- updated in place by one MERGE — the store keeps free space in every page (fillfactor) and no
-- indexed column changes, so each update is a heap-only tuple: no index entries, unlike a
-- DELETE + INSERT of every row (twice the time at a million customers) or REFRESH
-- MATERIALIZED VIEW CONCURRENTLY, which diffs the old and new rows first (three times). New
-- customers are inserted; rows of customers no longer scored (deleted, or signed up after an
-- earlier as-of) are deleted first. One transaction: readers see the previous snapshot until
-- commit. The registry row is locked first, so concurrent refreshes queue. Records its as-of in
-- ltv.view_refreshes.last_refreshed_at.

CREATE OR REPLACE FUNCTION ltv.refresh_customer_ltv_snapshot(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (rows_deleted bigint, rows_written bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
SET work_mem = '256MB'
SET enable_nestloop = off  -- whole populations through CTEs estimated at a few rows
SET enable_mergejoin = off -- ... and the million scored rows hashed, not sorted, to join the channels' formula
AS $$
DECLARE
    v_first_id bigint;
    v_last_id  bigint;
BEGIN
PERFORM 1 FROM ltv.view_refreshes r WHERE r.view_name = 'customer_ltv_snapshot' FOR UPDATE;

-- The scored rows, read twice below (the rows, their channels' MRR for the formula) and by the
-- DELETE of the customers no longer scored. Scoring is most of the refresh and one core's work
-- per call, so the customers are scored in two halves by id, each in a parallel worker
-- (Parallel Append; the leader writes the rows) with their reference, region and plan — unless
-- a customer has an event or subscription dated at or after the as-of (ltv.facts_dated_from):
-- those are recomputed from the raw tables, which a parallel worker cannot do
-- (ltv.score_customer_range). Without free workers the halves run one after the other. The same
-- rows every way.
SELECT min(c.customer_id), max(c.customer_id) INTO v_first_id, v_last_id FROM ltv.customers c;
IF NOT EXISTS (SELECT FROM ltv.customer_stats s WHERE ltv.facts_dated_from(s.last_event_at, s.subscription_started, p_as_of)) THEN
    CREATE TEMP TABLE snapshot_scores ON COMMIT DROP AS  -- dropped below: a caller may refresh twice
    SELECT * FROM ltv.score_customer_range(p_as_of, NULL, v_first_id + (v_last_id - v_first_id) / 2)
    UNION ALL
    SELECT * FROM ltv.score_customer_range(p_as_of, v_first_id + (v_last_id - v_first_id) / 2 + 1, NULL);
ELSE
    -- the plan of the latest subscription started before the as-of, by ltv.customer_history's
    -- rule (ties to the higher subscription_id): the one it scored
    CREATE TEMP TABLE snapshot_scores ON COMMIT DROP AS
    WITH latest_plan AS (
        SELECT DISTINCT ON (s.customer_id) s.customer_id, s.plan_code, p.tier
        FROM ltv.subscriptions s
        JOIN ltv.plans p USING (plan_code)
        WHERE s.started_at < p_as_of
        ORDER BY s.customer_id, s.started_at DESC, s.subscription_id DESC
    )
    SELECT sc.*, c.customer_ref, c.region, lp.plan_code, lp.tier AS plan_tier
    FROM ltv.score_customers(p_as_of) sc
    JOIN ltv.customers c USING (customer_id)
    LEFT JOIN latest_plan lp USING (customer_id);
END IF;

DELETE FROM ltv.customer_ltv_snapshot_store store
WHERE NOT EXISTS (SELECT FROM pg_temp.snapshot_scores sc WHERE sc.customer_id = store.customer_id);
GET DIAGNOSTICS rows_deleted = ROW_COUNT;

MERGE INTO ltv.customer_ltv_snapshot_store store
USING (
    WITH
    channel_mrr AS (
        SELECT array_agg(m.channel) AS channels, array_agg(m.active_customers) AS active, array_agg(m.mrr) AS mrr
        FROM (SELECT coalesce(sc.acquisition_channel, 'all') AS channel,
                     count(*) FILTER (WHERE sc.subscription_status = 'active') AS active_customers,
                     coalesce(sum(sc.current_mrr), 0) AS mrr
              FROM pg_temp.snapshot_scores sc
              GROUP BY ROLLUP (sc.acquisition_channel)) m
    ),
    channel_formula AS (
        SELECT f.acquisition_channel, f.formula_ltv
        FROM channel_mrr m
        CROSS JOIN LATERAL ltv.formula_ltv_from(p_as_of, m.channels, m.active, m.mrr) f
    )
    SELECT sc.customer_id,
           sc.customer_ref,
           sc.vendor_category,
           sc.country,
           sc.region,
           sc.acquisition_channel,
           sc.signed_up_at,
           date_trunc('month', sc.signed_up_at AT TIME ZONE 'UTC')::date AS signup_month,
           sc.plan_code,
           coalesce(sc.plan_tier, 'none')          AS plan_tier,
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
           p_as_of                                 AS as_of
    FROM pg_temp.snapshot_scores sc
    LEFT JOIN channel_formula cf ON cf.acquisition_channel = sc.acquisition_channel
) fresh
ON store.customer_id = fresh.customer_id
WHEN MATCHED THEN UPDATE SET
    customer_ref = fresh.customer_ref,
    vendor_category = fresh.vendor_category,
    country = fresh.country,
    region = fresh.region,
    acquisition_channel = fresh.acquisition_channel,
    signed_up_at = fresh.signed_up_at,
    signup_month = fresh.signup_month,
    plan_code = fresh.plan_code,
    plan_tier = fresh.plan_tier,
    billing_interval = fresh.billing_interval,
    subscription_status = fresh.subscription_status,
    net_revenue = fresh.net_revenue,
    realised_margin = fresh.realised_margin,
    current_mrr = fresh.current_mrr,
    channel_formula_ltv = fresh.channel_formula_ltv,
    predicted_recurring = fresh.predicted_recurring,
    predicted_one_off = fresh.predicted_one_off,
    total_ltv = fresh.total_ltv,
    ltv_low = fresh.ltv_low,
    ltv_high = fresh.ltv_high,
    p_alive = fresh.p_alive,
    expected_purchases = fresh.expected_purchases,
    expected_remaining_months = fresh.expected_remaining_months,
    sbg_segment = fresh.sbg_segment,
    bgnbd_segment = fresh.bgnbd_segment,
    as_of = fresh.as_of
WHEN NOT MATCHED THEN INSERT VALUES (
    fresh.customer_id, fresh.customer_ref, fresh.vendor_category, fresh.country, fresh.region,
    fresh.acquisition_channel, fresh.signed_up_at, fresh.signup_month, fresh.plan_code,
    fresh.plan_tier, fresh.billing_interval, fresh.subscription_status, fresh.net_revenue,
    fresh.realised_margin, fresh.current_mrr, fresh.channel_formula_ltv, fresh.predicted_recurring,
    fresh.predicted_one_off, fresh.total_ltv, fresh.ltv_low, fresh.ltv_high, fresh.p_alive,
    fresh.expected_purchases, fresh.expected_remaining_months, fresh.sbg_segment,
    fresh.bgnbd_segment, fresh.as_of);
GET DIAGNOSTICS rows_written = ROW_COUNT;

DROP TABLE pg_temp.snapshot_scores;
ANALYZE ltv.customer_ltv_snapshot_store;
UPDATE ltv.view_refreshes r SET last_refreshed_at = p_as_of WHERE r.view_name = 'customer_ltv_snapshot';
RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION ltv.refresh_customer_ltv_snapshot(timestamptz) IS
    'Rewrite ltv.customer_ltv_snapshot as of a moment from ltv.score_customers, in one transaction (readers see the previous rows until commit)';
