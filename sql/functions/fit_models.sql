-- ltv.fit_models(cutoff, min_customers): fit every model on every segment with data before the
-- cutoff only, and return one row per (model, segment) — nothing is recorded or activated here
-- (ltv.refit_models does that; ltv.backtest records its fits as inactive).
--
-- Segments (the documented choice):
--   sBG          vendor_category/billing_interval, e.g. 'photographer/month'; parent 'all/month'.
--                Churn is per billing period, so monthly and annual plans never share a fit.
--   BG/NBD, GG   vendor_category, e.g. 'photographer'; parent 'all'.
-- A segment with fewer than p_min_customers (subscriptions for sBG, customers for BG/NBD,
-- repeat buyers for Gamma-Gamma) gets no fit of its own: scoring pools it into the parent.
-- A fit that raises (e.g. no repeat buyers) is returned with converged = false and the error
-- text, never as an exception that would abort the other segments.
--
-- Besides the model parameters, params carries what prediction needs from the same data:
--   sBG     notice_cdf  the cancellation-notice CDF of the billing interval (21 values, see
--                       sbg_notice_norm.sql), from the subscriptions that ended before the cutoff;
--                       absent when none has.
--   BG/NBD  season      the one-off purchases' seasonal index (12 values, January first, see
--                       one_off_season_index.sql); absent under ~3 years of purchases.

CREATE OR REPLACE FUNCTION ltv.fit_models(p_cutoff timestamptz, p_min_customers integer DEFAULT 500)
RETURNS TABLE (
    model          text,
    segment        text,
    params         jsonb,
    std_errors     jsonb,
    log_likelihood float8,
    n_customers    bigint,
    converged      boolean,
    runtime_ms     float8,
    error          text
)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
#variable_conflict use_column
DECLARE
    v_segment  record;
    v_started  timestamptz;
    v_fit      jsonb;
    v_extra    jsonb;  -- what a fit's params carry besides the parameters (see above)
