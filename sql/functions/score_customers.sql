-- ltv.score_customers(as_of, fit_ids, customer_id): the LTV of every customer (or one) as of a
-- moment, from ltv.customer_history and a set of fits — the active ones by default, or the
-- fits named by p_fit_ids (a backtest's). Every LTV figure in ltv_db comes from here.
--
-- All money in base-currency major units; values are gross margin (revenue × settings margin).
--   realised_margin      margin on net revenue to date (recurring and one-off margins apart)
--   predicted_recurring  active subscriptions only: last period charge × subscription margin ×
--                        sBG DERL(renewals = paid − 1) at the period discount rate (monthly
--                        rate for monthly plans, the annual rate for annual plans), divided by
--                        P(no cancellation notice yet) for the part of the current period gone
--                        (sbg_notice_norm.sql; elapsed to the nearest 5 %). A known
--                        cancellation means no further payments. NULL when the subscription
--                        is active but neither its segment nor the parent has an active fit.
--   predicted_one_off    one-off margin × Gamma-Gamma E[spend | x, m̄] × BG/NBD expected
--                        purchases over settings.horizon_months, discounted: the horizon is cut
--                        in three equal parts, each part's expected purchases are scaled by the
--                        fit's seasonal index averaged over the part (one_off_season_index.sql;
--                        1 without one) and discounted at its midpoint.
--   p_alive              BG/NBD P(alive) for the one-off purchase process.
--   expected_remaining_months  expected further paid months of service within the horizon.
--   ltv_low / ltv_high   an 80 % interval: realised margin plus the 10th / 90th percentile of
--                        the recurring value (exact sBG posterior-predictive quantiles of the
--                        number of further payments, discounted) plus the 10th / 90th
--                        percentile of the one-off value (Poisson quantiles of the expected
--                        purchase count — an approximation that ignores parameter uncertainty).
-- Segments fall back to their parent fit ('all/<interval>', 'all') when they have none.
--
-- Speed: PL/pgSQL so a session plans the query once and reuses it for single customers (a call is
-- then a few milliseconds: ltv.customer_history reads the live statistics); no JIT — the
-- planner cannot see how few rows ltv.customer_history returns, and compiling this query
-- costs seconds while the work is in the model functions that JIT cannot speed up.

CREATE OR REPLACE FUNCTION ltv.score_customers(
    p_as_of       timestamptz DEFAULT now(),
    p_fit_ids     bigint[]    DEFAULT NULL,
    p_customer_id bigint      DEFAULT NULL)
RETURNS SETOF ltv.customer_ltv_result
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, ltv
SET jit = off
SET plan_cache_mode = auto  -- both set per call below; restored on return
SET enable_nestloop = on
AS $$
BEGIN
-- One customer (ltv.customer_ltv): the plan made once per session (planning this query costs
-- ~6 ms, more than running it for one customer). Everyone: planned for the call, and without
-- nested loops — the CTEs over ltv.customer_history are estimated at 1-1,000 rows, and a
-- nested loop over ~700,000 distinct inputs at a million customers did not finish in 4 minutes.
PERFORM set_config('plan_cache_mode',
                   CASE WHEN p_customer_id IS NULL THEN 'force_custom_plan' ELSE 'force_generic_plan' END, true);
