-- ltv.view_freshness: when each BI view was last refreshed, how long that took and
-- how old its figures are — what a dashboard shows under "data as of", and what monitoring
-- alerts on. A plain view over ltv.view_refreshes (kept by ltv.refresh_views()) and the
-- catalog, so it is always current; CREATE OR REPLACE is enough to change it.

CREATE OR REPLACE VIEW ltv.view_freshness AS
SELECT r.view_name,
       r.description,
       -- a maintained (plain) view is populated by its first refresh
       coalesce(CASE c.relkind WHEN 'v' THEN r.last_refreshed_at IS NOT NULL ELSE c.relispopulated END, false) AS populated,
       r.last_refreshed_at,
       now() - r.last_refreshed_at        AS age,
       r.last_duration_ms,
       r.last_concurrently,
       r.last_refreshed_by,
       r.refresh_count,
       r.refresh_order
FROM ltv.view_refreshes r
LEFT JOIN pg_catalog.pg_class c ON c.oid = to_regclass(format('ltv.%I', r.view_name));

COMMENT ON VIEW ltv.view_freshness IS
    'Freshness of the BI views (refreshed by ltv.refresh_views(), every 15 minutes by pg_cron): when, how long, how old';
COMMENT ON COLUMN ltv.view_freshness.view_name IS 'View in schema ltv: a materialized one, or a plain view over a table its ltv.refresh_<view> function keeps (customer_ltv_snapshot, segment_ltv, mrr_movements)';
COMMENT ON COLUMN ltv.view_freshness.description IS 'What the view holds';
COMMENT ON COLUMN ltv.view_freshness.populated IS 'False until the first refresh: reading an unpopulated view is an error';
COMMENT ON COLUMN ltv.view_freshness.last_refreshed_at IS 'As-of time of the view''s figures (start of the last successful refresh transaction); NULL = never';
COMMENT ON COLUMN ltv.view_freshness.age IS 'How old the figures are: now() − last_refreshed_at';
COMMENT ON COLUMN ltv.view_freshness.last_duration_ms IS 'Milliseconds the last refresh took (including ANALYZE)';
COMMENT ON COLUMN ltv.view_freshness.last_concurrently IS 'Whether readers could keep reading during the last refresh (REFRESH … CONCURRENTLY, or a plain view''s own refresh); false for a materialized view''s first population';
COMMENT ON COLUMN ltv.view_freshness.last_refreshed_by IS 'Role that ran the last refresh';
COMMENT ON COLUMN ltv.view_freshness.refresh_count IS 'Successful refreshes since the view was (re)created';
COMMENT ON COLUMN ltv.view_freshness.refresh_order IS 'Position in the refresh order (a view only reads views refreshed before it)';
