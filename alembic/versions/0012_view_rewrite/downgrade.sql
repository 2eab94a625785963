-- 0012_view_rewrite: back to the materialized snapshot and segment views of 0003 (re-created,
-- unpopulated, with ltv.unit_economics, by the frozen views of earlier revisions that the
-- downgrade reinstalls after this file).
DROP VIEW IF EXISTS ltv.customer_ltv_snapshot CASCADE;  -- and the materialized views over it
DROP FUNCTION IF EXISTS ltv.refresh_customer_ltv_snapshot(timestamptz);
DROP FUNCTION IF EXISTS ltv.formula_ltv_from(timestamptz, text[], bigint[], numeric[]);
DROP TABLE IF EXISTS ltv.customer_ltv_snapshot_store;
DROP VIEW IF EXISTS ltv.segment_ltv;
DROP FUNCTION IF EXISTS ltv.refresh_segment_ltv(timestamptz);
DROP TABLE IF EXISTS ltv.segment_ltv_store;
