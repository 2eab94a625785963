-- ltv.refresh_views(names): refresh the BI views registered in ltv.view_refreshes (all of them,
-- or those named), in refresh_order — a view only reads views refreshed before it — and record
-- each refresh's time and duration there (see ltv.view_freshness). What the `refresh-views`
-- pg_cron job runs.
--
-- REFRESH … CONCURRENTLY, so readers keep reading the previous contents meanwhile (each view
-- has a plain unique index for it). CONCURRENTLY cannot fill a view that was never populated
-- (a fresh or re-created one): that first refresh is a plain REFRESH. Each view is ANALYZEd
-- after its refresh so plans over it see the new contents at once. A registered plain view is
-- kept by its own function, ltv.refresh_<view name>(), called here as of the transaction time
-- (ltv.refresh_customer_ltv_snapshot and ltv.refresh_segment_ltv rewrite their tables in place,
-- ltv.refresh_mrr_movements recomputes the customers that changed); it never blocks readers
-- and keeps its table's statistics itself. work_mem is raised for the
-- duration: the views sort and hash whole-history sets (charges, customer-months) that spill
-- to disk at the cluster default. Nested-loop joins are disabled for the duration (the planner
-- still uses one where nothing else can do the join): every view reads whole populations
-- through set-returning functions and CTEs the planner estimates at 1–1,000 rows, and a nested
-- loop chosen on such an estimate is quadratic in the real row counts — at 1,000,000 suppliers
-- ltv.score_customers(now()) joined its distinct (fit, x, t_x, T) rows to its per-(fit, x, T)
-- kernels that way and was cancelled unfinished after 14 minutes; with hash joins it takes 100 s
-- (benchmarks/RESULTS.md). Settings of a function's SET clause hold for the functions it calls.
--
-- One transaction: the views change together at commit — readers never see a segment_ltv
-- computed from a different snapshot than the customer_ltv_snapshot beside it, and every
-- view's now() (its as_of) is the same. A failure rolls every view back to its previous
-- contents and the error reaches the caller (pg_cron records it in cron.job_run_details).
-- The registry rows are locked first, in order, so concurrent callers queue instead of
-- deadlocking; an unknown name is an error, not a silent no-op.

CREATE OR REPLACE FUNCTION ltv.refresh_views(p_names text[] DEFAULT NULL)
RETURNS TABLE (view_name text, refreshed_concurrently boolean, duration_ms float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
SET work_mem = '256MB'
SET enable_nestloop = off
AS $$
#variable_conflict use_column
DECLARE
    v_unknown   text;
    v_view      text;
    v_populated boolean;
    v_kind      "char";
    v_started   timestamptz;
BEGIN
    SELECT string_agg(n.name, ', ' ORDER BY n.name) INTO v_unknown
    FROM unnest(p_names) AS n(name)
    WHERE NOT EXISTS (SELECT FROM ltv.view_refreshes r WHERE r.view_name = n.name);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'ltv.refresh_views: not a registered view: %', v_unknown
            USING ERRCODE = 'undefined_table',
                  HINT = 'SELECT view_name FROM ltv.view_refreshes lists them';
    END IF;

    PERFORM 1 FROM ltv.view_refreshes r
    WHERE p_names IS NULL OR r.view_name = ANY (p_names)
    ORDER BY r.refresh_order
    FOR UPDATE;

    FOR v_view IN
        SELECT r.view_name FROM ltv.view_refreshes r
        WHERE p_names IS NULL OR r.view_name = ANY (p_names)
        ORDER BY r.refresh_order
    LOOP
        SELECT c.relispopulated, c.relkind INTO v_populated, v_kind
        FROM pg_class c
        WHERE c.oid = format('ltv.%I', v_view)::regclass AND c.relkind IN ('m', 'v');
        IF NOT FOUND THEN
            RAISE EXCEPTION 'ltv.refresh_views: ltv.% is registered but is not a materialized or maintained view', v_view
                USING ERRCODE = 'wrong_object_type';
        END IF;

        v_started := clock_timestamp();
        IF v_kind = 'v' THEN
            EXECUTE format('SELECT count(*) FROM ltv.%I(now())', 'refresh_' || v_view);
        ELSIF v_populated THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY ltv.%I', v_view);
        ELSE
            EXECUTE format('REFRESH MATERIALIZED VIEW ltv.%I', v_view);
        END IF;
        IF v_kind = 'm' THEN
            EXECUTE format('ANALYZE ltv.%I', v_view);
        END IF;

        view_name := v_view;
        refreshed_concurrently := v_populated;
        duration_ms := extract(epoch FROM clock_timestamp() - v_started) * 1000;
        UPDATE ltv.view_refreshes r
        SET last_refreshed_at = now(), last_duration_ms = refresh_views.duration_ms,
            last_concurrently = v_populated, last_refreshed_by = current_user,
            refresh_count = r.refresh_count + 1
        WHERE r.view_name = v_view;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION ltv.refresh_views(text[]) IS
    'Refresh the BI views (all, or those named) in dependency order without blocking readers — materialized ones CONCURRENTLY, plain ones by their ltv.refresh_<view> function — in one transaction, recording time and duration in ltv.view_refreshes';
