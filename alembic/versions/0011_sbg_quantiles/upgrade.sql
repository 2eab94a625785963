-- 0011_sbg_quantiles: functions that are gone.
--   ltv.bgnbd_expected_purchases_kernel (one horizon): ltv.bgnbd_expected_purchases_kernels (frozen
--   functions/bgnbd_expected_purchases.sql) takes every horizon in one call, and the
--   single-horizon ltv.bgnbd_expected_purchases is the multi-horizon function with one element.
--   ltv.few_active_since: ltv.customer_history_via decides the same in the pass it makes anyway.
DROP FUNCTION ltv.few_active_since(timestamptz);
DROP FUNCTION ltv.bgnbd_expected_purchases_kernel(float8, float8, float8, float8, float8, float8, float8);
