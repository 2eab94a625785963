-- ltv.refresh_mrr_movements(as_of): bring ltv.mrr_movements up to a moment by recomputing only
-- the customers whose rows can have moved since the last refresh — what ltv.refresh_views (and
-- so the pg_cron job) runs for this view instead of a REFRESH MATERIALIZED VIEW, which at a
-- million suppliers re-derives every customer's whole history (> 10 minutes) to change a few.
--
-- The rows are kept equal to ltv.mrr_movement_rows(as of the last refresh). Between two
-- refreshes at t0 and t1 a customer's rows can change only if
--   * its data changed: queued in ltv.mrr_stale_customers by the triggers of
--     mrr_stale_triggers.sql (a NULL entry, or no earlier refresh, means everyone);
--   * the clock passed one of its dates: a subscription started, was cancelled or ended, or
--     an event is dated between t0 and t1 (both included) — the MRR rule reads them against
--     the as-of moment;
--   * the month changed. Forwards, a customer paying at the earlier month's end whose data and
--     dates did not change keeps the same MRR (the same charge prices every month-end since):
--     its rows for the new months are written as "unchanged" without recomputation — at a
--     million suppliers that is ~220,000 rows in seconds instead of a near-full derivation.
--     Backwards (a refresh as of an earlier month), every customer with a row in that month
--     or later is recomputed.
-- Those customers' rows are recomputed; rows that differ or vanished are deleted and new ones
-- inserted (unchanged rows stay: little WAL, no bloat). One transaction, so readers see the
-- previous rows until commit, never a half-refreshed view; the registry row is locked first,
-- so concurrent refreshes queue. Queue entries committed after the refresh began stay queued
-- for the next one. The refresh records its as-of in ltv.view_refreshes.last_refreshed_at.
--
-- Returns what it did: customers recomputed (NULL = everyone), rows deleted and inserted.

