-- ltv.unit_economics: acquisition economics per channel and signup month, with rollups over
-- months and channels — spend, new customers, CAC, mean model LTV, formula LTV, LTV:CAC and
-- CAC payback. "Which channel pays back its acquisition cost fastest?"
--
-- Channel × month rows are ltv.channel_economics(now()) as it is (spend, CAC, formula LTV:CAC,
-- payback); mean model LTV is the mean total_ltv of the customers in ltv.customer_ltv_snapshot
-- (so it reads that view, refreshed first). Rollup rows (period 'all' and/or channel 'all')
-- apply channel_economics' definitions to summed spend and signups:
--   cac                 spend ÷ new customers
--   formula_ltv_to_cac  formula LTV (ltv.formula_ltv, the 'all' row for every channel) ÷ cac
--   cac_payback_months  cac ÷ (ARPA × subscription margin), ARPA from ltv.formula_ltv
-- A period with spend but no signups has CAC NULL; spend with no usable FX rate is NULL and
-- flagged by spend_unconverted. A channel-month with signups but no spend row has spend NULL.
--
-- DROP + CREATE, WITH NO DATA, and registration: see sql/views/customer_ltv_snapshot.sql.
-- CASCADE drops ltv.segment_ltv, which takes each customer's CAC from here.

DROP MATERIALIZED VIEW IF EXISTS ltv.unit_economics CASCADE;

CREATE MATERIALIZED VIEW ltv.unit_economics AS
WITH
settings AS (
    SELECT margin_subscription FROM ltv.settings
),
channel_months AS (
    SELECT * FROM ltv.channel_economics(now())
),
channel_formula AS (
    SELECT f.acquisition_channel, f.arpa, f.formula_ltv FROM ltv.formula_ltv(now()) f
),
spend_rollup AS (
    SELECT coalesce(cm.acquisition_channel, 'all')   AS acquisition_channel,
           cm.signup_month,
           GROUPING(cm.signup_month) = 1              AS all_months,
           sum(cm.new_customers)::bigint              AS new_customers,
           sum(cm.spend)                              AS spend,
           bool_or(cm.spend_unconverted)              AS spend_unconverted
    FROM channel_months cm
    GROUP BY GROUPING SETS ((cm.acquisition_channel, cm.signup_month), (cm.acquisition_channel),
                            (cm.signup_month), ())
),
model_ltv AS (
    SELECT coalesce(s.acquisition_channel, 'all')    AS acquisition_channel,
           s.signup_month,
           GROUPING(s.signup_month) = 1               AS all_months,
           avg(s.total_ltv)                           AS mean_model_ltv
    FROM ltv.customer_ltv_snapshot s
    GROUP BY GROUPING SETS ((s.acquisition_channel, s.signup_month), (s.acquisition_channel),
                            (s.signup_month), ())
),
economics AS (
    SELECT r.acquisition_channel, r.signup_month, r.all_months, r.new_customers, r.spend,
           r.spend_unconverted,
           r.spend / nullif(r.new_customers, 0)       AS cac,
           m.mean_model_ltv,
           f.formula_ltv,
           f.arpa,
           cm.cac                                     AS month_cac,
           cm.ltv_to_cac                              AS month_ltv_to_cac,
           cm.cac_payback_months                      AS month_payback
    FROM spend_rollup r
    LEFT JOIN model_ltv m
           ON m.acquisition_channel = r.acquisition_channel AND m.all_months = r.all_months
          AND m.signup_month IS NOT DISTINCT FROM r.signup_month
    LEFT JOIN channel_formula f ON f.acquisition_channel = r.acquisition_channel
    LEFT JOIN channel_months cm
           ON NOT r.all_months AND cm.acquisition_channel = r.acquisition_channel
          AND cm.signup_month = r.signup_month
)
SELECT e.acquisition_channel,
       CASE WHEN e.all_months THEN 'all' ELSE to_char(e.signup_month, 'YYYY-MM') END AS period,
       e.signup_month,
       e.new_customers,
       round(e.spend, 2)                                                             AS spend,
       e.spend_unconverted,
       coalesce(e.month_cac, round(e.cac, 2))                                        AS cac,
       round(e.mean_model_ltv, 2)                                                    AS mean_model_ltv,
       e.formula_ltv,
       e.arpa,
       round(e.mean_model_ltv / nullif(e.cac, 0), 2)                                 AS model_ltv_to_cac,
       coalesce(e.month_ltv_to_cac, round(e.formula_ltv / nullif(e.cac, 0), 2))      AS formula_ltv_to_cac,
       coalesce(e.month_payback, round(e.cac / nullif(e.arpa * st.margin_subscription, 0), 1)) AS cac_payback_months,
       now()                                                                         AS as_of
