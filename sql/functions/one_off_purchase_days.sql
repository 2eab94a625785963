-- ltv.one_off_purchase_days(customer_id, from_day, to_day): the UTC days from from_day to
-- to_day (inclusive) on which the customer made one-off purchases, with how many, counted in
-- ltv.revenue_events. The live-statistics INSERT trigger asks this for a customer whose added
-- purchases fall on or between the first and last purchase days it has stored, to know which of
-- those days are new (x counts days, not purchases): its own purchases are in the table already.
-- One primary-key range scan in the partitions of those days; PL/pgSQL so the plan (with
-- run-time partition pruning) is made once per session, not per call. VOLATILE, which under
-- READ COMMITTED gives each call a snapshot of its own: the trigger calls it after locking the
-- customer's statistics row, and a snapshot taken then includes the purchases of any writer it
-- waited for (the statement's own snapshot would not).

CREATE OR REPLACE FUNCTION ltv.one_off_purchase_days(p_customer_id bigint, p_from date, p_to date)
RETURNS TABLE (day date, purchases bigint)
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
RETURN QUERY
    SELECT (e.occurred_at AT TIME ZONE 'UTC')::date, count(*)
    FROM ltv.revenue_events e
    WHERE e.customer_id = p_customer_id
      AND e.occurred_at >= p_from::timestamp AT TIME ZONE 'UTC'
      AND e.occurred_at < (p_to + 1)::timestamp AT TIME ZONE 'UTC'
      AND e.kind = 'one_off'
    GROUP BY 1;
END;
$$;

COMMENT ON FUNCTION ltv.one_off_purchase_days(bigint, date, date) IS
    'One-off purchase days of a customer between two UTC days, with the number of purchases on each (the INSERT trigger''s check for already-counted purchase days)';
