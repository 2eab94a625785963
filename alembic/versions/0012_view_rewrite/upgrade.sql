-- 0012_view_rewrite: ltv.customer_ltv_snapshot and ltv.segment_ltv become plain views over
-- tables that ltv.refresh_customer_ltv_snapshot and ltv.refresh_segment_ltv rewrite in place in
-- one transaction, instead of materialized views refreshed CONCURRENTLY — every row of both
-- changes on every refresh, the worst case for the concurrent refresh's row-by-row diff. The
-- materialized views go first; CASCADE takes ltv.unit_economics and ltv.segment_ltv, which the
-- frozen views of this revision re-create.

DROP MATERIALIZED VIEW ltv.customer_ltv_snapshot CASCADE;

CREATE TABLE ltv.customer_ltv_snapshot_store (
    customer_id               bigint      NOT NULL PRIMARY KEY,
    customer_ref              text        NOT NULL,
    vendor_category           text        NOT NULL,
    country                   text        NOT NULL,
    region                    text,
    acquisition_channel       text        NOT NULL,
    signed_up_at              timestamptz NOT NULL,
    signup_month              date        NOT NULL,
    plan_code                 text,
    plan_tier                 text        NOT NULL,
    billing_interval          text        NOT NULL,
    subscription_status       text        NOT NULL,
    net_revenue               numeric,
    realised_margin           numeric,
    current_mrr               numeric,
    channel_formula_ltv       numeric,
    predicted_recurring       numeric,
    predicted_one_off         numeric,
    total_ltv                 numeric,
    ltv_low                   numeric,
    ltv_high                  numeric,
    p_alive                   float8,
    expected_purchases        float8,
    expected_remaining_months float8,
    sbg_segment               text,
    bgnbd_segment             text,
    as_of                     timestamptz NOT NULL
) WITH (fillfactor = 45);  -- room in every page for the next version of its rows: HOT updates
CREATE INDEX customer_ltv_snapshot_store_segment_idx
    ON ltv.customer_ltv_snapshot_store (vendor_category, country, acquisition_channel);
COMMENT ON TABLE ltv.customer_ltv_snapshot_store IS
    'Internal: the rows of ltv.customer_ltv_snapshot (read that view), rewritten by ltv.refresh_customer_ltv_snapshot';

CREATE TABLE ltv.segment_ltv_store (
    grouping_level      text        NOT NULL,
    vendor_category     text        NOT NULL,
    country             text        NOT NULL,
    plan_tier           text        NOT NULL,
    billing_interval    text        NOT NULL,
    acquisition_channel text        NOT NULL,
    signup_cohort       text        NOT NULL,
    signup_month        date,
    customers           bigint      NOT NULL,
    scored_customers    bigint      NOT NULL,
    active_subscribers  bigint      NOT NULL,
    total_ltv           numeric,
    mean_ltv            numeric,
    median_ltv          numeric,
    p90_ltv             numeric,
    mrr                 numeric,
    arpa                numeric,
    mean_cac            numeric,
    ltv_to_cac          numeric,
    cac_payback_months  numeric,
    as_of               timestamptz NOT NULL,
    PRIMARY KEY (vendor_category, grouping_level, country, acquisition_channel, plan_tier, billing_interval,
                 signup_cohort)
) WITH (fillfactor = 45);  -- as the snapshot's store: HOT updates
CREATE INDEX segment_ltv_store_level_idx ON ltv.segment_ltv_store (grouping_level, country, acquisition_channel);
COMMENT ON TABLE ltv.segment_ltv_store IS
    'Internal: the rows of ltv.segment_ltv (read that view), recomputed by ltv.refresh_segment_ltv';
