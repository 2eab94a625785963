-- ltv.notify_customers_changed(customer_ids): tell listeners that these customers' figures
-- changed. Channel `ltv_changed`; payload JSON {"ids":[3,17,…]} (ascending, distinct), split
-- over as many notifications as needed to keep each payload under 8000 bytes (PostgreSQL's
-- limit); for more than 5,000 customers — or NULL, meaning everyone — a single {"all":true}
-- instead, which tells a cache to flush everything (cheaper than thousands of deletes).
-- Notifications are delivered at commit and dropped on rollback; PostgreSQL folds identical
-- ones within a transaction. Every statement that changes revenue events, subscriptions,
-- customers, settings, plans or the active fits calls this once (see README, "Change
-- notifications"). Returns the number of notifications queued.

CREATE OR REPLACE FUNCTION ltv.notify_customers_changed(p_customer_ids bigint[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    c_channel   CONSTANT text    := 'ltv_changed';
    c_max_ids   CONSTANT integer := 5000;
    c_max_bytes CONSTANT integer := 7900;  -- of ids and commas per payload; the JSON around them adds 10
    v_ids       bigint[];
    v_payload   text;
    v_sent      integer := 0;
BEGIN
IF p_customer_ids IS NOT NULL THEN
    SELECT array_agg(DISTINCT id) INTO v_ids FROM unnest(p_customer_ids) id WHERE id IS NOT NULL;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
END IF;
IF v_ids IS NULL OR cardinality(v_ids) > c_max_ids THEN
    PERFORM pg_notify(c_channel, '{"all":true}');
    RETURN 1;
END IF;
FOR v_payload IN
    WITH
    running_sizes AS (
        SELECT id, sum(length(id::text) + 1) OVER (ORDER BY id) AS bytes_so_far
        FROM unnest(v_ids) id
    )
    SELECT '{"ids":[' || string_agg(id::text, ',' ORDER BY id) || ']}'
    FROM running_sizes
    GROUP BY bytes_so_far / c_max_bytes
    ORDER BY bytes_so_far / c_max_bytes
LOOP
    PERFORM pg_notify(c_channel, v_payload);
    v_sent := v_sent + 1;
END LOOP;
RETURN v_sent;
END;
$$;

COMMENT ON FUNCTION ltv.notify_customers_changed(bigint[]) IS
    'NOTIFY ltv_changed with {"ids":[…]} in payloads under 8000 bytes, or {"all":true} for NULL or more than 5,000 customers';
