-- ltv.score_customers(as_of, fit_ids, customer_id, from_id, to_id): the LTV of every customer (or
-- one, or those with ids in [from_id, to_id]) as of a moment, from ltv.customer_history and a set
-- of fits — the active ones by default, or the fits named by p_fit_ids (a backtest's). Every LTV
-- figure in ltv_db comes from here.
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
-- For everyone (a million customers) the per-customer work is plain expressions, and every
-- costly model function runs once per distinct input: fit parameters are read from jsonb once
-- per segment (`fits`); the BG/NBD kernel once per (fit, x, T), the sBG quantities once per
-- (fit, paid periods, notice, rate) — both quantiles of every notice level in one pass
-- (ltv.sbg_payments_quantiles) — and joined to the customers on those inputs; Gamma-Gamma spend
-- and P(alive) are the formulas of ltv.gg_expected_spend and ltv.bgnbd_p_alive written out per
-- customer (same operations, same values; the functions check each fit's parameters once); the
-- Poisson quantiles are looked up with width_bucket in the steps of ltv.poisson_quantile_steps
-- (same values as ltv.poisson_quantile). No per-customer sorts or joins by customer id.

CREATE OR REPLACE FUNCTION ltv.score_customers(
    p_as_of       timestamptz DEFAULT now(),
    p_fit_ids     bigint[]    DEFAULT NULL,
    p_customer_id bigint      DEFAULT NULL,
    p_from_id     bigint      DEFAULT NULL,
    p_to_id       bigint      DEFAULT NULL)
RETURNS SETOF ltv.customer_ltv_result
LANGUAGE plpgsql STABLE  -- not parallel safe in general: see ltv.score_customer_range
-- everyone is the call that matters for plans around it (the snapshot's lookups hashed, not it)
ROWS 1000000
SET search_path = pg_catalog, ltv
SET jit = off
-- Many customers: planned for the call, without nested loops — the CTEs over
-- ltv.customer_history are estimated at 1-1,000 rows, and a nested loop over ~700,000 distinct
-- inputs at a million customers did not finish in 4 minutes — and with memory for its hash
-- tables of a million rows. SET clauses, not set_config, so that a parallel worker may run it.
SET plan_cache_mode = force_custom_plan
SET enable_nestloop = off
SET work_mem = '256MB'
AS $$
BEGIN
-- One customer (ltv.customer_ltv): the plan made once per session (planning this query costs
-- ~6 ms, more than running it for one customer); restored on return by the SET clauses.
IF p_customer_id IS NOT NULL THEN
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
    PERFORM set_config('enable_nestloop', 'on', true);
    PERFORM set_config('work_mem', '4MB', true);
END IF;
RETURN QUERY
WITH
settings AS (
    SELECT s.*,
           -- one-off purchases are discounted at the midpoints of the thirds of the horizon
           power(1 + s.rate_month, -s.horizon / 6.0) AS discount_1,
           power(1 + s.rate_month, -s.horizon / 2.0) AS discount_2,
           power(1 + s.rate_month, -5 * s.horizon / 6.0) AS discount_3
    FROM (SELECT margin_subscription::float8 AS margin_sub,
                 margin_one_off::float8      AS margin_one,
                 horizon_months              AS horizon,
                 annual_discount_rate::float8 AS rate_year,
                 ltv.monthly_discount_rate()  AS rate_month
          FROM ltv.settings
          OFFSET 0) s  -- one call of ltv.monthly_discount_rate, not four
),
fits AS MATERIALIZED (
    -- the fits serving each segment, their parameters read from jsonb here, once per segment
    -- (jsonb_to_record: one pass over each object, the notice CDF straight into an array)
    SELECT f.vendor_category, f.billing_interval, f.sbg_segment, f.bgnbd_segment, f.bg_fit_id,
           sp.alpha AS sbg_alpha, sp.beta AS sbg_beta, sp.notice_cdf,  -- notice_cdf NULL without one
           gp.p AS gg_p, gp.q AS gg_q, gp.v AS gg_v,
           -- the population mean spend p v / (q - 1); unusable parameters (q <= 1, ...) get
           -- ltv.gg_expected_spend's error
           CASE WHEN f.gg IS NULL THEN NULL
                WHEN gp.p > 0 AND gp.v > 0 AND gp.q > 1 AND gp.p < 'Infinity' AND gp.v < 'Infinity' AND gp.q < 'Infinity'
                THEN gp.p * gp.v / (gp.q - 1)
                ELSE ltv.gg_expected_spend(gp.p, gp.q, gp.v, 0, NULL) END AS gg_population_mean
    FROM ltv.segment_fits(p_fit_ids) f
    LEFT JOIN LATERAL jsonb_to_record(f.sbg) AS sp(alpha float8, beta float8, notice_cdf float8[]) ON true
    LEFT JOIN LATERAL jsonb_to_record(f.gg) AS gp(p float8, q float8, v float8) ON true
    -- one customer (ltv.customer_ltv): its own category's segments only (3 rows, not 30)
    WHERE p_customer_id IS NULL
       OR f.vendor_category = (SELECT c.vendor_category FROM ltv.customers c WHERE c.customer_id = p_customer_id)
),
scored AS (
    -- every customer with its fits and the model inputs the distinct evaluations below key on;
    -- only the columns used below (a million rows are materialized here and again below)
    SELECT h.customer_id, h.vendor_category, h.country, h.acquisition_channel, h.signed_up_at,
           h.subscription_status, h.billing_interval, h.net_revenue, h.realised_margin, h.current_mrr,
           h.x, h.paid_periods,
           f.sbg_segment, f.bgnbd_segment, f.bg_fit_id, f.sbg_alpha, f.sbg_beta,
           (h.subscription_status = 'active' AND h.paid_periods >= 1) AS renews,
           -- F(part of the current period gone), from the fit's notice CDF on a 5 % grid; 0 = no data
           coalesce(f.notice_cdf[round(20 * ltv.billing_period_elapsed(
                        h.billing_interval, h.subscription_started, h.paid_periods, p_as_of))::integer + 1],
                    0) AS notice,
           coalesce(h.period_amount, 0)::float8 * s.margin_sub AS margin_per_period,
           CASE h.billing_interval WHEN 'year' THEN s.rate_year ELSE s.rate_month END AS rate,
           CASE h.billing_interval WHEN 'year' THEN 12 ELSE 1 END AS months_per_period,
           -- recency and age to whole days: the data are daily, and identical inputs are then
           -- evaluated once however many customers share them
           round(h.t_x * 30.4375) / 30.4375 AS t_x_days,
           round(h.t_cal * 30.4375) / 30.4375 AS t_cal_days,
           -- Gamma-Gamma E[spend | x, m̄] = p (v + x m̄) / (p x + q - 1), as ltv.gg_expected_spend
           CASE WHEN f.gg_p IS NULL THEN NULL
                WHEN h.x = 0 THEN f.gg_population_mean
                ELSE f.gg_p * (f.gg_v + h.x * coalesce(h.mean_one_off, 0)) / (f.gg_p * h.x + f.gg_q - 1) END AS spend
    FROM ltv.customer_history(p_as_of, p_customer_id, p_from_id, p_to_id) h
    CROSS JOIN settings s
    LEFT JOIN fits f
      ON f.vendor_category = h.vendor_category AND coalesce(f.billing_interval, '') = coalesce(h.billing_interval, '')
),
recurring_distinct AS (
    -- the sBG quantities depend only on (fit, paid periods, notice, rate): evaluate each once
    SELECT DISTINCT c.sbg_alpha AS alpha, c.sbg_beta AS beta, c.paid_periods, c.notice, c.rate, c.months_per_period
    FROM scored c WHERE c.renews AND c.sbg_alpha IS NOT NULL
),
derl_series AS MATERIALIZED (
    -- DERL depends on (fit, renewals, rate): one series per (fit, rate) covers every renewal count
    SELECT d.alpha, d.beta, d.rate, min(d.paid_periods) - 1 AS from_renewals,
           ltv.sbg_derl_series(d.alpha, d.beta, min(d.paid_periods) - 1, max(d.paid_periods) - 1, d.rate) AS derl
    FROM recurring_distinct d
    GROUP BY d.alpha, d.beta, d.rate
),
recurring_norms AS MATERIALIZED (
    -- no notice yet scales every P(K >= k) by 1 / norm: expected values divide by it, and the
    -- q-quantile of K is the plain one at 1 - (1 - q) * norm
    SELECT d.*, ltv.sbg_notice_norm(d.alpha, d.beta, d.paid_periods, d.notice) AS norm
    FROM recurring_distinct d
),
recurring_quantiles AS MATERIALIZED (
    -- the 10th and 90th percentiles of K for every notice level of one (fit, paid periods) in
    -- one pass over its P(K >= k) (ltv.sbg_payments_quantiles: the values of sbg_payments_quantile)
    SELECT g.alpha, g.beta, g.paid_periods, g.qs, ltv.sbg_payments_quantiles(g.alpha, g.beta, g.paid_periods, g.qs) AS ks
    FROM (SELECT n.alpha, n.beta, n.paid_periods, array_agg(DISTINCT v.q) AS qs
          FROM recurring_norms n
          CROSS JOIN LATERAL (VALUES (1 - 0.9 * n.norm), (1 - 0.1 * n.norm)) AS v(q)
          GROUP BY n.alpha, n.beta, n.paid_periods) g
),
recurring_evaluated AS MATERIALIZED (
    SELECT n.*,
           ds.derl[n.paid_periods - ds.from_renewals] / n.norm AS derl,  -- renewals = paid periods - 1
           ltv.annuity_factor(rq.ks[array_position(rq.qs, 1 - 0.9 * n.norm)], n.rate) AS annuity_low,
           ltv.annuity_factor(rq.ks[array_position(rq.qs, 1 - 0.1 * n.norm)], n.rate) AS annuity_high,
           n.months_per_period * ltv.sbg_expected_payments(n.alpha, n.beta, n.paid_periods, s.horizon / n.months_per_period)
               / n.norm AS months
    FROM recurring_norms n
    JOIN derl_series ds ON ds.alpha = n.alpha AND ds.beta = n.beta AND ds.rate = n.rate
    JOIN recurring_quantiles rq ON rq.alpha = n.alpha AND rq.beta = n.beta AND rq.paid_periods = n.paid_periods
    CROSS JOIN settings s
),
bgnbd_fits AS MATERIALIZED (
    -- per BG/NBD fit in use: its parameters and its seasonal weights for the thirds of the horizon
    SELECT f.fit_id AS bg_fit_id, p.r, p.alpha, p.a, p.b,
           w.season[1] AS w1, w.season[2] AS w2, w.season[3] AS w3,
           -- raises ltv.bgnbd_p_alive's error for unusable parameters, once per fit
           ltv.bgnbd_p_alive(p.r, p.alpha, p.a, p.b, 0, 0, 0) AS checked
    FROM ltv.model_fits f
    CROSS JOIN settings s
    CROSS JOIN LATERAL jsonb_to_record(f.params) AS p(r float8, alpha float8, a float8, b float8)
    CROSS JOIN LATERAL (SELECT ltv.season_thirds(f.params, p_as_of, s.horizon) AS season) w
    -- the fits serving a segment in `fits` (not a pass over every customer): for one customer,
    -- its category's only
    WHERE f.fit_id IN (SELECT g.bg_fit_id FROM fits g)
),
one_off_kernel AS MATERIALIZED (
    -- E[X(t) | x, t_x, T] = E[X(t) | alive at T] × P(alive | x, t_x, T), and the first factor
    -- (the ₂F₁ work of ltv.bgnbd_expected_purchases_kernels) depends on x and T only: evaluated once
    -- per distinct (fit, x, T) — half as many as the customers at a million — for the three
    -- horizons in one call (fenced, so it runs once), and the cheap P(alive) per customer below
    SELECT e.bg_fit_id, e.x, e.t_cal, e.ks[1] AS k1, e.ks[2] AS k2, e.ks[3] AS k3
    FROM (SELECT k.bg_fit_id, k.x, k.t_cal,
                 ltv.bgnbd_expected_purchases_kernels(f.r, f.alpha, f.a, f.b, k.x, k.t_cal,
                                                      ARRAY[s.horizon / 3.0, 2 * s.horizon / 3.0, s.horizon]) AS ks
          FROM (SELECT DISTINCT c.bg_fit_id, c.x, c.t_cal_days AS t_cal FROM scored c WHERE c.bg_fit_id IS NOT NULL) k
          JOIN bgnbd_fits f USING (bg_fit_id)
          CROSS JOIN settings s
          OFFSET 0) e
),
customer_one_off AS MATERIALIZED (
    -- every customer with its kernel row, P(alive | x, t_x, T) as ltv.bgnbd_p_alive computes it
    -- (1 / (1 + exp(ld)), 1 when x = 0; NULL without a fit) and the cumulative expected purchases
    -- at the thirds of the horizon, each third scaled by its season. Per customer, not per
    -- distinct (fit, x, t_x, T): at a million customers those are 93 % as many, and grouping
    -- them and joining back cost more than computing P(alive) again. Each level is fenced
    -- (OFFSET 0) so a row computes its logarithms and P(alive) once.
    SELECT a.customer_id, a.vendor_category, a.country, a.acquisition_channel, a.signed_up_at,
           a.subscription_status, a.billing_interval, a.sbg_segment, a.bgnbd_segment,
           a.net_revenue, a.realised_margin, a.current_mrr, a.renews, a.margin_per_period, a.spend,
           a.sbg_alpha, a.sbg_beta, a.paid_periods, a.notice, a.rate, a.p_alive,
           a.k1 * a.p_alive * a.w1 AS e1,
           (a.k1 * a.w1 + (a.k2 - a.k1) * a.w2) * a.p_alive AS e2,
           (a.k1 * a.w1 + (a.k2 - a.k1) * a.w2 + (a.k3 - a.k2) * a.w3) * a.p_alive AS e3
    FROM (SELECT l.*,
                 CASE WHEN l.k1 IS NULL THEN NULL::float8
                      WHEN l.x = 0 THEN 1::float8
                      WHEN l.ld > 745 THEN 0::float8
                      WHEN l.ld > 0 THEN exp(-l.ld) / (1 + exp(-l.ld))
                      ELSE 1 / (1 + exp(l.ld)) END AS p_alive
          FROM (SELECT c.*, f.w1, f.w2, f.w3, k.k1, k.k2, k.k3,
                       CASE WHEN c.x > 0 THEN
                           ln(f.a) - ln(f.b + c.x - 1) + (f.r + c.x) * (ln(f.alpha + c.t_cal_days) - ln(f.alpha + c.t_x_days))
                       END AS ld
                FROM scored c
                LEFT JOIN bgnbd_fits f ON f.bg_fit_id = c.bg_fit_id
                LEFT JOIN one_off_kernel k ON k.bg_fit_id = c.bg_fit_id AND k.x = c.x AND k.t_cal = c.t_cal_days
                OFFSET 0) l
          OFFSET 0) a
    OFFSET 0
),
poisson_steps AS MATERIALIZED (
    -- where the 10th and 90th percentiles of a Poisson count step up, for every mean in use
    -- (everyone only: for one customer the two direct quantiles are cheaper)
    SELECT CASE WHEN p_customer_id IS NULL THEN ltv.poisson_quantile_steps(0.1, coalesce(max(o.e3), 0)) END AS low,
           CASE WHEN p_customer_id IS NULL THEN ltv.poisson_quantile_steps(0.9, coalesce(max(o.e3), 0)) END AS high
    FROM customer_one_off o
),
customer_values AS (
    -- OFFSET 0 keeps this a subquery: each row's values are computed once, not re-expanded into
    -- every expression that uses them above
    SELECT c.customer_id, c.vendor_category, c.country, c.acquisition_channel, c.signed_up_at,
           c.subscription_status, c.billing_interval, c.sbg_segment, c.bgnbd_segment,
           c.net_revenue, c.realised_margin, c.current_mrr,
           CASE WHEN NOT c.renews THEN 0 ELSE c.margin_per_period * r.derl END AS recurring_expected,
           CASE WHEN NOT c.renews THEN 0 ELSE c.margin_per_period * r.annuity_low END AS recurring_low,
           CASE WHEN NOT c.renews THEN 0 ELSE c.margin_per_period * r.annuity_high END AS recurring_high,
           CASE WHEN NOT c.renews THEN 0 ELSE r.months END AS recurring_months,
           c.p_alive, c.e3,
           CASE WHEN c.e3 IS NULL THEN NULL
                WHEN p.low IS NULL OR c.e3 > 500 THEN ltv.poisson_quantile(c.e3, 0.1)
                ELSE width_bucket(c.e3, p.low) END AS purchases_low,
           CASE WHEN c.e3 IS NULL THEN NULL
                WHEN p.high IS NULL OR c.e3 > 500 THEN ltv.poisson_quantile(c.e3, 0.9)
                ELSE width_bucket(c.e3, p.high) END AS purchases_high,
           coalesce(c.spend, 0) * s.margin_one AS margin_per_purchase,
           -- expected purchases of each third of the horizon, discounted at its midpoint
           c.e1 * s.discount_1 + (c.e2 - c.e1) * s.discount_2 + (c.e3 - c.e2) * s.discount_3 AS discounted_purchases
    FROM customer_one_off c
    CROSS JOIN settings s
    CROSS JOIN poisson_steps p
    -- NULL (unknown), not 0, for an active subscriber whose segment has no usable fit
    LEFT JOIN recurring_evaluated r
      ON r.alpha = c.sbg_alpha AND r.beta = c.sbg_beta AND r.paid_periods = c.paid_periods
     AND r.notice = c.notice AND r.rate = c.rate
    OFFSET 0
),
customer_money AS (
    -- float8 → numeric parses the float's text: ~0.2 µs, six times per customer. Most parts are
    -- 0 (no subscription: every recurring part; a low purchase quantile of 0), and for 0 the
    -- CASE gives the very value and scale of the cast (0) or of the rounding (0.0000)
    SELECT v.*,
           CASE WHEN v.recurring_expected = 0 THEN 0.0000 ELSE round(v.recurring_expected::numeric, 4) END
               AS recurring_rounded,
           CASE WHEN v.one_off_expected = 0 THEN 0.0000 ELSE round(v.one_off_expected::numeric, 4) END
               AS one_off_rounded,
           CASE WHEN v.recurring_low = 0 THEN 0::numeric ELSE v.recurring_low::numeric END AS recurring_low_exact,
           CASE WHEN v.recurring_high = 0 THEN 0::numeric ELSE v.recurring_high::numeric END AS recurring_high_exact,
           CASE WHEN v.one_off_low = 0 THEN 0::numeric ELSE v.one_off_low::numeric END AS one_off_low_exact,
           CASE WHEN v.one_off_high = 0 THEN 0::numeric ELSE v.one_off_high::numeric END AS one_off_high_exact
    FROM (SELECT w.*,
                 coalesce(w.margin_per_purchase * w.discounted_purchases, 0) AS one_off_expected,
                 w.discounted_margin * coalesce(w.purchases_low, 0) AS one_off_low,
                 w.discounted_margin * coalesce(w.purchases_high, 0) AS one_off_high
          FROM (SELECT u.*,
                       -- average discount over the horizon, applied to the Poisson quantiles
                       u.margin_per_purchase * CASE WHEN u.e3 > 0 THEN u.discounted_purchases / u.e3 ELSE 1 END
                           AS discounted_margin
                FROM customer_values u
                OFFSET 0) w
          OFFSET 0) v  -- fenced: each part computed once, not re-expanded into the CASEs above
    OFFSET 0
)
SELECT m.customer_id, m.vendor_category, m.country, m.acquisition_channel, m.signed_up_at,
       m.subscription_status, m.billing_interval, m.sbg_segment, m.bgnbd_segment,
       m.net_revenue, m.realised_margin, m.current_mrr,
       m.recurring_rounded,
       m.one_off_rounded,
       -- the sum of the rounded parts, so the parts always add up to the total
       m.realised_margin + m.recurring_rounded + m.one_off_rounded,
       m.p_alive,
       m.e3,
       m.recurring_months,
       round(m.realised_margin + m.recurring_low_exact + m.one_off_low_exact, 4),
       round(m.realised_margin + m.recurring_high_exact + m.one_off_high_exact, 4)
FROM customer_money m;
END;
$$;

COMMENT ON FUNCTION ltv.score_customers(timestamptz, bigint[], bigint, bigint, bigint) IS
    'LTV of every customer (or one) as of a moment: realised margin + sBG recurring + BG/NBD×Gamma-Gamma one-off, with an 80% interval';
