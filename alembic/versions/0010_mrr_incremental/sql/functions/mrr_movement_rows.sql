-- ltv.mrr_movement_rows(as_of, customer_ids): the rows of ltv.mrr_movements — each customer's
-- month-end MRR and its movements, month by month — computed from the raw tables as of a
-- moment, for the customers named (NULL = everyone; an empty array = nobody). The one
-- definition of the MRR bridge: ltv.refresh_mrr_movements keeps ltv.mrr_movements equal to
-- mrr_movement_rows(as of its last refresh) by recomputing only the customers that changed.
--
-- MRR is measured at each month's end, by exactly ltv.customer_history's current_mrr rule: at
-- a moment E the customer's MRR is the last charge before E of its latest subscription started
-- before E, divided by 12 for annual plans (an annual charge is spread evenly over the twelve
-- month-ends it covers), and 0 unless that subscription is active at E (not cancelled, not
-- ended). So closing_mrr for month M equals current_mrr of ltv.customer_history(E) with E the
-- start of month M + 1 — or the as-of moment for its month, which is measured to date. MRR is
-- in the base currency at each charge's own FX rate, so a customer paying in another currency
-- shows small expansions and contractions as rates move (finance's "FX" effect).
--
-- Movements (all amounts ≥ 0; opening + new + expansion − contraction − churned + reactivation
-- = closing, per row and summed over any rows):
--   new           opening 0, closing > 0, the first month the customer ever had MRR
--   reactivation  opening 0, closing > 0, having had MRR in an earlier month. The rule: MRR
--                 that returns after at least one month-end at 0 is a reactivation; a customer
--                 who cancels and resubscribes within one calendar month never shows 0 at a
--                 month-end, so that is no churn and no reactivation (at most expansion or
--                 contraction when the price changed)
--   expansion     opening > 0 and closing > opening: closing − opening
--   contraction   opening > 0 and 0 < closing < opening: opening − closing
--   churned       opening > 0 and closing 0: opening
-- One row per customer and month in which opening or closing MRR is positive or one-off
-- revenue was booked; one_off_revenue is cash from one-off purchases net of their refunds,
-- chargebacks and credits booked in the month (ltv.customer_history's split), never MRR.
--
-- How: each charge is the "last charge" for the month-ends after it up to the next charge of
-- the same subscription, the start of the customer's next subscription (which then becomes
-- the latest) or the as-of moment, whichever is first, while the subscription is still active
-- (before min(cancelled_at, ended_at)); that window becomes a range of month indexes, expanded
-- with one generate_series per charge. Opening MRR and the churn month after each run of MRR
-- come from one window pass; one-off revenue joins through a UNION ALL + GROUP BY (no FULL
-- JOIN sorts). Customers are chosen by a join with the id list, planned per call (EXECUTE): a
-- few ids are primary-key lookups, everyone is one pass (see ltv.customer_facts).

CREATE OR REPLACE FUNCTION ltv.mrr_movement_rows(p_as_of timestamptz, p_customer_ids bigint[] DEFAULT NULL)
RETURNS SETOF ltv.mrr_movement_store
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, ltv
SET enable_nestloop = off  -- set per call below; restored on return
AS $$
DECLARE
    v_chosen text := CASE WHEN p_customer_ids IS NULL THEN 'true'
                          ELSE '%1$s.customer_id IN (SELECT DISTINCT id FROM unnest($2) id)' END;
BEGIN
IF p_as_of IS NULL OR NOT isfinite(p_as_of) THEN
    RAISE EXCEPTION 'ltv.mrr_movement_rows: as_of must be a finite moment, got %', p_as_of
        USING ERRCODE = 'invalid_parameter_value';
END IF;
IF cardinality(p_customer_ids) = 0 THEN
    RETURN;
END IF;
-- A few customers: nested loops of primary-key lookups. Many or everyone: hash joins only —
-- the window CTEs are estimated at 1-1,000 rows, and a nested loop chosen on such an estimate
-- is quadratic in the real row counts (see ltv.refresh_views).
PERFORM set_config('enable_nestloop', CASE WHEN cardinality(p_customer_ids) <= 10000 THEN 'on' ELSE 'off' END, true);
RETURN QUERY EXECUTE format($query$
WITH
clock AS (
    -- months as integers (year × 12 + month − 1, UTC) so per-row month arithmetic is cheap
    SELECT $1 AS measured_at,
           (date_part('year', $1 AT TIME ZONE 'UTC') * 12 + date_part('month', $1 AT TIME ZONE 'UTC') - 1)::integer
               AS current_mi
),
subscription_spans AS (
    SELECT s.customer_id, s.subscription_id, s.started_at,
           CASE p.billing_interval WHEN 'year' THEN 12 ELSE 1 END AS months_per_period,
           least(s.cancelled_at, s.ended_at) AS inactive_from,
           lead(s.started_at) OVER (PARTITION BY s.customer_id
                                    ORDER BY s.started_at, s.subscription_id) AS superseded_after
    FROM ltv.subscriptions s
    JOIN ltv.plans p USING (plan_code)
    WHERE s.started_at < $1
      AND %1$s
),
charges AS (
    SELECT e.customer_id, e.subscription_id, e.occurred_at, e.amount_base,
           lead(e.occurred_at) OVER (PARTITION BY e.customer_id, e.subscription_id
                                     ORDER BY e.occurred_at, e.event_id) AS next_charge_at
    FROM ltv.revenue_events e
    WHERE e.kind = 'subscription' AND e.subscription_id IS NOT NULL AND e.occurred_at < $1
      AND %2$s
),
charge_windows AS (
    -- this charge prices the month-ends E with occurred_at < E <= priced_until (the next
    -- charge, the next subscription's start, or as-of), started_at < E and E < inactive_from
    SELECT c.customer_id,
           round(c.amount_base / sp.months_per_period, 4) AS mrr,
           greatest(c.occurred_at, sp.started_at) AS priced_after,
           least(c.next_charge_at, sp.superseded_after, $1) AS priced_until,
           sp.inactive_from
    FROM charges c
    JOIN subscription_spans sp USING (customer_id, subscription_id)
),
charge_months AS (
    -- the same window as a range of month indexes: month M's end is the start of month M + 1,
    -- except the current month, whose "end" is the as-of moment
    SELECT w.customer_id, w.mrr,
           (date_part('year', w.priced_after AT TIME ZONE 'UTC') * 12
            + date_part('month', w.priced_after AT TIME ZONE 'UTC') - 1)::integer AS first_mi,
           least(
               CASE WHEN w.priced_until >= ck.measured_at THEN ck.current_mi
                    ELSE (date_part('year', w.priced_until AT TIME ZONE 'UTC') * 12
                          + date_part('month', w.priced_until AT TIME ZONE 'UTC') - 1)::integer - 1 END,
               CASE WHEN w.inactive_from IS NULL OR w.inactive_from > ck.measured_at THEN ck.current_mi
                    ELSE (date_part('year', w.inactive_from AT TIME ZONE 'UTC') * 12
                          + date_part('month', w.inactive_from AT TIME ZONE 'UTC') - 1)::integer
                         - CASE WHEN w.inactive_from = date_trunc('month', w.inactive_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                THEN 2 ELSE 1 END END) AS last_mi
    FROM charge_windows w
    CROSS JOIN clock ck
),
closing AS (
    -- one row per customer and month: the windows of one customer never overlap (the unique
    -- index on the view would refuse the refresh if they did)
    -- (generate_series in the select list: a ProjectSet, no tuplestore per charge)
    SELECT cm.customer_id, generate_series(cm.first_mi, cm.last_mi) AS mi, cm.mrr
    FROM charge_months cm
    WHERE cm.first_mi <= cm.last_mi AND cm.mrr > 0
),
mrr_runs AS (
    SELECT c.customer_id, c.mi, c.mrr,
           CASE WHEN lag(c.mi) OVER w = c.mi - 1 THEN lag(c.mrr) OVER w ELSE 0 END AS opening,
           lead(c.mi) OVER w AS next_mi,
           first_value(c.mi) OVER w AS first_mrr_mi
    FROM closing c
    WINDOW w AS (PARTITION BY c.customer_id ORDER BY c.mi)
),
mrr_months AS (
    -- every month with MRR, plus the month after each run of MRR ends (its churn), in one pass
    SELECT r.customer_id, v.mi, v.opening, v.closing, r.first_mrr_mi, NULL::numeric AS one_off
    FROM mrr_runs r
    CROSS JOIN clock ck
    CROSS JOIN LATERAL (VALUES (r.mi, r.opening, r.mrr, false), (r.mi + 1, r.mrr, 0, true))
        AS v(mi, opening, closing, is_churn)
    WHERE NOT v.is_churn OR ((r.next_mi IS NULL OR r.next_mi > r.mi + 1) AND r.mi < ck.current_mi)
),
one_off_revenue AS (
    -- one-off = not tied to a subscription and not a subscription charge (ltv.customer_history)
    SELECT e.customer_id,
           (date_part('year', e.occurred_at AT TIME ZONE 'UTC') * 12
            + date_part('month', e.occurred_at AT TIME ZONE 'UTC') - 1)::integer AS mi,
           NULL::numeric AS opening, NULL::numeric AS closing, NULL::integer AS first_mrr_mi,
           sum(CASE WHEN e.kind = 'one_off' THEN e.amount_base ELSE -e.amount_base END) AS one_off
    FROM ltv.revenue_events e
    WHERE e.occurred_at < $1 AND e.subscription_id IS NULL AND e.kind <> 'subscription'
      AND %2$s
    GROUP BY 1, 2
),
customer_months AS (
    SELECT u.customer_id, u.mi,
           coalesce(sum(u.opening), 0) AS opening_mrr,
           coalesce(sum(u.closing), 0) AS closing_mrr,
           max(u.first_mrr_mi) AS first_mrr_mi,
           coalesce(sum(u.one_off), 0) AS one_off_revenue
    FROM (SELECT * FROM mrr_months UNION ALL SELECT * FROM one_off_revenue) u
    GROUP BY u.customer_id, u.mi
),
movements AS (
    SELECT cm.*,
           CASE WHEN cm.opening_mrr = 0 AND cm.closing_mrr > 0 AND cm.mi = cm.first_mrr_mi THEN cm.closing_mrr ELSE 0 END AS new_mrr,
           CASE WHEN cm.opening_mrr > 0 AND cm.closing_mrr > cm.opening_mrr THEN cm.closing_mrr - cm.opening_mrr ELSE 0 END AS expansion_mrr,
           CASE WHEN cm.opening_mrr > 0 AND cm.closing_mrr > 0 AND cm.closing_mrr < cm.opening_mrr
                THEN cm.opening_mrr - cm.closing_mrr ELSE 0 END AS contraction_mrr,
           CASE WHEN cm.opening_mrr > 0 AND cm.closing_mrr = 0 THEN cm.opening_mrr ELSE 0 END AS churned_mrr,
           CASE WHEN cm.opening_mrr = 0 AND cm.closing_mrr > 0 AND cm.mi > cm.first_mrr_mi THEN cm.closing_mrr ELSE 0 END AS reactivation_mrr
    FROM customer_months cm
)
SELECT mv.customer_id,
       make_date(mv.mi / 12, mv.mi %% 12 + 1, 1)                     AS month,
       c.vendor_category,
       c.country,
       c.acquisition_channel,
       date_trunc('month', c.signed_up_at AT TIME ZONE 'UTC')::date AS signup_month,
       mv.opening_mrr,
       mv.new_mrr,
       mv.expansion_mrr,
       mv.contraction_mrr,
       mv.churned_mrr,
       mv.reactivation_mrr,
       mv.closing_mrr,
       CASE WHEN mv.new_mrr > 0 THEN 'new'
            WHEN mv.reactivation_mrr > 0 THEN 'reactivation'
            WHEN mv.expansion_mrr > 0 THEN 'expansion'
            WHEN mv.contraction_mrr > 0 THEN 'contraction'
            WHEN mv.churned_mrr > 0 THEN 'churn'
            WHEN mv.closing_mrr > 0 THEN 'unchanged'
            ELSE 'none' END                                         AS movement,
       mv.one_off_revenue
FROM movements mv
JOIN ltv.customers c USING (customer_id)
$query$, format(v_chosen, 's'), format(v_chosen, 'e'))
USING p_as_of, p_customer_ids;
END;
$$;

COMMENT ON FUNCTION ltv.mrr_movement_rows(timestamptz, bigint[]) IS
    'Rows of ltv.mrr_movements (month-end MRR bridge per customer and month) computed from the raw tables as of a moment, for the customers named (NULL = all)';
