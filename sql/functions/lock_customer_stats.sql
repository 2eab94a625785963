-- ltv.lock_customer_stats(customer_ids): lock the live-statistics rows of these customers for
-- the rest of the transaction, in customer_id order, creating an empty row (all-zero facts)
-- for a customer who has none yet. ltv.refresh_customer_stats calls this before it reads what
-- it will write: writers for the same customer queue here, and the next statement of the one
-- that gets through sees everything its predecessors committed. (The INSERT trigger needs no
-- such statement for customers with a row — its UPDATE computes the new values from the row
-- it locks, see live_stats_triggers.sql — and calls this for customers without one.) Locking
-- in id order means two statements can never each hold a row the other waits for. Writers for different
-- customers lock different rows and do not wait for each other; there is no table lock.
-- (ON CONFLICT DO UPDATE … WHERE false locks the existing row without writing it.)

CREATE OR REPLACE FUNCTION ltv.lock_customer_stats(p_customer_ids bigint[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
BEGIN
-- PL/pgSQL: the statement is planned once per session (a trigger calls this for every write)
INSERT INTO ltv.customer_stats AS t (customer_id)
SELECT DISTINCT id FROM unnest(p_customer_ids) id WHERE id IS NOT NULL ORDER BY id
ON CONFLICT (customer_id) DO UPDATE SET customer_id = excluded.customer_id WHERE false;
END;
$$;

COMMENT ON FUNCTION ltv.lock_customer_stats(bigint[]) IS
    'Lock (creating empty ones as needed) the customer_stats rows of these customers in id order, before recomputing them';
