-- 0010_mrr_incremental: ltv.mrr_movements becomes a plain view over a table that
-- ltv.refresh_mrr_movements maintains customer by customer (mrr_movement_rows.sql,
-- refresh_mrr_movements.sql), instead of a materialized view re-derived from every event on
-- each refresh. The materialized view goes first; CASCADE takes ltv.cohort_retention, which the
-- frozen views/cohort_retention.sql of this revision re-creates over the new view.

DROP MATERIALIZED VIEW ltv.mrr_movements CASCADE;

CREATE TABLE ltv.mrr_movement_store (
    customer_id         bigint  NOT NULL,
    month               date    NOT NULL,
    vendor_category     text    NOT NULL,
    country             text    NOT NULL,
    acquisition_channel text    NOT NULL,
    signup_month        date    NOT NULL,
    opening_mrr         numeric NOT NULL CHECK (opening_mrr >= 0),
    new_mrr             numeric NOT NULL CHECK (new_mrr >= 0),
    expansion_mrr       numeric NOT NULL CHECK (expansion_mrr >= 0),
    contraction_mrr     numeric NOT NULL CHECK (contraction_mrr >= 0),
    churned_mrr         numeric NOT NULL CHECK (churned_mrr >= 0),
    reactivation_mrr    numeric NOT NULL CHECK (reactivation_mrr >= 0),
    closing_mrr         numeric NOT NULL CHECK (closing_mrr >= 0),
    movement            text    NOT NULL,
    one_off_revenue     numeric NOT NULL,
    PRIMARY KEY (customer_id, month)
);
CREATE INDEX mrr_movement_store_month_idx ON ltv.mrr_movement_store (month);
COMMENT ON TABLE ltv.mrr_movement_store IS
    'Internal: the rows of ltv.mrr_movements (read that view), kept equal to ltv.mrr_movement_rows(last refresh) by ltv.refresh_mrr_movements';

CREATE TABLE ltv.mrr_stale_customers (
    customer_id bigint
);
COMMENT ON TABLE ltv.mrr_stale_customers IS
    'Internal queue: customers whose ltv.mrr_movements rows a committed change may have moved (NULL = everyone), filled by the mrr_stale_* triggers, emptied by ltv.refresh_mrr_movements';
COMMENT ON COLUMN ltv.mrr_stale_customers.customer_id IS 'Customer to recompute; NULL = everyone (a plan changed, a table was truncated)';
