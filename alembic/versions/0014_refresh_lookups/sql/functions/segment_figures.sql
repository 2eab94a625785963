-- ltv.segment_figures(part): the figures of ltv.segment_ltv for one part of its grouping sets
-- (part 1 or 2), aggregated from ltv.customer_ltv_snapshot and each customer's CAC from
-- ltv.unit_economics — what ltv.refresh_segment_ltv reads, running the two parts side by side in
-- parallel workers (Parallel Append). Sums and counts, exact; the refresh derives the means,
-- ratios and roundings. The definitions of every figure are in the view's comments
-- (sql/views/segment_ltv.sql).
--
-- Speed, at a million customers (~325,000 segments, most of them in the full breakdown):
--   * percentile_cont cannot be hashed, so PostgreSQL sorts the customers once per chain of
--     grouping sets sharing a sort order (six sorts for all fifteen), and each segment's values
--     on their own. The parts split the chains about evenly: part 1 the full breakdown's chain
--     (318,000 segments of three customers, each sorted on its own) and the plans', part 2 the
--     other four. Each part reads its input itself; two parts on two cores take about two
--     thirds of the time of one GROUP BY of all fifteen;
--   * the customers are grouped by integer codes of the five text dimensions, numbered over
--     their few thousand combinations and named again in the segments: comparing integers
--     instead of text takes a third off the sorts;
--   * money is summed as integers: LTV and MRR in units of 0.0001 (ltv.score_customers rounds
--     every part of both to four decimals), CAC in cents (ltv.channel_economics rounds it to
--     two) — exact, in 128-bit integers rather than numeric, fifteen times per customer.
-- The grouping sets are the only difference between the parts, so they are the one piece of
-- the query put together at run time, from the two lists below (never from input).
--
-- Labelled PARALLEL SAFE for that use: it only reads.

CREATE OR REPLACE FUNCTION ltv.segment_figures(p_part integer)
RETURNS TABLE (
    grouping_level      text,
    vendor_category     text,
    country             text,
    plan_tier           text,
    billing_interval    text,
    acquisition_channel text,
    signup_month        date,
    customers           bigint,
    scored_customers    bigint,
    active_subscribers  bigint,
    total_ltv           numeric,
    median_ltv          float8,
    p90_ltv             float8,
    mrr                 numeric,
    cac_total           numeric,
    known_cac           bigint
)
LANGUAGE plpgsql STABLE PARALLEL SAFE
-- seconds per call, not the default few operators: the planner then runs the parts in workers
COST 10000000
SET search_path = pg_catalog, ltv
SET work_mem = '256MB'     -- a million customers sorted in memory
SET enable_nestloop = off  -- whole populations through CTEs estimated at a few rows
AS $$
DECLARE
    v_grouping_sets CONSTANT text := CASE p_part
        WHEN 1 THEN $sets$
            (v.vendor_category_code, v.country_code, v.plan_tier_code, v.billing_interval_code,
             v.acquisition_channel_code, v.signup_month),
            (v.vendor_category_code, v.signup_month),
            (v.signup_month),
            (v.vendor_category_code, v.plan_tier_code, v.billing_interval_code),
            (v.plan_tier_code, v.billing_interval_code)
        $sets$
        WHEN 2 THEN $sets$
            (v.vendor_category_code, v.country_code, v.plan_tier_code, v.billing_interval_code,
             v.acquisition_channel_code),
            (v.vendor_category_code, v.country_code, v.acquisition_channel_code),
            (v.vendor_category_code, v.country_code),
            (v.vendor_category_code, v.acquisition_channel_code),
            (v.vendor_category_code),
            (v.country_code, v.acquisition_channel_code),
            (v.country_code),
            (v.acquisition_channel_code, v.signup_month),
            (v.acquisition_channel_code),
            ()
        $sets$
    END;
BEGIN
IF v_grouping_sets IS NULL THEN
    RAISE EXCEPTION 'ltv.segment_figures: part must be 1 or 2, not %', p_part
        USING ERRCODE = 'invalid_parameter_value';
END IF;

