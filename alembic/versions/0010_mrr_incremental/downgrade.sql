-- 0010_mrr_incremental: back to the materialized view of 0003 (re-created, unpopulated, by the
-- frozen views of earlier revisions that the downgrade reinstalls after this file).
DROP VIEW IF EXISTS ltv.mrr_movements CASCADE;  -- and ltv.cohort_retention over it
DROP TRIGGER IF EXISTS mrr_stale_insert ON ltv.revenue_events;
DROP TRIGGER IF EXISTS mrr_stale_update ON ltv.revenue_events;
DROP TRIGGER IF EXISTS mrr_stale_delete ON ltv.revenue_events;
DROP TRIGGER IF EXISTS mrr_stale_truncate ON ltv.revenue_events;
DROP TRIGGER IF EXISTS mrr_stale_insert ON ltv.subscriptions;
DROP TRIGGER IF EXISTS mrr_stale_update ON ltv.subscriptions;
DROP TRIGGER IF EXISTS mrr_stale_delete ON ltv.subscriptions;
DROP TRIGGER IF EXISTS mrr_stale_truncate ON ltv.subscriptions;
DROP TRIGGER IF EXISTS mrr_stale_update ON ltv.customers;
DROP TRIGGER IF EXISTS mrr_stale_delete ON ltv.customers;
DROP TRIGGER IF EXISTS mrr_stale_update ON ltv.plans;
DROP TRIGGER IF EXISTS mrr_stale_delete ON ltv.plans;
DROP TRIGGER IF EXISTS mrr_stale_truncate ON ltv.plans;
DROP FUNCTION IF EXISTS ltv.mrr_stale_after_change();
DROP FUNCTION IF EXISTS ltv.refresh_mrr_movements(timestamptz);
DROP FUNCTION IF EXISTS ltv.verify_mrr_movements();
DROP FUNCTION IF EXISTS ltv.mrr_movement_rows(timestamptz, bigint[]);
DROP TABLE IF EXISTS ltv.mrr_stale_customers;
DROP TABLE IF EXISTS ltv.mrr_movement_store;
