-- ltv.backtest(cutoff, horizon_months, min_customers): how accurate are the models? Fits every
-- model on data before the cutoff only (recorded in ltv.model_fits with purpose 'backtest',
-- never active), predicts each customer's net revenue in (cutoff, cutoff + horizon] and
-- compares it with what landed. One row for all customers, then one per vendor category:
--   accuracy           1 − |predicted − actual| / actual on the aggregate revenue
--   mae                mean absolute error per customer
--   rank_correlation   Spearman correlation of customer predictions with actuals (average
--                      ranks for ties)
--   predicted/actual_purchases   one-off repeat transactions (BG/NBD) in the window
-- Customers who sign up after the cutoff are not part of either side.

CREATE OR REPLACE FUNCTION ltv.backtest(p_cutoff timestamptz, p_horizon_months integer, p_min_customers integer DEFAULT 500)
RETURNS TABLE (
    level               text,
    segment             text,
    customers           bigint,
    predicted           numeric,
    actual              numeric,
    accuracy            float8,
    mae                 float8,
    rank_correlation    float8,
    predicted_recurring numeric,
    actual_recurring    numeric,
    predicted_one_off   numeric,
    actual_one_off      numeric,
    predicted_purchases float8,
    actual_purchases    bigint
)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
#variable_conflict use_column
DECLARE
    v_fit_ids bigint[];
BEGIN
    IF p_horizon_months < 1 THEN
        RAISE EXCEPTION 'ltv.backtest: horizon must be at least one month, got %', p_horizon_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_cutoff + make_interval(months => p_horizon_months) > now() THEN
        RAISE EXCEPTION 'ltv.backtest: the window % + % months has not fully happened yet', p_cutoff, p_horizon_months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    WITH recorded AS (
        INSERT INTO ltv.model_fits (model, segment, params, std_errors, log_likelihood, data_cutoff,
                                    n_customers, runtime_ms, converged, error, purpose)
        SELECT f.model, f.segment, coalesce(f.params, '{}'), f.std_errors, f.log_likelihood, p_cutoff,
               f.n_customers, f.runtime_ms, f.converged, f.error, 'backtest'
        FROM ltv.fit_models(p_cutoff, p_min_customers) f
        RETURNING fit_id, converged
    )
    SELECT array_agg(fit_id) FILTER (WHERE converged) INTO v_fit_ids FROM recorded;
    IF v_fit_ids IS NULL THEN
        RAISE EXCEPTION 'ltv.backtest: no model converged on data before %', p_cutoff
            USING ERRCODE = 'data_exception';
    END IF;

    RETURN QUERY
    WITH
    predictions AS (
        SELECT * FROM ltv.backtest_predictions(p_cutoff, p_horizon_months, v_fit_ids)
    ),
    ranked AS (
        SELECT p.*,
               rank() OVER (PARTITION BY p.vendor_category ORDER BY p.predicted)
                 + (count(*) OVER (PARTITION BY p.vendor_category, p.predicted) - 1) / 2.0 AS seg_pred_rank,
               rank() OVER (PARTITION BY p.vendor_category ORDER BY p.actual)
                 + (count(*) OVER (PARTITION BY p.vendor_category, p.actual) - 1) / 2.0 AS seg_actual_rank,
               rank() OVER (ORDER BY p.predicted)
                 + (count(*) OVER (PARTITION BY p.predicted) - 1) / 2.0 AS all_pred_rank,
               rank() OVER (ORDER BY p.actual)
                 + (count(*) OVER (PARTITION BY p.actual) - 1) / 2.0 AS all_actual_rank
        FROM predictions p
    ),
    grouped AS (
        SELECT CASE WHEN GROUPING(r.vendor_category) = 1 THEN 'all' ELSE 'vendor_category' END AS lvl,
               coalesce(r.vendor_category, 'all') AS seg,
               count(*) AS n,
               sum(r.predicted)::numeric AS pred, sum(r.actual) AS act,
               avg(abs(r.predicted - r.actual::float8)) AS mae,
               CASE WHEN GROUPING(r.vendor_category) = 1 THEN corr(r.all_pred_rank, r.all_actual_rank)
                    ELSE corr(r.seg_pred_rank, r.seg_actual_rank) END AS spearman,
               sum(r.predicted_recurring)::numeric AS pred_rec, sum(r.actual_recurring) AS act_rec,
               sum(r.predicted_one_off)::numeric AS pred_one, sum(r.actual_one_off) AS act_one,
               sum(r.predicted_purchases) AS pred_tx, sum(r.actual_purchases) AS act_tx
        FROM ranked r
        GROUP BY ROLLUP (r.vendor_category)
    )
    SELECT g.lvl, g.seg, g.n, round(g.pred, 2), round(g.act, 2),
           CASE WHEN g.act > 0 THEN 1 - abs(g.pred - g.act)::float8 / g.act::float8 END,
           g.mae, g.spearman,
           round(g.pred_rec, 2), round(g.act_rec, 2), round(g.pred_one, 2), round(g.act_one, 2),
           g.pred_tx, g.act_tx
    FROM grouped g
    ORDER BY g.lvl, g.seg;
END;
$$;

COMMENT ON FUNCTION ltv.backtest(timestamptz, integer, integer) IS
    'Fit on data before the cutoff, predict revenue in (cutoff, cutoff+horizon], compare with actuals: accuracy, MAE, Spearman';