RETURN QUERY EXECUTE format($query$
WITH
channel_month_cac AS (
    SELECT u.acquisition_channel, u.signup_month,
           CASE WHEN u.spend_unconverted THEN NULL ELSE coalesce(u.cac, 0) END AS cac
    FROM ltv.unit_economics u
    WHERE u.acquisition_channel <> 'all' AND u.period <> 'all'
),
dimension_values AS (  -- the combinations of the text dimensions: a few thousand
    SELECT DISTINCT s.vendor_category, s.country, s.plan_tier, s.billing_interval, s.acquisition_channel
    FROM ltv.customer_ltv_snapshot s
),
dimension_names AS (  -- each dimension's values in order: a value's code is its position here
    SELECT array_agg(DISTINCT d.vendor_category ORDER BY d.vendor_category)         AS vendor_categories,
           array_agg(DISTINCT d.country ORDER BY d.country)                         AS countries,
           array_agg(DISTINCT d.plan_tier ORDER BY d.plan_tier)                     AS plan_tiers,
           array_agg(DISTINCT d.billing_interval ORDER BY d.billing_interval)       AS billing_intervals,
           array_agg(DISTINCT d.acquisition_channel ORDER BY d.acquisition_channel) AS acquisition_channels
    FROM dimension_values d
),
dimension_codes AS (
    SELECT d.*,
           array_position(n.vendor_categories, d.vendor_category)         AS vendor_category_code,
           array_position(n.countries, d.country)                         AS country_code,
           array_position(n.plan_tiers, d.plan_tier)                      AS plan_tier_code,
           array_position(n.billing_intervals, d.billing_interval)        AS billing_interval_code,
           array_position(n.acquisition_channels, d.acquisition_channel)  AS acquisition_channel_code
    FROM dimension_values d
    CROSS JOIN dimension_names n
),
customer_values AS (
    SELECT d.vendor_category_code, d.country_code, d.plan_tier_code, d.billing_interval_code,
           d.acquisition_channel_code, s.signup_month,
           (s.total_ltv * 10000)::bigint    AS ltv_units,
           s.total_ltv::float8              AS ltv,
           (s.current_mrr * 10000)::bigint  AS mrr_units,
           s.subscription_status = 'active' AS is_active,
           (c.cac * 100)::bigint            AS cac_cents
    FROM ltv.customer_ltv_snapshot s
    JOIN dimension_codes d USING (vendor_category, country, plan_tier, billing_interval, acquisition_channel)
    LEFT JOIN channel_month_cac c USING (acquisition_channel, signup_month)
),
segments AS (  -- a rolled-up dimension's code is NULL
    SELECT concat_ws('+',
               CASE WHEN GROUPING(v.vendor_category_code) = 0 THEN 'vendor_category' END,
               CASE WHEN GROUPING(v.country_code) = 0 THEN 'country' END,
               CASE WHEN GROUPING(v.plan_tier_code) = 0 THEN 'plan' END,
               CASE WHEN GROUPING(v.acquisition_channel_code) = 0 THEN 'acquisition_channel' END,
               CASE WHEN GROUPING(v.signup_month) = 0 THEN 'signup_cohort' END) AS dimensions,
           v.vendor_category_code,
           v.country_code,
           v.plan_tier_code,
           v.billing_interval_code,
           v.acquisition_channel_code,
           v.signup_month,
           count(*)                                            AS customers,
           count(v.ltv_units)                                  AS scored_customers,
           count(*) FILTER (WHERE v.is_active)                 AS active_subscribers,
           sum(v.ltv_units)                                    AS ltv_units,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY v.ltv)  AS median_ltv,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY v.ltv)  AS p90_ltv,
           sum(v.mrr_units)                                    AS mrr_units,
           sum(v.cac_cents)                                    AS cac_cents,
           count(v.cac_cents)                                  AS known_cac
    FROM customer_values v
    GROUP BY GROUPING SETS (%s)
)
SELECT CASE WHEN sg.dimensions = '' THEN 'total' ELSE sg.dimensions END,
       coalesce(n.vendor_categories[sg.vendor_category_code], 'all'),
       coalesce(n.countries[sg.country_code], 'all'),
       coalesce(n.plan_tiers[sg.plan_tier_code], 'all'),
       coalesce(n.billing_intervals[sg.billing_interval_code], 'all'),
       coalesce(n.acquisition_channels[sg.acquisition_channel_code], 'all'),
       sg.signup_month,
       sg.customers,
       sg.scored_customers,
       sg.active_subscribers,
       sg.ltv_units * 0.0001,  -- back to numeric, exactly
       sg.median_ltv,
       sg.p90_ltv,
       sg.mrr_units * 0.0001,
       sg.cac_cents * 0.01,
       sg.known_cac
FROM segments sg
CROSS JOIN dimension_names n
$query$, v_grouping_sets);
END;
$$;

COMMENT ON FUNCTION ltv.segment_figures(integer) IS
    'Internal: ltv.segment_ltv''s sums, counts and percentiles for one part (1 or 2) of its grouping sets — the refresh runs both in parallel workers';
