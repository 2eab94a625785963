-- ltv.backtest_predictions(cutoff, horizon_months, fit_ids): for every customer signed up
-- before the cutoff, the net revenue the fits predict in (cutoff, cutoff + horizon] and what
-- actually happened. Predictions use only data before the cutoff:
--   recurring  active subscription: last charge × expected number of the charges due in the
--              window that the subscriber survives to pay (sBG posterior predictive, given no
--              cancellation notice so far: sbg_notice_norm.sql);
--   one-off    BG/NBD expected purchases over the window, each third of it scaled by the fit's
--              seasonal index averaged over that third (as ltv.score_customers does), ×
--              Gamma-Gamma expected spend;
--   each net of refunds, chargebacks and credits at the ratio of net to gross revenue seen for
--   that kind of revenue in the customer's vendor category in the 12 months before the cutoff.
-- Undiscounted and in revenue (not margin): it is compared with the revenue that landed.

CREATE OR REPLACE FUNCTION ltv.backtest_predictions(p_cutoff timestamptz, p_horizon_months integer, p_fit_ids bigint[])
RETURNS TABLE (
    customer_id          bigint,
    vendor_category      text,
    billing_interval     text,
    predicted_recurring  float8,
    predicted_one_off    float8,
    predicted            float8,
    actual_recurring     numeric,
    actual_one_off       numeric,
    actual               numeric,
    predicted_purchases  float8,
    actual_purchases     integer
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
AS $$
WITH
window_bounds AS (
    SELECT p_cutoff AS starts, p_cutoff + make_interval(months => p_horizon_months) AS ends,
           ltv.months_between(p_cutoff, p_cutoff + make_interval(months => p_horizon_months)) AS months
),
history AS (
    SELECT * FROM ltv.customer_history(p_cutoff)
),
net_to_gross AS (
    SELECT c.vendor_category,
           (e.subscription_id IS NOT NULL OR e.kind = 'subscription') AS is_recurring,
           sum(CASE WHEN e.kind IN ('subscription', 'one_off') THEN e.amount_base ELSE -e.amount_base END)
             / nullif(sum(e.amount_base) FILTER (WHERE e.kind IN ('subscription', 'one_off')), 0) AS ratio
    FROM ltv.revenue_events e
    JOIN ltv.customers c USING (customer_id)
    WHERE e.occurred_at >= p_cutoff - interval '12 months' AND e.occurred_at < p_cutoff
    GROUP BY 1, 2
),
with_fits AS (
    SELECT h.*, f.sbg, f.bg, f.gg
    FROM history h
    LEFT JOIN ltv.segment_fits(p_fit_ids) f
      ON f.vendor_category = h.vendor_category AND coalesce(f.billing_interval, '') = coalesce(h.billing_interval, '')
),
season_weights AS (  -- per BG/NBD fit in use: its seasonal weights for the thirds of the window
    SELECT DISTINCT ON (f.bg_fit_id) f.bg, ltv.season_thirds(f.bg, wb.starts, wb.months) AS season
    FROM ltv.segment_fits(p_fit_ids) f CROSS JOIN window_bounds wb
    WHERE f.bg IS NOT NULL
),
predicted AS (
    SELECT w.customer_id, w.vendor_category, w.billing_interval,
           CASE WHEN w.subscription_status = 'active' AND w.sbg IS NOT NULL AND w.paid_periods >= 1
                THEN w.period_amount::float8 * ltv.sbg_expected_payments(
                         (w.sbg->>'alpha')::float8, (w.sbg->>'beta')::float8, w.paid_periods,
                         ltv.billing_periods_started(w.billing_interval, w.subscription_started, wb.ends - interval '1 microsecond')
                         - ltv.billing_periods_started(w.billing_interval, w.subscription_started, wb.starts))
                     / ltv.sbg_notice_norm((w.sbg->>'alpha')::float8, (w.sbg->>'beta')::float8, w.paid_periods,
                           (w.sbg->'notice_cdf'->>round(20 * ltv.billing_period_elapsed(
                               w.billing_interval, w.subscription_started, w.paid_periods, wb.starts))::integer)::float8)
                ELSE 0 END AS gross_recurring,
           CASE WHEN w.bg IS NOT NULL
                THEN e.e1 * sw.season[1] + (e.e2 - e.e1) * sw.season[2] + (e.e3 - e.e2) * sw.season[3]
                ELSE 0 END AS purchases,
           CASE WHEN w.gg IS NOT NULL
                THEN ltv.gg_expected_spend((w.gg->>'p')::float8, (w.gg->>'q')::float8, (w.gg->>'v')::float8,
                                           w.x, coalesce(w.mean_one_off, 0))
                ELSE 0 END AS spend
    FROM with_fits w
    CROSS JOIN window_bounds wb
    CROSS JOIN LATERAL (SELECT (w.bg->>'r')::float8 AS r, (w.bg->>'alpha')::float8 AS alpha,
                               (w.bg->>'a')::float8 AS a, (w.bg->>'b')::float8 AS b) p
    -- cumulative expected purchases at the thirds of the window, in one call (OFFSET 0 keeps the
    -- planner from inlining the subquery and repeating it for each element); NULL without a fit
    CROSS JOIN LATERAL (
        SELECT m.e[1] AS e1, m.e[2] AS e2, m.e[3] AS e3
        FROM (SELECT ltv.bgnbd_expected_purchases_multi(p.r, p.alpha, p.a, p.b, w.x, w.t_x, w.t_cal,
                                                        ARRAY[wb.months / 3, 2 * wb.months / 3, wb.months]) AS e
              OFFSET 0) m) e
    LEFT JOIN season_weights sw ON sw.bg = w.bg
),
actuals AS (
    SELECT e.customer_id,
           sum(CASE WHEN e.kind IN ('subscription', 'one_off') THEN e.amount_base ELSE -e.amount_base END)
               FILTER (WHERE e.subscription_id IS NOT NULL OR e.kind = 'subscription') AS recurring,
           sum(CASE WHEN e.kind IN ('subscription', 'one_off') THEN e.amount_base ELSE -e.amount_base END)
               FILTER (WHERE e.subscription_id IS NULL AND e.kind <> 'subscription') AS one_off,
           count(DISTINCT (e.occurred_at AT TIME ZONE 'UTC')::date) FILTER (WHERE e.kind = 'one_off')::integer AS purchases
    FROM ltv.revenue_events e, window_bounds wb
    WHERE e.occurred_at >= wb.starts AND e.occurred_at < wb.ends
    GROUP BY e.customer_id
)
SELECT p.customer_id, p.vendor_category, p.billing_interval,
       p.gross_recurring * coalesce(rec.ratio, 1)::float8,
       p.purchases * p.spend * coalesce(one.ratio, 1)::float8,
       p.gross_recurring * coalesce(rec.ratio, 1)::float8 + p.purchases * p.spend * coalesce(one.ratio, 1)::float8,
       coalesce(a.recurring, 0),
       coalesce(a.one_off, 0),
       coalesce(a.recurring, 0) + coalesce(a.one_off, 0),
       p.purchases,
       coalesce(a.purchases, 0)
FROM predicted p
LEFT JOIN net_to_gross rec ON rec.vendor_category = p.vendor_category AND rec.is_recurring
LEFT JOIN net_to_gross one ON one.vendor_category = p.vendor_category AND NOT one.is_recurring
LEFT JOIN actuals a USING (customer_id)
$$;

COMMENT ON FUNCTION ltv.backtest_predictions(timestamptz, integer, bigint[]) IS
    'Per customer: revenue predicted in (cutoff, cutoff+horizon] by the given fits vs the revenue that landed';