BEGIN
    IF p_min_customers < 1 THEN
        RAISE EXCEPTION 'ltv.fit_models: p_min_customers must be >= 1, got %', p_min_customers
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- ---- shifted-beta-geometric on subscription lifetimes -------------------------------------
    IF to_regclass('pg_temp.fit_lifetimes') IS NOT NULL THEN  -- IF EXISTS alone NOTICEs
        DROP TABLE pg_temp.fit_lifetimes;
    END IF;
    CREATE TEMP TABLE fit_lifetimes AS
    SELECT l.vendor_category || '/' || l.billing_interval AS segment, l.billing_interval, l.periods, l.churned
    FROM ltv.subscription_lifetimes(p_cutoff) l;

    -- how far into their last paid period the leavers cancelled, per billing interval
    IF to_regclass('pg_temp.fit_notice') IS NOT NULL THEN  -- IF EXISTS alone NOTICEs
        DROP TABLE pg_temp.fit_notice;
    END IF;
    CREATE TEMP TABLE fit_notice AS
    SELECT p.billing_interval,
           ltv.notice_cdf(array_agg(
               CASE WHEN s.cancelled_at IS NULL OR s.cancelled_at >= s.ended_at THEN 1.0
                    ELSE 1 - extract(epoch FROM s.ended_at - s.cancelled_at)
                             / extract(epoch FROM (s.ended_at AT TIME ZONE 'UTC')
                                                  - ((s.ended_at AT TIME ZONE 'UTC') - ('1 ' || p.billing_interval)::interval))
               END::float8)) AS cdf
    FROM ltv.subscriptions s
    JOIN ltv.plans p USING (plan_code)
    WHERE s.started_at < p_cutoff AND s.ended_at <= p_cutoff
    GROUP BY p.billing_interval;

    FOR v_segment IN
        WITH segments AS (
            SELECT segment AS name, count(*) AS n FROM pg_temp.fit_lifetimes GROUP BY segment
            UNION ALL
            SELECT 'all/' || billing_interval, count(*) FROM pg_temp.fit_lifetimes GROUP BY billing_interval
        )
        SELECT name, n FROM segments WHERE n >= p_min_customers ORDER BY name
    LOOP
        v_started := clock_timestamp();
        model := 'sbg'; segment := v_segment.name; n_customers := v_segment.n;
        params := NULL; std_errors := NULL; log_likelihood := NULL; converged := false; error := NULL;
        BEGIN
            WITH lifetimes AS (
                SELECT periods, churned FROM pg_temp.fit_lifetimes
                WHERE fit_lifetimes.segment = v_segment.name
                   OR (v_segment.name LIKE 'all/%' AND billing_interval = split_part(v_segment.name, '/', 2))
            ),
            horizon AS (SELECT max(periods) AS t_max FROM lifetimes),
            counts AS (
                SELECT t,
                       count(*) FILTER (WHERE l.churned AND l.periods = t)     AS churned,
                       count(*) FILTER (WHERE NOT l.churned AND l.periods = t) AS censored
                FROM horizon, generate_series(1, horizon.t_max) AS t
                LEFT JOIN lifetimes l ON l.periods = t
                GROUP BY t
            )
            SELECT to_jsonb(f) INTO v_fit
            FROM (SELECT array_agg(churned ORDER BY t) AS churned, array_agg(censored ORDER BY t) AS censored FROM counts) c,
                 ltv.fit_sbg_lifetimes(c.churned, c.censored) f;
            SELECT jsonb_strip_nulls(jsonb_build_object('notice_cdf', n.cdf)) INTO v_extra
            FROM pg_temp.fit_notice n WHERE n.billing_interval = split_part(v_segment.name, '/', 2);
            params := jsonb_build_object('alpha', v_fit->'alpha', 'beta', v_fit->'beta') || coalesce(v_extra, '{}');
            std_errors := jsonb_build_object('alpha', v_fit->'alpha_se', 'beta', v_fit->'beta_se');
            log_likelihood := (v_fit->>'log_likelihood')::float8;
            converged := coalesce((v_fit->>'converged')::boolean, false);
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        runtime_ms := extract(epoch FROM clock_timestamp() - v_started) * 1000;
        RETURN NEXT;
    END LOOP;

    -- ---- BG/NBD and Gamma-Gamma on one-off purchases ------------------------------------------
    IF to_regclass('pg_temp.fit_history') IS NOT NULL THEN  -- IF EXISTS alone NOTICEs
        DROP TABLE pg_temp.fit_history;
    END IF;
    CREATE TEMP TABLE fit_history AS
    SELECT h.vendor_category AS segment, h.x,
           -- whole days: the data are daily, and rounding compresses the rows the fit scans
           round(h.t_x * 30.4375) / 30.4375 AS t_x,
           round(h.t_cal * 30.4375) / 30.4375 AS t_cal,
           round(h.mean_one_off::numeric, 2)::float8 AS m
    FROM ltv.customer_history(p_cutoff) h;
    v_extra := jsonb_strip_nulls(jsonb_build_object('season', ltv.one_off_season_index(p_cutoff)));

    FOR v_segment IN
        WITH segments AS (
            SELECT segment AS name, count(*) AS n, count(*) FILTER (WHERE x > 0 AND m > 0) AS repeaters
            FROM pg_temp.fit_history GROUP BY segment
            UNION ALL
            SELECT 'all', count(*), count(*) FILTER (WHERE x > 0 AND m > 0) FROM pg_temp.fit_history
        )
        SELECT name, n, repeaters FROM segments WHERE n >= p_min_customers ORDER BY name
    LOOP
        IF to_regclass('pg_temp.fit_rfm') IS NOT NULL THEN  -- IF EXISTS alone NOTICEs
            DROP TABLE pg_temp.fit_rfm;
        END IF;
        CREATE TEMP TABLE fit_rfm AS
        SELECT x, t_x, t_cal, count(*) AS n
        FROM pg_temp.fit_history
        WHERE v_segment.name = 'all' OR fit_history.segment = v_segment.name
        GROUP BY x, t_x, t_cal;

        v_started := clock_timestamp();
        model := 'bgnbd'; segment := v_segment.name; n_customers := v_segment.n;
        params := NULL; std_errors := NULL; log_likelihood := NULL; converged := false; error := NULL;
        BEGIN
            SELECT to_jsonb(f) INTO v_fit FROM ltv.fit_bgnbd_detail('pg_temp.fit_rfm'::regclass) f;
            params := jsonb_build_object('r', v_fit->'r', 'alpha', v_fit->'alpha', 'a', v_fit->'a', 'b', v_fit->'b')
                      || v_extra;
            std_errors := jsonb_build_object('r', v_fit->'r_se', 'alpha', v_fit->'alpha_se', 'a', v_fit->'a_se', 'b', v_fit->'b_se');
            log_likelihood := (v_fit->>'log_likelihood')::float8;
            converged := coalesce((v_fit->>'converged')::boolean, false);
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        runtime_ms := extract(epoch FROM clock_timestamp() - v_started) * 1000;
        RETURN NEXT;

        CONTINUE WHEN v_segment.repeaters < p_min_customers;
        IF to_regclass('pg_temp.fit_spend') IS NOT NULL THEN  -- IF EXISTS alone NOTICEs
            DROP TABLE pg_temp.fit_spend;
        END IF;
        CREATE TEMP TABLE fit_spend AS
        SELECT x, m, count(*) AS n
        FROM pg_temp.fit_history
        WHERE (v_segment.name = 'all' OR fit_history.segment = v_segment.name) AND x > 0 AND m > 0
        GROUP BY x, m;

        v_started := clock_timestamp();
        model := 'gamma_gamma'; n_customers := v_segment.repeaters;
        params := NULL; std_errors := NULL; log_likelihood := NULL; converged := false; error := NULL;
        BEGIN
            SELECT to_jsonb(f) INTO v_fit FROM ltv.fit_gamma_gamma_detail('pg_temp.fit_spend'::regclass) f;
            params := jsonb_build_object('p', v_fit->'p', 'q', v_fit->'q', 'v', v_fit->'v');
            std_errors := jsonb_build_object('p', v_fit->'p_se', 'q', v_fit->'q_se', 'v', v_fit->'v_se');
            log_likelihood := (v_fit->>'log_likelihood')::float8;
            converged := coalesce((v_fit->>'converged')::boolean, false);
        EXCEPTION WHEN OTHERS THEN
            error := SQLERRM;
        END;
        runtime_ms := extract(epoch FROM clock_timestamp() - v_started) * 1000;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION ltv.fit_models(timestamptz, integer) IS
    'Fit sBG (per category/interval), BG/NBD and Gamma-Gamma (per category) on data before the cutoff; returns fits, records nothing';
