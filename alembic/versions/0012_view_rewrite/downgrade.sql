-- 0012_view_rewrite: back to the materialized snapshot of 0003 (re-created, unpopulated, with
-- ltv.unit_economics and ltv.segment_ltv over it, by the frozen views of earlier revisions that
-- the downgrade reinstalls after this file).
DROP VIEW IF EXISTS ltv.customer_ltv_snapshot CASCADE;  -- and the materialized views over it
DROP FUNCTION IF EXISTS ltv.refresh_customer_ltv_snapshot(timestamptz);
DROP FUNCTION IF EXISTS ltv.formula_ltv_from(timestamptz, text[], bigint[], numeric[]);
DROP TABLE IF EXISTS ltv.customer_ltv_snapshot_store;
