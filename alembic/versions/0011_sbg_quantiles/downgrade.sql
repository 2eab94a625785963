-- 0011_sbg_quantiles: the functions it added (the changed ones are reinstalled from earlier revisions)
DROP FUNCTION IF EXISTS ltv.sbg_payments_quantiles(float8, float8, integer, float8[]);
DROP FUNCTION IF EXISTS ltv.bgnbd_expected_purchases_kernels(float8, float8, float8, float8, float8, float8, float8[]);
