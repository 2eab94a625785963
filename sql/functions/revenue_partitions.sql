-- Monthly partitions of ltv.revenue_events.
--
-- ltv.create_revenue_partition(month) makes the partition for one calendar month (UTC), first
-- moving any rows of that month out of the DEFAULT partition (a partition cannot be created
-- while the default holds rows of its range). Rows are moved child-to-child, so the parent's
-- statement triggers (live statistics, audit) see no change: the money did not move.
--
-- ltv.create_revenue_partition is SECURITY DEFINER (owned by ltv_admin, search_path pinned)
-- so that ingestion (ltv_writer) can create the month it is about to load without CREATE on
-- schema ltv. Running as the owner, it must not touch anything the caller controls: stranded
-- rows go to a temporary table it creates itself under an unguessable name (a caller-created
-- pg_temp table with a trigger would otherwise run the caller's code as the owner), and the
-- temporary table is only made when the default partition holds rows of that month.
--
-- ltv.maintain_revenue_partitions() is what pg_cron runs: it creates the partitions from the
-- current month to settings.partition_months_ahead months ahead, and one for every month that
-- has rows stranded in the default partition.

CREATE OR REPLACE FUNCTION ltv.create_revenue_partition(p_month date)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, ltv, pg_temp
AS $$
DECLARE
    v_month      date := date_trunc('month', p_month)::date;
    v_name       text := format('revenue_events_p%s', to_char(v_month, 'YYYY_MM'));
    v_lower      timestamptz := v_month::timestamp AT TIME ZONE 'UTC';
    v_upper      timestamptz := (v_month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    v_stash      text;
BEGIN
    IF to_regclass(format('ltv.%I', v_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Serialise creators; re-check once we hold the lock.
    PERFORM pg_advisory_xact_lock(hashtext('ltv.revenue_events:partitions'));
    IF to_regclass(format('ltv.%I', v_name)) IS NOT NULL THEN
        RETURN false;
    END IF;

    IF EXISTS (SELECT FROM ltv.revenue_events_default
               WHERE occurred_at >= v_lower AND occurred_at < v_upper) THEN
        v_stash := format('stranded_revenue_events_%s', replace(gen_random_uuid()::text, '-', ''));
        EXECUTE format('CREATE TEMP TABLE %I (LIKE ltv.revenue_events) ON COMMIT DROP', v_stash);
        EXECUTE format(
            'WITH moved AS (DELETE FROM ltv.revenue_events_default'
            '               WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *)'
            ' INSERT INTO pg_temp.%I SELECT * FROM moved', v_stash)
        USING v_lower, v_upper;
    END IF;

    EXECUTE format(
        'CREATE TABLE ltv.%I PARTITION OF ltv.revenue_events FOR VALUES FROM (%L) TO (%L)',
        v_name, v_lower, v_upper);
    IF v_stash IS NOT NULL THEN
        EXECUTE format('INSERT INTO ltv.%I SELECT * FROM pg_temp.%I', v_name, v_stash);
        EXECUTE format('DROP TABLE pg_temp.%I', v_stash);
    END IF;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION ltv.create_revenue_partition(date) IS
    'Create the revenue_events partition for the month of p_month (UTC), moving its rows out of the default partition; false if it existed';

CREATE OR REPLACE FUNCTION ltv.maintain_revenue_partitions()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_ahead   integer := (SELECT partition_months_ahead FROM ltv.settings);
    v_now     date := (now() AT TIME ZONE 'UTC')::date;
    v_month   date;
    v_created integer := 0;
BEGIN
    FOR v_month IN
        SELECT generate_series(date_trunc('month', v_now), date_trunc('month', v_now) + make_interval(months => v_ahead), interval '1 month')::date
        UNION
        SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date FROM ltv.revenue_events_default
        ORDER BY 1
    LOOP
        IF ltv.create_revenue_partition(v_month) THEN
            v_created := v_created + 1;
        END IF;
    END LOOP;
    RETURN v_created;
END;
$$;

COMMENT ON FUNCTION ltv.maintain_revenue_partitions() IS
    'Create upcoming monthly revenue_events partitions and rehome rows stranded in the default partition; returns partitions created';
