-- ltv_db 0002: live per-customer statistics. The table only; the functions that compute and
-- keep it (sql/functions/customer_facts.sql, live_stats_triggers.sql, …) are installed from this
-- revision's frozen copies, and the revision module backfills the table from the raw data.

CREATE TABLE ltv.customer_stats (
    customer_id            bigint      PRIMARY KEY,
    event_count            bigint      NOT NULL DEFAULT 0,
    first_event_at         timestamptz,
    last_event_at          timestamptz,
    recurring_net          numeric     NOT NULL DEFAULT 0,
    one_off_net            numeric     NOT NULL DEFAULT 0,
    x                      integer     NOT NULL DEFAULT 0,
    first_purchase_at      timestamptz,
    last_purchase_at       timestamptz,
    one_off_spend          numeric     NOT NULL DEFAULT 0,
    subscription_id        bigint,
    plan_code              text,
    subscription_started   timestamptz,
    subscription_cancelled timestamptz,
    subscription_ended     timestamptz,
    paid_periods           integer     NOT NULL DEFAULT 0,
    last_period_at         timestamptz,
    last_period_event_id   bigint,
    period_amount          numeric
)
-- every payment rewrites its customer's row: half of each page is left free so the new
-- version fits beside the old one (a HOT update: no index entry, pruned in place)
WITH (fillfactor = 50);

COMMENT ON TABLE ltv.customer_stats IS
    'Live per-customer statistics: the time-independent facts of ltv.customer_facts(NULL) (everything recorded), kept current in the '
    'same transaction by statement triggers on revenue_events and subscriptions. One row per customer with any event or '
    'subscription (none = all zero). Cut-off dependent figures (t_cal, status, MRR) are derived at read time by '
    'ltv.customer_history. ltv.verify_customer_stats() checks it; ltv.refresh_customer_stats() repairs it.';
COMMENT ON COLUMN ltv.customer_stats.customer_id IS 'The customer (ltv.customers.customer_id)';
COMMENT ON COLUMN ltv.customer_stats.event_count IS 'Number of revenue events of any kind';
COMMENT ON COLUMN ltv.customer_stats.first_event_at IS 'Time of the earliest revenue event';
COMMENT ON COLUMN ltv.customer_stats.last_event_at IS 'Time of the latest revenue event';
COMMENT ON COLUMN ltv.customer_stats.recurring_net IS
    'Net base-currency revenue tied to subscriptions (charges and their refunds), after refunds, chargebacks and credits';
COMMENT ON COLUMN ltv.customer_stats.one_off_net IS 'Net base-currency revenue not tied to a subscription';
COMMENT ON COLUMN ltv.customer_stats.x IS 'BG/NBD frequency: number of UTC days with a one-off purchase';
COMMENT ON COLUMN ltv.customer_stats.first_purchase_at IS 'Time of the first one-off purchase';
COMMENT ON COLUMN ltv.customer_stats.last_purchase_at IS
    'First one-off purchase of the latest purchase day (BG/NBD recency point t_x: same-day purchases are one transaction)';
COMMENT ON COLUMN ltv.customer_stats.one_off_spend IS 'Gross base-currency spend on one-off purchases (mean per purchase day = one_off_spend / x)';
COMMENT ON COLUMN ltv.customer_stats.subscription_id IS 'The latest subscription (greatest started_at, then subscription_id)';
COMMENT ON COLUMN ltv.customer_stats.plan_code IS 'Plan of the latest subscription (billing interval read from ltv.plans)';
COMMENT ON COLUMN ltv.customer_stats.subscription_started IS 'When the latest subscription started';
COMMENT ON COLUMN ltv.customer_stats.subscription_cancelled IS 'When the latest subscription was cancelled (NULL = not cancelled)';
COMMENT ON COLUMN ltv.customer_stats.subscription_ended IS 'When the latest subscription''s service ended (NULL = not ended)';
COMMENT ON COLUMN ltv.customer_stats.paid_periods IS 'Number of subscription charges of the latest subscription';
COMMENT ON COLUMN ltv.customer_stats.last_period_at IS 'Time of the latest charge of the latest subscription';
COMMENT ON COLUMN ltv.customer_stats.last_period_event_id IS 'event_id of that charge (orders charges at the same instant)';
COMMENT ON COLUMN ltv.customer_stats.period_amount IS 'Base-currency amount of that charge (current MRR = it, ÷ 12 for annual plans, while active)';
