-- ltv_db 0003 downgrade: remove the BI views, their refresh function and bookkeeping (the
-- pg_cron jobs are unscheduled by migrations.downgrade before this runs).
DROP VIEW IF EXISTS ltv.view_freshness;
DROP MATERIALIZED VIEW IF EXISTS ltv.cohort_retention;
DROP MATERIALIZED VIEW IF EXISTS ltv.mrr_movements;
DROP MATERIALIZED VIEW IF EXISTS ltv.segment_ltv;
DROP MATERIALIZED VIEW IF EXISTS ltv.unit_economics;
DROP MATERIALIZED VIEW IF EXISTS ltv.customer_ltv_snapshot;
DROP FUNCTION IF EXISTS ltv.refresh_views(text[]);
DROP TABLE IF EXISTS ltv.view_refreshes;
