-- ltv.refresh_segment_ltv(as_of): recompute ltv.segment_ltv from ltv.customer_ltv_snapshot (and
-- each customer's CAC from ltv.unit_economics) — what ltv.refresh_views (and so the pg_cron job)
-- runs for this view, after refreshing those two. The definitions of every figure are in the
-- view's comments (sql/views/segment_ltv.sql).
--
-- Speed, at a million customers (~325,000 segments, most of them in the full breakdown):
--   * the sums, counts and percentiles of every segment come from ltv.segment_figures, whose
--     two parts (of the grouping sets) run side by side in parallel workers — see there;
--   * the rows are updated in place by one MERGE (heap-only updates: the store keeps free space
--     in its pages and no indexed column changes), segments that no longer exist deleted
--     first — every figure moves on every refresh, and REFRESH MATERIALIZED VIEW CONCURRENTLY
--     would diff every row before rewriting it.
-- One transaction: readers see the previous figures until commit. The registry row is locked
-- first, so concurrent refreshes queue. Records its as-of in ltv.view_refreshes.last_refreshed_at.

CREATE OR REPLACE FUNCTION ltv.refresh_segment_ltv(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (rows_deleted bigint, rows_written bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
SET work_mem = '256MB'
SET enable_nestloop = off  -- the store matched on seven text keys: hashed, not in loops
SET enable_mergejoin = off -- ... nor both sides sorted
AS $$
BEGIN
PERFORM 1 FROM ltv.view_refreshes r WHERE r.view_name = 'segment_ltv' FOR UPDATE;

CREATE TEMP TABLE segment_fresh ON COMMIT DROP AS  -- dropped below: a caller may refresh twice
SELECT sg.grouping_level,
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
       round(sg.median_ltv::numeric, 2)                                            AS median_ltv,
       round(sg.p90_ltv::numeric, 2)                                               AS p90_ltv,
       round(sg.mrr, 2)                                                            AS mrr,
       round(sg.mrr / nullif(sg.active_subscribers, 0), 4)                         AS arpa,
       round(sg.mean_cac, 2)                                                       AS mean_cac,
       round(sg.mean_ltv / nullif(sg.mean_cac, 0), 2)                              AS ltv_to_cac,
       round(sg.mean_cac / nullif(sg.mrr / nullif(sg.active_subscribers, 0) * sg.margin_subscription, 0), 1)
                                                                                   AS cac_payback_months,
       p_as_of                                                                     AS as_of
FROM (SELECT f.*,
             f.total_ltv / nullif(f.scored_customers, 0)                 AS mean_ltv,
             f.cac_total / nullif(f.known_cac, 0)                        AS mean_cac,
             -- a scalar subquery, not a join: a join above the parts kept them from the workers
             (SELECT st.margin_subscription FROM ltv.settings st)        AS margin_subscription
      FROM (SELECT * FROM ltv.segment_figures(1)
            UNION ALL
            SELECT * FROM ltv.segment_figures(2)) f) sg;

DELETE FROM ltv.segment_ltv_store store
WHERE NOT EXISTS (
    SELECT FROM pg_temp.segment_fresh fresh
    WHERE (fresh.vendor_category, fresh.grouping_level, fresh.country, fresh.acquisition_channel, fresh.plan_tier,
           fresh.billing_interval, fresh.signup_cohort)
        = (store.vendor_category, store.grouping_level, store.country, store.acquisition_channel, store.plan_tier,
           store.billing_interval, store.signup_cohort));
GET DIAGNOSTICS rows_deleted = ROW_COUNT;

MERGE INTO ltv.segment_ltv_store store
USING pg_temp.segment_fresh fresh
ON (fresh.vendor_category, fresh.grouping_level, fresh.country, fresh.acquisition_channel, fresh.plan_tier,
    fresh.billing_interval, fresh.signup_cohort)
 = (store.vendor_category, store.grouping_level, store.country, store.acquisition_channel, store.plan_tier,
    store.billing_interval, store.signup_cohort)
WHEN MATCHED THEN UPDATE SET
    signup_month = fresh.signup_month,
    customers = fresh.customers,
    scored_customers = fresh.scored_customers,
    active_subscribers = fresh.active_subscribers,
    total_ltv = fresh.total_ltv,
    mean_ltv = fresh.mean_ltv,
    median_ltv = fresh.median_ltv,
    p90_ltv = fresh.p90_ltv,
    mrr = fresh.mrr,
    arpa = fresh.arpa,
    mean_cac = fresh.mean_cac,
    ltv_to_cac = fresh.ltv_to_cac,
    cac_payback_months = fresh.cac_payback_months,
    as_of = fresh.as_of
WHEN NOT MATCHED THEN INSERT VALUES (
    fresh.grouping_level, fresh.vendor_category, fresh.country, fresh.plan_tier, fresh.billing_interval,
    fresh.acquisition_channel, fresh.signup_cohort, fresh.signup_month, fresh.customers, fresh.scored_customers,
    fresh.active_subscribers, fresh.total_ltv, fresh.mean_ltv, fresh.median_ltv, fresh.p90_ltv, fresh.mrr,
    fresh.arpa, fresh.mean_cac, fresh.ltv_to_cac, fresh.cac_payback_months, fresh.as_of);
GET DIAGNOSTICS rows_written = ROW_COUNT;

DROP TABLE pg_temp.segment_fresh;
ANALYZE ltv.segment_ltv_store;
UPDATE ltv.view_refreshes r SET last_refreshed_at = p_as_of WHERE r.view_name = 'segment_ltv';
RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION ltv.refresh_segment_ltv(timestamptz) IS
    'Recompute ltv.segment_ltv as of a moment from ltv.customer_ltv_snapshot and ltv.unit_economics, in one transaction (readers see the previous figures until commit)';
