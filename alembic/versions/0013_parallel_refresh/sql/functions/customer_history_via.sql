-- ltv.customer_history_via(cutoff, customer_id, live, from_id, to_id): the rows of
-- ltv.customer_history (see there for every column; one customer, the customers with ids in
-- [from_id, to_id], or everyone), derived from per-customer facts by one query whichever way
-- the facts are obtained:
--   live = false  ltv.customer_facts(cutoff) — the raw tables, events before the cutoff only;
--   live = true   ltv.customer_stats — the live statistics, i.e. the facts of everything
--                 recorded. A live row equals the facts as of the cutoff unless the customer
--                 has an event or a subscription dated at or after it; those few customers are
--                 recomputed from the raw tables as of the cutoff, so both ways return
--                 identical rows;
--   live = NULL   live when at most 2 % of the customers have an event or subscription dated at
--                 or after the cutoff, else the raw tables — decided by the same pass over the
--                 live statistics that finds those customers.
-- ltv.customer_history chooses the way; tests call this directly to compare the two.
--
-- Derived at read time (never stored, so nothing goes stale as the clock moves): t_x and t_cal
-- from signup, mean one-off spend per purchase day, margins from settings, the billing
-- interval from plans, the subscription status at the cutoff and current MRR.

CREATE OR REPLACE FUNCTION ltv.customer_history_via(p_cutoff timestamptz, p_customer_id bigint, p_live boolean,
                                                    p_from_id bigint DEFAULT NULL, p_to_id bigint DEFAULT NULL)
RETURNS TABLE (
    customer_id          bigint,
    vendor_category      text,
    country              text,
    acquisition_channel  text,
    signed_up_at         timestamptz,
    x                    integer,
    t_x                  float8,
    t_cal                float8,
    mean_one_off         float8,
    recurring_net        numeric,
    one_off_net          numeric,
    net_revenue          numeric,
    realised_margin      numeric,
    first_event_at       timestamptz,
    last_event_at        timestamptz,
    subscription_id      bigint,
    billing_interval     text,
    subscription_status  text,
    subscription_started timestamptz,
    paid_periods         integer,
    period_amount        numeric,
    current_mrr          numeric
)
LANGUAGE plpgsql STABLE
-- Not parallel safe in general: one customer sets plan_cache_mode, and customers needing the raw
-- tables call ltv.customer_facts, which sets enable_nestloop — both refused inside a parallel
-- query. A range of customers with no facts dated at or after the cutoff only reads (what
-- ltv.score_customer_range relies on).
SET search_path = pg_catalog, ltv
SET plan_cache_mode = force_custom_plan  -- many customers; one customer sets its own below
AS $$
#variable_conflict use_column
DECLARE
    -- the customers wanted, as a primary-key range (one customer, a range, or everyone)
    v_from    bigint := coalesce(p_customer_id, p_from_id, -9223372036854775808);
    v_to      bigint := coalesce(p_customer_id, p_to_id, 9223372036854775807);
    v_raw_ids bigint[];  -- customers whose facts come from the raw tables (NULL = everyone)
    v_known   bigint;    -- customers with live statistics
BEGIN
IF p_customer_id IS NOT NULL AND (p_from_id IS NOT NULL OR p_to_id IS NOT NULL) THEN
    RAISE EXCEPTION 'ltv.customer_history_via: give one customer or a range of customers, not both'
        USING ERRCODE = 'invalid_parameter_value';
END IF;
-- One customer (ltv.customer_ltv, a few milliseconds): the plans made once per session, every
-- scan a primary-key lookup. Many (refits, the LTV snapshot): planned for the call (the SET
-- clause), so the branch of `facts` not used folds away and the scans are sequential.
IF p_customer_id IS NOT NULL THEN
    PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
END IF;
IF p_live IS NOT FALSE THEN
    SELECT coalesce(array_agg(s.customer_id) FILTER (WHERE ltv.facts_dated_from(s.last_event_at, s.subscription_started, p_cutoff)),
                    '{}'),
           count(*)
    INTO v_raw_ids, v_known
    FROM ltv.customer_stats s
    WHERE s.customer_id BETWEEN v_from AND v_to;
    IF p_live IS NULL THEN
        p_live := cardinality(v_raw_ids) <= 0.02 * v_known;
        IF NOT p_live THEN
            v_raw_ids := CASE WHEN p_customer_id IS NOT NULL THEN ARRAY[p_customer_id] END;
        END IF;
    END IF;
ELSIF p_customer_id IS NOT NULL THEN
    v_raw_ids := ARRAY[p_customer_id];
END IF;

RETURN QUERY
WITH
settings AS (
    SELECT margin_subscription, margin_one_off FROM ltv.settings
),
facts AS (
    SELECT s.*
    FROM ltv.customer_stats s
    WHERE p_live
      AND s.customer_id BETWEEN v_from AND v_to
      AND NOT ltv.facts_dated_from(s.last_event_at, s.subscription_started, p_cutoff)
    UNION ALL
    SELECT f.*
    FROM ltv.customer_facts(p_cutoff, v_raw_ids) f
    WHERE NOT p_live OR cardinality(v_raw_ids) > 0
),
facts_at_cutoff AS (
    SELECT f.*,
           CASE WHEN f.subscription_id IS NULL THEN 'none'
                WHEN f.subscription_ended <= p_cutoff THEN 'ended'
                WHEN f.subscription_cancelled <= p_cutoff THEN 'cancelled'
                ELSE 'active' END AS status
    FROM facts f
)
SELECT c.customer_id, c.vendor_category, c.country, c.acquisition_channel, c.signed_up_at,
       coalesce(f.x, 0),
       coalesce(ltv.months_between(c.signed_up_at, f.last_purchase_at), 0),
       ltv.months_between(c.signed_up_at, p_cutoff),
       (f.one_off_spend / nullif(f.x, 0))::float8,
       coalesce(f.recurring_net, 0),
       coalesce(f.one_off_net, 0),
       coalesce(f.recurring_net, 0) + coalesce(f.one_off_net, 0),
       round(coalesce(f.recurring_net, 0) * st.margin_subscription + coalesce(f.one_off_net, 0) * st.margin_one_off, 4),
       f.first_event_at,
       f.last_event_at,
       f.subscription_id,
       p.billing_interval,
       coalesce(f.status, 'none'),
       f.subscription_started,
       coalesce(f.paid_periods, 0),
       f.period_amount,
       CASE WHEN f.status = 'active'
            THEN round(coalesce(f.period_amount, 0) / CASE p.billing_interval WHEN 'year' THEN 12 ELSE 1 END, 4)
            ELSE 0 END
FROM ltv.customers c
CROSS JOIN settings st
LEFT JOIN facts_at_cutoff f USING (customer_id)
LEFT JOIN ltv.plans p ON p.plan_code = f.plan_code
WHERE c.signed_up_at < p_cutoff
  AND c.customer_id BETWEEN v_from AND v_to;
END;
$$;

COMMENT ON FUNCTION ltv.customer_history_via(timestamptz, bigint, boolean, bigint, bigint) IS
    'ltv.customer_history rows derived from the live statistics (live = true, exact at any cutoff) or from the raw tables (false)';
