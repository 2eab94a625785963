-- ltv.one_off_purchases_on_day(customer_id, day): how many one-off purchases the customer made
-- on that UTC day, counted in ltv.revenue_events. The live-statistics INSERT trigger asks this
-- when a newly added one-off purchase falls strictly between the customer's first and last
-- purchase days, to know whether the day was already a purchase day (x counts days, not
-- purchases). One primary-key range probe in the one partition holding that day; PL/pgSQL so
-- the plan (with run-time partition pruning) is made once per session, not per call.
-- VOLATILE, which under READ COMMITTED gives each call a snapshot of its own: the trigger calls
-- it after locking the customer's statistics row, and a snapshot taken then includes the
-- purchases of any writer it waited for (the statement's own snapshot would not).

CREATE OR REPLACE FUNCTION ltv.one_off_purchases_on_day(p_customer_id bigint, p_day date)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
RETURN (
    SELECT count(*)
    FROM ltv.revenue_events e
    WHERE e.customer_id = p_customer_id
      AND e.occurred_at >= p_day::timestamp AT TIME ZONE 'UTC'
      AND e.occurred_at < (p_day + 1)::timestamp AT TIME ZONE 'UTC'
      AND e.kind = 'one_off'
);
END;
$$;

COMMENT ON FUNCTION ltv.one_off_purchases_on_day(bigint, date) IS
    'Number of one-off purchases of a customer on a UTC day (the INSERT trigger''s check for an already-counted purchase day)';
