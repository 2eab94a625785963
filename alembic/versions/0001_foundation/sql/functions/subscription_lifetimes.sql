-- ltv.subscription_lifetimes(cutoff): one row per subscription started before the cutoff, with
-- the number of billing periods it paid for and whether its churn was observed by the cutoff.
-- This is the input of the shifted-beta-geometric fit: a churned subscription that paid t
-- periods contributes P(T = t); one still running after t periods contributes P(T ≥ t).
-- Churn is observed when the subscription has ended by the cutoff. A cancellation whose paid
-- period is still running is censored here: counting it as churn would bias the fit, because
-- the subscribers who will leave at this renewal are then partly known in advance while
-- those who will stay are not (scoring still uses the cancellation: no further payments).

CREATE OR REPLACE FUNCTION ltv.subscription_lifetimes(p_cutoff timestamptz)
RETURNS TABLE (
    customer_id      bigint,
    subscription_id  bigint,
    vendor_category  text,
    billing_interval text,
    periods          integer,
    churned          boolean
)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
SELECT s.customer_id, s.subscription_id, c.vendor_category, p.billing_interval,
       CASE WHEN s.ended_at <= p_cutoff
            -- ended exactly at the end of its last paid period: that instant starts no period
            THEN greatest(ltv.billing_periods_started(p.billing_interval, s.started_at, s.ended_at - interval '1 microsecond'), 1)
            ELSE ltv.billing_periods_started(p.billing_interval, s.started_at, p_cutoff) END,
       coalesce(s.ended_at <= p_cutoff, false)
FROM ltv.subscriptions s
JOIN ltv.plans p USING (plan_code)
JOIN ltv.customers c USING (customer_id)
WHERE s.started_at < p_cutoff
$$;

COMMENT ON FUNCTION ltv.subscription_lifetimes(timestamptz) IS
    'Per subscription started before the cutoff: billing periods paid and whether churn was observed (sBG fit input)';
