-- 0011_sbg_quantiles: the one-horizon BG/NBD kernel is gone — ltv.bgnbd_expected_purchases_kernels
-- (frozen functions/bgnbd_expected_purchases.sql) takes every horizon in one call, and the
-- single-horizon ltv.bgnbd_expected_purchases is now the multi-horizon function with one element.
DROP FUNCTION ltv.bgnbd_expected_purchases_kernel(float8, float8, float8, float8, float8, float8, float8);