CREATE OR REPLACE FUNCTION ltv.refresh_mrr_movements(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (customers_recomputed bigint, rows_deleted bigint, rows_inserted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
SET work_mem = '256MB'
SET enable_nestloop = on  -- primary-key lookups for the few customers (ltv.refresh_views turns it off)
AS $$
#variable_conflict use_column
DECLARE
    v_previous timestamptz;    -- as-of of the rows now in the table; NULL = never filled
    v_everyone boolean;
    v_ids      bigint[];
    v_low      timestamptz;
    v_high     timestamptz;
    v_month_before date;    -- UTC month of v_previous
    v_month_now    date;    -- UTC month of p_as_of
    v_extended     bigint;
BEGIN
IF p_as_of IS NULL OR NOT isfinite(p_as_of) THEN
    RAISE EXCEPTION 'ltv.refresh_mrr_movements: as_of must be a finite moment, got %', p_as_of
        USING ERRCODE = 'invalid_parameter_value';
END IF;
SELECT r.last_refreshed_at INTO v_previous
FROM ltv.view_refreshes r WHERE r.view_name = 'mrr_movements'
FOR UPDATE;
IF NOT FOUND THEN
    RAISE EXCEPTION 'ltv.refresh_mrr_movements: mrr_movements is not registered in ltv.view_refreshes'
        USING ERRCODE = 'undefined_table';
END IF;

WITH claimed AS (
    DELETE FROM ltv.mrr_stale_customers RETURNING customer_id
)
SELECT coalesce(bool_or(c.customer_id IS NULL), false), array_agg(DISTINCT c.customer_id) FILTER (WHERE c.customer_id IS NOT NULL)
INTO v_everyone, v_ids
FROM claimed c;
v_everyone := v_everyone OR v_previous IS NULL;

IF NOT v_everyone THEN
    v_month_before := date_trunc('month', v_previous AT TIME ZONE 'UTC')::date;
    v_month_now := date_trunc('month', p_as_of AT TIME ZONE 'UTC')::date;
    v_low := least(v_previous, p_as_of);
    v_high := greatest(v_previous, p_as_of);
    SELECT array_agg(DISTINCT u.customer_id) INTO v_ids
    FROM (
        SELECT unnest(v_ids) AS customer_id
        UNION ALL
        SELECT s.customer_id FROM ltv.subscriptions s
        WHERE s.started_at BETWEEN v_low AND v_high
           OR s.cancelled_at BETWEEN v_low AND v_high
           OR s.ended_at BETWEEN v_low AND v_high
        UNION ALL
        SELECT e.customer_id FROM ltv.revenue_events e
        WHERE e.occurred_at BETWEEN v_low AND v_high
        UNION ALL
        SELECT m.customer_id FROM ltv.mrr_movement_store m  -- back to an earlier month
        WHERE v_month_now < v_month_before AND m.month >= v_month_now
    ) u;
    v_ids := coalesce(v_ids, '{}');
END IF;

IF v_previous IS NULL AND NOT EXISTS (SELECT FROM ltv.mrr_movement_store) THEN
    -- the first fill: nothing to compare with
    INSERT INTO ltv.mrr_movement_store SELECT * FROM ltv.mrr_movement_rows(p_as_of);
    GET DIAGNOSTICS rows_inserted = ROW_COUNT;
    rows_deleted := 0;
ELSE
    IF to_regclass('pg_temp.mrr_fresh') IS NOT NULL THEN  -- IF EXISTS alone NOTICEs
        DROP TABLE pg_temp.mrr_fresh;
    END IF;
    CREATE TEMP TABLE mrr_fresh ON COMMIT DROP AS
    SELECT * FROM ltv.mrr_movement_rows(p_as_of, CASE WHEN v_everyone THEN NULL ELSE v_ids END);
    ANALYZE pg_temp.mrr_fresh;  -- autovacuum never analyzes temporary tables

    -- two statements, not `v_everyone OR customer_id IN (…)`: under an OR the IN cannot become
    -- a join, and every row of the table would be tested against the list
    IF v_everyone THEN
        DELETE FROM ltv.mrr_movement_store m
        WHERE NOT EXISTS (SELECT FROM pg_temp.mrr_fresh f
                          WHERE f.customer_id = m.customer_id AND f.month = m.month
                            AND ROW(f.*) IS NOT DISTINCT FROM ROW(m.*));
    ELSE
        DELETE FROM ltv.mrr_movement_store m
        WHERE m.customer_id IN (SELECT unnest(v_ids))
          AND NOT EXISTS (SELECT FROM pg_temp.mrr_fresh f
                          WHERE f.customer_id = m.customer_id AND f.month = m.month
                            AND ROW(f.*) IS NOT DISTINCT FROM ROW(m.*));
    END IF;
    GET DIAGNOSTICS rows_deleted = ROW_COUNT;

    INSERT INTO ltv.mrr_movement_store
    SELECT f.* FROM pg_temp.mrr_fresh f
    WHERE NOT EXISTS (SELECT FROM ltv.mrr_movement_store m WHERE m.customer_id = f.customer_id AND m.month = f.month);
    GET DIAGNOSTICS rows_inserted = ROW_COUNT;
    DROP TABLE pg_temp.mrr_fresh;
END IF;
IF v_month_now > v_month_before THEN
    -- A new month for everyone else: a customer paying at the end of the earlier month with
    -- no change and no date passed since keeps being priced by the same charge, so each month
    -- up to now is a row of unchanged MRR — written here, not recomputed from every event.
    INSERT INTO ltv.mrr_movement_store
    SELECT m.customer_id, g.month::date, m.vendor_category, m.country, m.acquisition_channel, m.signup_month,
           m.closing_mrr, 0, 0, 0, 0, 0, m.closing_mrr, 'unchanged', 0
    FROM ltv.mrr_movement_store m
    CROSS JOIN LATERAL generate_series(v_month_before + interval '1 month', v_month_now, interval '1 month') AS g(month)
    WHERE m.month = v_month_before AND m.closing_mrr > 0
      AND NOT EXISTS (SELECT FROM unnest(v_ids) AS r(customer_id) WHERE r.customer_id = m.customer_id);
    GET DIAGNOSTICS v_extended = ROW_COUNT;
    rows_inserted := rows_inserted + v_extended;
END IF;
IF v_everyone THEN
    ANALYZE ltv.mrr_movement_store;
END IF;

UPDATE ltv.view_refreshes r SET last_refreshed_at = p_as_of WHERE r.view_name = 'mrr_movements';
customers_recomputed := CASE WHEN v_everyone THEN NULL ELSE cardinality(v_ids) END;
RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION ltv.refresh_mrr_movements(timestamptz) IS
    'Bring ltv.mrr_movements up to a moment by recomputing only the customers whose rows can have moved (queued changes, dates the clock passed, a new month); everyone on the first call';