PERFORM set_config('enable_nestloop', CASE WHEN p_customer_id IS NULL THEN 'off' ELSE 'on' END, true);
RETURN QUERY
WITH
settings AS (
    SELECT margin_subscription::float8 AS margin_sub,
           margin_one_off::float8      AS margin_one,
           horizon_months              AS horizon,
           annual_discount_rate::float8 AS rate_year,
           ltv.monthly_discount_rate()  AS rate_month
    FROM ltv.settings
),
history AS (
    SELECT * FROM ltv.customer_history(p_as_of, p_customer_id)
),
with_fits AS (
    SELECT h.*, f.sbg_segment, f.sbg, f.bgnbd_segment, f.bg, f.bg_fit_id, f.gg
    FROM history h
    LEFT JOIN ltv.segment_fits(p_fit_ids) f
      ON f.vendor_category = h.vendor_category AND coalesce(f.billing_interval, '') = coalesce(h.billing_interval, '')
),
recurring AS (
    SELECT w.customer_id,
           (w.subscription_status = 'active' AND w.paid_periods >= 1) AS renews,
           (w.sbg->>'alpha')::float8 AS alpha, (w.sbg->>'beta')::float8 AS beta,
           w.paid_periods,
           -- F(part of the current period gone), from the fit's notice CDF on a 5 % grid; 0 = no data
           coalesce((w.sbg->'notice_cdf'->>round(20 * ltv.billing_period_elapsed(
                         w.billing_interval, w.subscription_started, w.paid_periods, p_as_of))::integer)::float8,
                    0) AS notice,
           coalesce(w.period_amount, 0)::float8 * s.margin_sub AS margin_per_period,
           CASE w.billing_interval WHEN 'year' THEN s.rate_year ELSE s.rate_month END AS rate,
           CASE w.billing_interval WHEN 'year' THEN 12 ELSE 1 END AS months_per_period
    FROM with_fits w CROSS JOIN settings s
),
recurring_distinct AS (
    -- the sBG quantities depend only on (fit, paid periods, notice, rate): evaluate each once
    SELECT DISTINCT r.alpha, r.beta, r.paid_periods, r.notice, r.rate, r.months_per_period
    FROM recurring r WHERE r.renews AND r.alpha IS NOT NULL
),
derl_series AS MATERIALIZED (
    -- DERL depends on (fit, renewals, rate): one series per (fit, rate) covers every renewal count
    SELECT r.alpha, r.beta, r.rate, min(r.paid_periods) - 1 AS from_renewals,
           ltv.sbg_derl_series(r.alpha, r.beta, min(r.paid_periods) - 1, max(r.paid_periods) - 1, r.rate) AS derl
    FROM recurring r WHERE r.renews AND r.alpha IS NOT NULL
    GROUP BY r.alpha, r.beta, r.rate
),
recurring_evaluated AS MATERIALIZED (
    -- no notice yet scales every P(K >= k) by 1 / norm: expected values divide by it, and the
    -- q-quantile of K is the plain one at 1 - (1 - q) * norm
    SELECT d.*,
           ds.derl[d.paid_periods - ds.from_renewals] / n.norm AS derl,  -- renewals = paid periods - 1
           ltv.annuity_factor(ltv.sbg_payments_quantile(d.alpha, d.beta, d.paid_periods, 1 - 0.9 * n.norm), d.rate)
               AS annuity_low,
           ltv.annuity_factor(ltv.sbg_payments_quantile(d.alpha, d.beta, d.paid_periods, 1 - 0.1 * n.norm), d.rate)
               AS annuity_high,
           d.months_per_period * ltv.sbg_expected_payments(d.alpha, d.beta, d.paid_periods, s.horizon / d.months_per_period)
               / n.norm AS months
    FROM recurring_distinct d
    JOIN derl_series ds ON ds.alpha = d.alpha AND ds.beta = d.beta AND ds.rate = d.rate
    CROSS JOIN settings s
    CROSS JOIN LATERAL (SELECT ltv.sbg_notice_norm(d.alpha, d.beta, d.paid_periods, d.notice) AS norm) n
),
recurring_value AS (
    -- NULL (unknown), not 0, for an active subscriber whose segment has no usable fit
    SELECT r.customer_id,
           CASE WHEN NOT r.renews THEN 0 ELSE r.margin_per_period * e.derl END AS expected,
           CASE WHEN NOT r.renews THEN 0 ELSE r.margin_per_period * e.annuity_low END AS low,
           CASE WHEN NOT r.renews THEN 0 ELSE r.margin_per_period * e.annuity_high END AS high,
           CASE WHEN NOT r.renews THEN 0 ELSE e.months END AS months
    FROM recurring r
    LEFT JOIN recurring_evaluated e
      ON e.alpha = r.alpha AND e.beta = r.beta AND e.paid_periods = r.paid_periods AND e.notice = r.notice
     AND e.rate = r.rate
),
one_off AS (
    -- recency and age to whole days: the data are daily, and identical inputs are then
    -- evaluated once (one_off_distinct) however many customers share them
    SELECT w.customer_id, w.bg_fit_id, w.x,
           round(w.t_x * 30.4375) / 30.4375 AS t_x,
           round(w.t_cal * 30.4375) / 30.4375 AS t_cal,
           CASE WHEN w.gg IS NULL THEN NULL
                ELSE ltv.gg_expected_spend((w.gg->>'p')::float8, (w.gg->>'q')::float8, (w.gg->>'v')::float8,
                                           w.x, coalesce(w.mean_one_off, 0)) END AS spend
    FROM with_fits w
),
one_off_distinct AS (
    SELECT DISTINCT o.bg_fit_id, o.x, o.t_x, o.t_cal FROM one_off o WHERE o.bg_fit_id IS NOT NULL
),
bgnbd_fits AS MATERIALIZED (
    -- per BG/NBD fit in use: its parameters and its seasonal weights for the thirds of the horizon
    SELECT f.fit_id AS bg_fit_id,
           (f.params->>'r')::float8 AS r, (f.params->>'alpha')::float8 AS alpha,
           (f.params->>'a')::float8 AS a, (f.params->>'b')::float8 AS b,
           w.season[1] AS w1, w.season[2] AS w2, w.season[3] AS w3
    FROM ltv.model_fits f
    CROSS JOIN settings s
    CROSS JOIN LATERAL (SELECT ltv.season_thirds(f.params, p_as_of, s.horizon) AS season) w
    WHERE f.fit_id IN (SELECT d.bg_fit_id FROM one_off_distinct d)
),
one_off_kernel AS MATERIALIZED (
    -- E[X(t) | x, t_x, T] = E[X(t) | alive at T] × P(alive | x, t_x, T), and the first factor
    -- (ltv.bgnbd_expected_purchases_kernel, the ₂F₁ work) depends on x and T only: evaluated once
    -- per distinct (fit, x, T) — several times fewer than the distinct (fit, x, t_x, T) — and
    -- the cheap P(alive) once per distinct (fit, x, t_x, T) below
    SELECT k.bg_fit_id, k.x, k.t_cal,
           ltv.bgnbd_expected_purchases_kernel(f.r, f.alpha, f.a, f.b, k.x, k.t_cal, s.horizon / 3.0) AS k1,
           ltv.bgnbd_expected_purchases_kernel(f.r, f.alpha, f.a, f.b, k.x, k.t_cal, 2 * s.horizon / 3.0) AS k2,
           ltv.bgnbd_expected_purchases_kernel(f.r, f.alpha, f.a, f.b, k.x, k.t_cal, s.horizon) AS k3
    FROM (SELECT DISTINCT d.bg_fit_id, d.x, d.t_cal FROM one_off_distinct d) k
    JOIN bgnbd_fits f USING (bg_fit_id)
    CROSS JOIN settings s
),
one_off_evaluated AS MATERIALIZED (
    -- cumulative expected purchases at the thirds of the horizon, each third scaled by its season
    SELECT d.bg_fit_id, d.x, d.t_x, d.t_cal, a.p_alive,
           k.k1 * a.p_alive * f.w1 AS e1,
           (k.k1 * f.w1 + (k.k2 - k.k1) * f.w2) * a.p_alive AS e2,
           (k.k1 * f.w1 + (k.k2 - k.k1) * f.w2 + (k.k3 - k.k2) * f.w3) * a.p_alive AS e3
    FROM one_off_distinct d
    JOIN bgnbd_fits f USING (bg_fit_id)
    JOIN one_off_kernel k USING (bg_fit_id, x, t_cal)
    CROSS JOIN LATERAL (SELECT ltv.bgnbd_p_alive(f.r, f.alpha, f.a, f.b, d.x, d.t_x, d.t_cal) AS p_alive) a
),
one_off_quantiles AS MATERIALIZED (
    SELECT e.*, ltv.poisson_quantile(e.e3, 0.1) AS purchases_low, ltv.poisson_quantile(e.e3, 0.9) AS purchases_high
    FROM one_off_evaluated e
),
one_off_purchases AS (
    SELECT o.customer_id, o.spend, e.p_alive, e.e1, e.e2, e.e3, e.purchases_low, e.purchases_high,
           s.horizon, s.rate_month, s.margin_one
    FROM one_off o
    CROSS JOIN settings s
    LEFT JOIN one_off_quantiles e USING (bg_fit_id, x, t_x, t_cal)
),
one_off_value AS (
    SELECT p.customer_id, p.p_alive, p.e3 AS expected_purchases, p.purchases_low, p.purchases_high,
           coalesce(p.spend, 0) * p.margin_one AS margin_per_purchase,
           coalesce(p.spend, 0) * p.margin_one * (
               p.e1 * power(1 + p.rate_month, -p.horizon / 6.0)
             + (p.e2 - p.e1) * power(1 + p.rate_month, -p.horizon / 2.0)
             + (p.e3 - p.e2) * power(1 + p.rate_month, -5 * p.horizon / 6.0)) AS expected,
           -- average discount over the horizon, applied to the Poisson quantiles
           CASE WHEN p.e3 > 0 THEN (p.e1 * power(1 + p.rate_month, -p.horizon / 6.0)
                                  + (p.e2 - p.e1) * power(1 + p.rate_month, -p.horizon / 2.0)
                                  + (p.e3 - p.e2) * power(1 + p.rate_month, -5 * p.horizon / 6.0)) / p.e3
                ELSE 1 END AS mean_discount
    FROM one_off_purchases p
)
SELECT w.customer_id, w.vendor_category, w.country, w.acquisition_channel, w.signed_up_at,
       w.subscription_status, w.billing_interval, w.sbg_segment, w.bgnbd_segment,
       w.net_revenue, w.realised_margin, w.current_mrr,
       round(rv.expected::numeric, 4),
       round(coalesce(ov.expected, 0)::numeric, 4),
       -- the sum of the rounded parts, so the parts always add up to the total
       w.realised_margin + round(rv.expected::numeric, 4) + round(coalesce(ov.expected, 0)::numeric, 4),
       ov.p_alive,
       ov.expected_purchases,
       rv.months,
       round(w.realised_margin + rv.low::numeric
             + (ov.margin_per_purchase * ov.mean_discount * coalesce(ov.purchases_low, 0))::numeric, 4),
       round(w.realised_margin + rv.high::numeric
             + (ov.margin_per_purchase * ov.mean_discount * coalesce(ov.purchases_high, 0))::numeric, 4)
FROM with_fits w
JOIN recurring_value rv USING (customer_id)
JOIN one_off_value ov USING (customer_id);
END;
$$;

COMMENT ON FUNCTION ltv.score_customers(timestamptz, bigint[], bigint) IS
    'LTV of every customer (or one) as of a moment: realised margin + sBG recurring + BG/NBD×Gamma-Gamma one-off, with an 80% interval';