FROM economics e
CROSS JOIN settings st
WITH NO DATA;

CREATE UNIQUE INDEX unit_economics_key_idx ON ltv.unit_economics (acquisition_channel, period);

COMMENT ON MATERIALIZED VIEW ltv.unit_economics IS
    'Acquisition economics by channel and signup month, with rollups (period ''all'' = every month, acquisition_channel ''all'' = every channel): spend, new customers, CAC, mean model LTV, formula LTV, LTV:CAC, CAC payback months. Money in base-currency major units; LTVs are gross margin. Month rows come from ltv.channel_economics.';
COMMENT ON COLUMN ltv.unit_economics.acquisition_channel IS 'Acquisition channel, or ''all'' for every channel together';
COMMENT ON COLUMN ltv.unit_economics.period IS 'Signup month as YYYY-MM, or ''all'' for every month together (unique with acquisition_channel)';
COMMENT ON COLUMN ltv.unit_economics.signup_month IS 'First day of the signup month (UTC); NULL on period ''all'' rows';
COMMENT ON COLUMN ltv.unit_economics.new_customers IS 'Customers acquired (signed up) through the channel in the period';
COMMENT ON COLUMN ltv.unit_economics.spend IS 'Acquisition spend in the period, converted to the base currency at the month''s first-day FX rate; NULL = no spend recorded';
COMMENT ON COLUMN ltv.unit_economics.spend_unconverted IS 'True when some spend had no usable FX rate and is missing from spend';
COMMENT ON COLUMN ltv.unit_economics.cac IS 'Customer acquisition cost: spend ÷ new_customers; NULL when there were no signups or no spend';
COMMENT ON COLUMN ltv.unit_economics.mean_model_ltv IS 'Mean combined model LTV (customer_ltv_snapshot.total_ltv) of the customers acquired in the period';
COMMENT ON COLUMN ltv.unit_economics.formula_ltv IS 'Formula LTV of the channel (ARPA × margin ÷ trailing six-month churn, ltv.formula_ltv); the same for every period; NULL when churn is 0';
COMMENT ON COLUMN ltv.unit_economics.arpa IS 'Average revenue per active subscriber of the channel now: MRR ÷ active subscribers (ltv.formula_ltv)';
COMMENT ON COLUMN ltv.unit_economics.model_ltv_to_cac IS 'mean_model_ltv ÷ cac (above 3 is the usual rule of thumb for a healthy channel)';
COMMENT ON COLUMN ltv.unit_economics.formula_ltv_to_cac IS 'formula_ltv ÷ cac';
COMMENT ON COLUMN ltv.unit_economics.cac_payback_months IS 'Months of gross margin needed to earn the CAC back: cac ÷ (arpa × subscription margin)';
COMMENT ON COLUMN ltv.unit_economics.as_of IS 'Moment the figures were computed (the refresh transaction''s start)';

INSERT INTO ltv.view_refreshes (view_name, refresh_order, description)
VALUES ('unit_economics', 20, 'CAC, LTV:CAC and payback per acquisition channel and signup month')
ON CONFLICT (view_name) DO UPDATE
SET refresh_order = EXCLUDED.refresh_order, description = EXCLUDED.description,
    last_refreshed_at = NULL, last_duration_ms = NULL, last_concurrently = NULL,
    last_refreshed_by = NULL, refresh_count = 0;
