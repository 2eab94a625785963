-- ltv.customer_history(cutoff, customer_id, from_id, to_id): one row per customer who signed up
-- before the cutoff (or just the one, or those with ids in [from_id, to_id]), holding everything
-- the models and the LTV figures read, as of the cutoff: only events and subscriptions before it
-- count. Refits, backtests, the LTV scorer and the formula LTV all read this one definition.
--
-- One-off purchases (BG/NBD): time 0 is the signup; x = number of UTC days with a one-off
-- purchase (same-day purchases are one transaction), t_x = months from signup to the last of
-- them, t_cal = months from signup to the cutoff, mean_one_off = mean spend per purchase day.
-- Money: recurring = everything tied to a subscription (charges and their refunds), one-off =
-- the rest; both net of refunds, chargebacks and credits, in base-currency major units.
-- Subscription: the customer's latest subscription started before the cutoff; status is
-- 'ended' (ended_at ≤ cutoff), 'cancelled' (cancelled, still in its paid period), 'active' or
-- 'none'; paid_periods counts its charges; current_mrr is its last charge normalised to a month
-- (annual ÷ 12), zero unless active.
--
-- Where the facts come from (ltv.customer_history_via, identical rows either way): the live
-- statistics (ltv.customer_stats — current to the last committed payment; the few customers with
-- an event or subscription dated at or after the cutoff recomputed from the raw tables) for a
-- single customer (a few primary-key lookups), for a cutoff of now or later, and for a past
-- cutoff after which at most 2 % of the customers have been active (a refit as of the start of
-- the month: seconds instead of a pass over every event); otherwise — a backtest's cutoff months
-- back — one pass over the raw tables (ltv.customer_facts).

CREATE OR REPLACE FUNCTION ltv.customer_history(p_cutoff timestamptz, p_customer_id bigint DEFAULT NULL,
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
LANGUAGE sql STABLE  -- not parallel safe in general, as ltv.customer_history_via (see there)
SET search_path = pg_catalog, ltv
AS $$
-- a past cutoff for everyone: NULL, customer_history_via chooses by the share active since
SELECT * FROM ltv.customer_history_via(
    p_cutoff, p_customer_id, CASE WHEN p_customer_id IS NOT NULL OR p_cutoff >= now() THEN true END, p_from_id, p_to_id)
$$;

COMMENT ON FUNCTION ltv.customer_history(timestamptz, bigint, bigint, bigint) IS
    'Per-customer model inputs and money to date as of a cutoff (events before it only); from the live statistics for now, else the raw tables';
