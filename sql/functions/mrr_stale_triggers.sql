-- Statement-level triggers that queue, in ltv.mrr_stale_customers, the customers whose rows of
-- ltv.mrr_movements a change may have moved, so ltv.refresh_mrr_movements recomputes those
-- customers only instead of the whole history:
--   * ltv.revenue_events, ltv.subscriptions — inserted, updated or deleted rows (old and new
--     customer of an update) → those customers; TRUNCATE → everyone;
--   * ltv.customers — updated or deleted customers (the rows carry the segment columns);
--     a new customer has no MRR rows until its first event or subscription;
--   * ltv.plans — a plan deleted or its billing interval changed → everyone.
-- Everyone is queued as one row with a NULL customer_id. The queue is in the same transaction
-- as the change: committed with it, gone with a rollback. Rows are appended without a
-- uniqueness check (cheap for a bulk load's 100,000 customers); the refresh takes the distinct
-- ids.

CREATE OR REPLACE FUNCTION ltv.mrr_stale_after_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
BEGIN
IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO ltv.mrr_stale_customers (customer_id) VALUES (NULL);
ELSIF TG_TABLE_NAME = 'plans' THEN
    -- an upsert that changed nothing still fires the UPDATE trigger, with no rows
    IF TG_OP = 'DELETE' AND EXISTS (SELECT FROM old_rows)
       OR TG_OP = 'UPDATE' AND EXISTS (SELECT plan_code, billing_interval FROM old_rows
                                       EXCEPT SELECT plan_code, billing_interval FROM new_rows) THEN
        INSERT INTO ltv.mrr_stale_customers (customer_id) VALUES (NULL);
    END IF;
ELSIF TG_OP = 'INSERT' THEN
    INSERT INTO ltv.mrr_stale_customers (customer_id) SELECT DISTINCT customer_id FROM new_rows;
ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO ltv.mrr_stale_customers (customer_id) SELECT DISTINCT customer_id FROM old_rows;
ELSE
    INSERT INTO ltv.mrr_stale_customers (customer_id)
    SELECT customer_id FROM old_rows UNION SELECT customer_id FROM new_rows;
END IF;
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.mrr_stale_after_change() IS
    'Statement trigger: queue the customers whose ltv.mrr_movements rows a change may move (NULL = everyone) in ltv.mrr_stale_customers';

-- ---- the triggers (CREATE OR REPLACE: rerunning this file is harmless) --------------------------
CREATE OR REPLACE TRIGGER mrr_stale_insert AFTER INSERT ON ltv.revenue_events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_update AFTER UPDATE ON ltv.revenue_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_delete AFTER DELETE ON ltv.revenue_events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_truncate AFTER TRUNCATE ON ltv.revenue_events
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();

CREATE OR REPLACE TRIGGER mrr_stale_insert AFTER INSERT ON ltv.subscriptions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_update AFTER UPDATE ON ltv.subscriptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_delete AFTER DELETE ON ltv.subscriptions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_truncate AFTER TRUNCATE ON ltv.subscriptions
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();

CREATE OR REPLACE TRIGGER mrr_stale_update AFTER UPDATE ON ltv.customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_delete AFTER DELETE ON ltv.customers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();

CREATE OR REPLACE TRIGGER mrr_stale_update AFTER UPDATE ON ltv.plans
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_delete AFTER DELETE ON ltv.plans
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();
CREATE OR REPLACE TRIGGER mrr_stale_truncate AFTER TRUNCATE ON ltv.plans
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.mrr_stale_after_change();

COMMENT ON TRIGGER mrr_stale_insert ON ltv.revenue_events IS 'Queues the customers of new events for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_update ON ltv.revenue_events IS 'Queues the customers of changed events for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_delete ON ltv.revenue_events IS 'Queues the customers of deleted events for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_truncate ON ltv.revenue_events IS 'Queues everyone for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_insert ON ltv.subscriptions IS 'Queues the customers of new subscriptions for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_update ON ltv.subscriptions IS 'Queues the customers of changed subscriptions for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_delete ON ltv.subscriptions IS 'Queues the customers of deleted subscriptions for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_truncate ON ltv.subscriptions IS 'Queues everyone for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_update ON ltv.customers IS 'Queues updated customers (segment columns) for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_delete ON ltv.customers IS 'Queues deleted customers for ltv.refresh_mrr_movements';
COMMENT ON TRIGGER mrr_stale_update ON ltv.plans IS 'Queues everyone for ltv.refresh_mrr_movements when a billing interval changed (it feeds every subscriber''s MRR)';
COMMENT ON TRIGGER mrr_stale_delete ON ltv.plans IS 'Queues everyone for ltv.refresh_mrr_movements when a plan is deleted';
COMMENT ON TRIGGER mrr_stale_truncate ON ltv.plans IS 'Queues everyone for ltv.refresh_mrr_movements';
