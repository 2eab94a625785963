-- ltv_db 0003: bookkeeping for the BI materialized views. The views themselves are replaceable
-- objects installed from this revision's frozen copies of sql/views/ (each file drops and
-- re-creates its view, see their headers); only the table that outlives a view's re-creation
-- lives here.

-- One row per materialized view that ltv.refresh_views() maintains. Each sql/views/ file
-- registers its view here (with its place in the refresh order) and refresh_views() records
-- every refresh in it; ltv.view_freshness presents it to BI users.
CREATE TABLE ltv.view_refreshes (
    view_name           text        PRIMARY KEY CHECK (view_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    refresh_order       integer     NOT NULL UNIQUE,
    description         text        NOT NULL,
    last_refreshed_at   timestamptz,
    last_duration_ms    float8      CHECK (last_duration_ms >= 0),
    last_concurrently   boolean,
    last_refreshed_by   text,
    refresh_count       bigint      NOT NULL DEFAULT 0 CHECK (refresh_count >= 0)
);
COMMENT ON TABLE ltv.view_refreshes IS
    'The BI materialized views ltv.refresh_views() maintains, in refresh (dependency) order, with when each was last refreshed and how long it took';
COMMENT ON COLUMN ltv.view_refreshes.view_name IS 'Materialized view in schema ltv';
COMMENT ON COLUMN ltv.view_refreshes.refresh_order IS 'Views are refreshed in ascending order: a view only reads views with a lower number';
COMMENT ON COLUMN ltv.view_refreshes.description IS 'One line on what the view holds';
COMMENT ON COLUMN ltv.view_refreshes.last_refreshed_at IS 'Transaction time of the last successful refresh (the as-of time of its figures); NULL = never refreshed';
COMMENT ON COLUMN ltv.view_refreshes.last_duration_ms IS 'Wall-clock milliseconds the last refresh took';
COMMENT ON COLUMN ltv.view_refreshes.last_concurrently IS 'Whether the last refresh was CONCURRENTLY (false for the first population of an empty view)';
COMMENT ON COLUMN ltv.view_refreshes.last_refreshed_by IS 'Database role that ran the last refresh';
COMMENT ON COLUMN ltv.view_refreshes.refresh_count IS 'Successful refreshes since the view was (re)created';
