-- 0009_fit_speed: the function it added (the changed ones are reinstalled from earlier revisions)
DROP FUNCTION IF EXISTS ltv.bfgs_minimize_from(regproc, float8[], float8[], float8[], int, float8, float8);
DROP FUNCTION IF EXISTS ltv.bgnbd_fit_counts(bigint);
