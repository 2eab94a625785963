-- 0012_view_rewrite: ltv.customer_ltv_snapshot becomes a plain view over a table that
-- ltv.refresh_customer_ltv_snapshot rewrites in one transaction, instead of a materialized view
-- refreshed CONCURRENTLY — every row changes on every refresh, the worst case for the
-- concurrent refresh's row-by-row diff. The materialized view goes first; CASCADE takes
-- ltv.unit_economics and ltv.segment_ltv, which the frozen views of this revision re-create.

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
