-- ltv.mrr_movements: how each customer's monthly recurring revenue moved, month by month — new,
-- expansion, contraction, churn, reactivation — the MRR bridge finance reconciles, with one-off
-- revenue kept apart. The rules (month-end MRR, the movements, the reactivation rule, one-off
-- revenue) are those of ltv.mrr_movement_rows, the one definition (sql/functions/
-- mrr_movement_rows.sql).
--
-- Maintained incrementally, not re-derived: a plain view over ltv.mrr_movement_store, which
-- ltv.refresh_mrr_movements (run by ltv.refresh_views, so by the refresh-history-views pg_cron
-- job) keeps equal to ltv.mrr_movement_rows(as of its last refresh) by recomputing only the
-- customers whose rows can have moved — a materialized view recomputed every customer's whole
-- history on each refresh (over ten minutes at a million suppliers, to change a few rows).
-- Readers are never blocked: a refresh is one transaction of row changes. The unique index is
-- the store's primary key (customer_id, month); ltv.view_freshness has the as-of time.
--
-- A plain view so ltv_reader gets SELECT on it (ltv.apply_grants) and none on the store; the
-- view runs as its owner. CREATE OR REPLACE (the 0010 migration dropped the materialized view
-- it replaces); registering resets the refresh record, so the next refresh recomputes everyone.

CREATE OR REPLACE VIEW ltv.mrr_movements AS
SELECT m.customer_id,
       m.month,
       m.vendor_category,
       m.country,
       m.acquisition_channel,
       m.signup_month,
       m.opening_mrr,
       m.new_mrr,
       m.expansion_mrr,
       m.contraction_mrr,
       m.churned_mrr,
       m.reactivation_mrr,
       m.closing_mrr,
       m.movement,
       m.one_off_revenue
FROM ltv.mrr_movement_store m;

COMMENT ON VIEW ltv.mrr_movements IS
    'MRR bridge per customer and calendar month (UTC): opening + new + expansion − contraction − churned + reactivation = closing. MRR = month-end monthly recurring revenue (annual plans ÷ 12, the ltv.customer_history current_mrr rule); the current month is measured to the last refresh (ltv.view_freshness); kept by ltv.refresh_mrr_movements, which recomputes only the customers that changed. Reactivation = MRR returning after at least one month-end at 0. One-off revenue is kept apart in one_off_revenue. Base-currency major units.';
COMMENT ON COLUMN ltv.mrr_movements.customer_id IS 'Customer (ltv.customers.customer_id); unique with month';
COMMENT ON COLUMN ltv.mrr_movements.month IS 'Calendar month (first day, UTC)';
COMMENT ON COLUMN ltv.mrr_movements.vendor_category IS 'Kind of supplier';
COMMENT ON COLUMN ltv.mrr_movements.country IS 'Country code';
COMMENT ON COLUMN ltv.mrr_movements.acquisition_channel IS 'Acquisition channel';
COMMENT ON COLUMN ltv.mrr_movements.signup_month IS 'Signup cohort of the customer (first day of its UTC signup month)';
COMMENT ON COLUMN ltv.mrr_movements.opening_mrr IS 'MRR at the end of the previous month (0 when the customer had none)';
COMMENT ON COLUMN ltv.mrr_movements.new_mrr IS 'MRR of a customer paying for the first time ever (opening 0)';
COMMENT ON COLUMN ltv.mrr_movements.expansion_mrr IS 'Increase of an already paying customer''s MRR: upgrade, price change, or a foreign-currency charge converting at a better FX rate';
COMMENT ON COLUMN ltv.mrr_movements.contraction_mrr IS 'Decrease of a paying customer''s MRR that stays above 0 (positive amount, subtract it)';
COMMENT ON COLUMN ltv.mrr_movements.churned_mrr IS 'Opening MRR lost because the customer stopped paying (cancelled or ended by month-end; positive amount, subtract it)';
COMMENT ON COLUMN ltv.mrr_movements.reactivation_mrr IS 'MRR of a returning customer: opening 0 after having had MRR in an earlier month';
COMMENT ON COLUMN ltv.mrr_movements.closing_mrr IS 'MRR at the end of this month (for the current month: at the last refresh, ltv.view_freshness.last_refreshed_at)';
COMMENT ON COLUMN ltv.mrr_movements.movement IS 'The row''s movement: new, reactivation, expansion, contraction, churn, unchanged (paying, same MRR) or none (no MRR, revenue only)';
COMMENT ON COLUMN ltv.mrr_movements.one_off_revenue IS 'One-off purchase revenue booked in the month, net of refunds, chargebacks and credits; never part of MRR';

INSERT INTO ltv.view_refreshes (view_name, refresh_order, description)
VALUES ('mrr_movements', 40, 'Month-end MRR bridge per customer: new, expansion, contraction, churn, reactivation')
ON CONFLICT (view_name) DO UPDATE
SET refresh_order = EXCLUDED.refresh_order, description = EXCLUDED.description,
    last_refreshed_at = NULL, last_duration_ms = NULL, last_concurrently = NULL,
    last_refreshed_by = NULL, refresh_count = 0;  -- the next refresh recomputes everyone
