-- ltv.cohort_retention: signup cohorts month by month, long format (one row per cohort month
-- and months since signup) so a BI tool pivots it into the classic retention triangle.
--
-- A cohort is the customers who signed up in one UTC calendar month. Its base — the
-- denominator of every ratio — is the cohort's customers paying at the end of their signup
-- month (month 0, closing_mrr > 0 in ltv.mrr_movements) and that MRR; customers who started
-- paying only later are counted in cohort_signups but in no retention figure. For month k:
--   retained_customers       base customers with MRR > 0 at the end of month k (a customer who
--                            churned and came back counts again)
--   retained_mrr             their MRR at the end of month k (upgrades included)
--   gross_revenue_retention  Σ min(MRR at k, MRR at month 0) ÷ starting MRR: expansion is not
--                            counted, so it never exceeds 1
--   net_revenue_retention    retained_mrr ÷ starting MRR: expansion counts, so it can exceed 1
-- Month 0 is 1 (100 %) by construction; retained_customers ≤ customers_at_start. The latest
-- month of every cohort is the current month, measured at the last refresh (to date, like
-- ltv.mrr_movements, which this view reads — it is refreshed after it). No as_of column, for
-- the reason given in sql/views/mrr_movements.sql.
--
-- DROP + CREATE, WITH NO DATA, and registration: see sql/views/customer_ltv_snapshot.sql.

DROP MATERIALIZED VIEW IF EXISTS ltv.cohort_retention;

CREATE MATERIALIZED VIEW ltv.cohort_retention AS
WITH
cohort_signups AS (
    SELECT date_trunc('month', c.signed_up_at AT TIME ZONE 'UTC')::date AS cohort_month, count(*) AS signups
    FROM ltv.customers c
    WHERE c.signed_up_at < now()
    GROUP BY 1
),
cohort_base AS (
    SELECT m.customer_id, m.signup_month AS cohort_month, m.closing_mrr AS starting_mrr
    FROM ltv.mrr_movements m
    WHERE m.month = m.signup_month AND m.closing_mrr > 0
),
cohort_months AS (
    SELECT cs.cohort_month, cs.signups, k.months_since_signup,
           (cs.cohort_month + make_interval(months => k.months_since_signup))::date AS month
    FROM cohort_signups cs
    CROSS JOIN (SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date AS current_month) cur
    CROSS JOIN LATERAL generate_series(
        0,
        ((extract(year FROM cur.current_month) - extract(year FROM cs.cohort_month)) * 12
         + extract(month FROM cur.current_month) - extract(month FROM cs.cohort_month))::integer
    ) AS k(months_since_signup)
),
base_totals AS (
    SELECT cohort_month, count(*) AS customers, sum(starting_mrr) AS mrr
    FROM cohort_base
    GROUP BY cohort_month
),
retained AS (
    SELECT b.cohort_month, m.month,
           count(*) AS customers,
           sum(m.closing_mrr) AS mrr,
           sum(least(m.closing_mrr, b.starting_mrr)) AS capped_mrr
    FROM cohort_base b
    JOIN ltv.mrr_movements m ON m.customer_id = b.customer_id AND m.month >= b.cohort_month AND m.closing_mrr > 0
    GROUP BY b.cohort_month, m.month
)
SELECT cm.cohort_month,
       cm.months_since_signup,
       cm.month,
       cm.signups                                                   AS cohort_signups,
       coalesce(bt.customers, 0)                                    AS customers_at_start,
       coalesce(r.customers, 0)                                     AS retained_customers,
       round(coalesce(r.customers, 0)::numeric / nullif(bt.customers, 0), 4) AS customer_retention,
       coalesce(bt.mrr, 0)                                          AS starting_mrr,
       coalesce(r.mrr, 0)                                           AS retained_mrr,
       round(coalesce(r.capped_mrr, 0) / nullif(bt.mrr, 0), 4)     AS gross_revenue_retention,
       round(coalesce(r.mrr, 0) / nullif(bt.mrr, 0), 4)            AS net_revenue_retention
FROM cohort_months cm
LEFT JOIN base_totals bt USING (cohort_month)
LEFT JOIN retained r USING (cohort_month, month)
WITH NO DATA;

CREATE UNIQUE INDEX cohort_retention_key_idx ON ltv.cohort_retention (cohort_month, months_since_signup);

COMMENT ON MATERIALIZED VIEW ltv.cohort_retention IS
    'Signup-cohort retention in long format (pivot cohort_month × months_since_signup): customers and MRR retained from the cohort''s month-0 paying customers, with gross and net revenue retention. Month 0 = 1. MRR as in ltv.mrr_movements (month-end, annual ÷ 12, base currency); the current month is measured to the last refresh (ltv.view_freshness).';
COMMENT ON COLUMN ltv.cohort_retention.cohort_month IS 'Signup cohort: first day of the UTC month the customers signed up in; unique with months_since_signup';
COMMENT ON COLUMN ltv.cohort_retention.months_since_signup IS 'Calendar months after the signup month (0 = the signup month itself)';
COMMENT ON COLUMN ltv.cohort_retention.month IS 'The calendar month measured: cohort_month + months_since_signup';
COMMENT ON COLUMN ltv.cohort_retention.cohort_signups IS 'Customers who signed up in the cohort month (paying or not)';
COMMENT ON COLUMN ltv.cohort_retention.customers_at_start IS 'Cohort customers paying (MRR > 0) at the end of the signup month: the base of every ratio in the row';
COMMENT ON COLUMN ltv.cohort_retention.retained_customers IS 'Of customers_at_start, those paying (MRR > 0) at the end of this month';
COMMENT ON COLUMN ltv.cohort_retention.customer_retention IS 'retained_customers ÷ customers_at_start (0–1)';
COMMENT ON COLUMN ltv.cohort_retention.starting_mrr IS 'MRR of customers_at_start at the end of the signup month';
COMMENT ON COLUMN ltv.cohort_retention.retained_mrr IS 'MRR of the retained customers at the end of this month (expansion included)';
COMMENT ON COLUMN ltv.cohort_retention.gross_revenue_retention IS 'Σ min(customer MRR now, its starting MRR) ÷ starting_mrr: revenue kept, expansion ignored (0–1)';
COMMENT ON COLUMN ltv.cohort_retention.net_revenue_retention IS 'retained_mrr ÷ starting_mrr: revenue kept including expansion (can exceed 1)';

INSERT INTO ltv.view_refreshes (view_name, refresh_order, description)
VALUES ('cohort_retention', 50, 'Signup-cohort customer and revenue retention by months since signup (long format)')
ON CONFLICT (view_name) DO UPDATE
SET refresh_order = EXCLUDED.refresh_order, description = EXCLUDED.description,
    last_refreshed_at = NULL, last_duration_ms = NULL, last_concurrently = NULL,
    last_refreshed_by = NULL, refresh_count = 0;
