-- ltv.refit_models(cutoff, min_customers): what the nightly pg_cron job runs. Fits every model
-- and segment (ltv.fit_models), records each fit in ltv.model_fits with its cut-off, n,
-- log-likelihood, standard errors, runtime and convergence, and makes each converged fit with
-- finite, positive parameters the active one for its (model, segment). A failed or
-- non-converged fit is recorded but never replaces the active one. When any fit was activated
-- every LTV changes: it sends NOTIFY ltv_changed {"all":true} (ltv.notify_customers_changed).

CREATE OR REPLACE FUNCTION ltv.refit_models(p_cutoff timestamptz DEFAULT now(), p_min_customers integer DEFAULT 500)
RETURNS TABLE (
    fit_id         bigint,
    model          text,
    segment        text,
    converged      boolean,
    activated      boolean,
    log_likelihood float8,
    n_customers    bigint,
    runtime_ms     float8,
    error          text
)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
#variable_conflict use_column
DECLARE
    v_fit record;
    v_any_activated boolean := false;
BEGIN
    FOR v_fit IN SELECT * FROM ltv.fit_models(p_cutoff, p_min_customers) LOOP
        -- every model parameter a finite positive number; the prediction inputs stored beside
        -- them (arrays: notice CDF, seasonal index) finite and non-negative
        activated := v_fit.converged AND v_fit.error IS NULL AND NOT EXISTS (
            SELECT 1
            FROM jsonb_each(v_fit.params) kv
            LEFT JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(kv.value) WHEN 'array' THEN kv.value END) el(value)
                   ON true
            CROSS JOIN LATERAL (SELECT coalesce(el.value, kv.value) AS value,
                                       jsonb_typeof(kv.value) = 'array' AS in_array) v
            WHERE jsonb_typeof(v.value) <> 'number'
               OR v.value::float8 < 0 OR (v.value::float8 = 0 AND NOT v.in_array)
               OR v.value::float8 = 'Infinity'::float8);
        INSERT INTO ltv.model_fits AS mf (model, segment, params, std_errors, log_likelihood, data_cutoff,
                                          n_customers, runtime_ms, converged, error, purpose)
        VALUES (v_fit.model, v_fit.segment, coalesce(v_fit.params, '{}'), v_fit.std_errors, v_fit.log_likelihood,
                p_cutoff, v_fit.n_customers, v_fit.runtime_ms, v_fit.converged, v_fit.error, 'production')
        RETURNING mf.fit_id INTO fit_id;
        IF activated THEN
            UPDATE ltv.model_fits mf SET is_active = false
            WHERE mf.model = v_fit.model AND mf.segment = v_fit.segment AND mf.is_active;
            UPDATE ltv.model_fits mf SET is_active = true WHERE mf.fit_id = refit_models.fit_id;
            v_any_activated := true;
        END IF;
        model := v_fit.model; segment := v_fit.segment; converged := v_fit.converged;
        log_likelihood := v_fit.log_likelihood; n_customers := v_fit.n_customers;
        runtime_ms := v_fit.runtime_ms; error := v_fit.error;
        RETURN NEXT;
    END LOOP;
    IF v_any_activated THEN
        PERFORM ltv.notify_customers_changed(NULL);
    END IF;
END;
$$;

COMMENT ON FUNCTION ltv.refit_models(timestamptz, integer) IS
    'Fit all models and segments, record every fit in model_fits and activate the converged ones (nightly pg_cron job)';
