-- ltv.facts_dated_from(last_event_at, subscription_started, cutoff): whether a customer's live
-- statistics (ltv.customer_stats) hold an event or a subscription dated at or after the cutoff
-- — the customers whose facts as of the cutoff differ from their live row, so that
-- ltv.customer_history_via recomputes them from the raw tables, and whose presence makes
-- ltv.refresh_customer_ltv_snapshot score in one backend (a parallel worker cannot recompute
-- them). One rule for both: NULL dates (no event, no subscription) are never after anything.
--
-- A SQL-standard body without a SET clause, so the planner inlines it into the scan of a
-- million statistics rows; the body is bound to the comparison operators when the function is
-- created, so no search_path can change it.

CREATE OR REPLACE FUNCTION ltv.facts_dated_from(p_last_event_at timestamptz, p_subscription_started timestamptz,
                                                p_cutoff timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(p_last_event_at >= p_cutoff, false) OR coalesce(p_subscription_started >= p_cutoff, false);

COMMENT ON FUNCTION ltv.facts_dated_from(timestamptz, timestamptz, timestamptz) IS
    'Whether a customer''s live statistics hold an event or subscription dated at or after the cutoff (its facts as of the cutoff come from the raw tables)';
