-- ltv_db 0001: the foundation schema. Tables only; replaceable objects (functions, views)
-- are installed from this revision's frozen copies of sql/ (see README "Migrations").

CREATE SCHEMA IF NOT EXISTS ltv;
COMMENT ON SCHEMA ltv IS 'ltv_db: customer-lifetime-value engine (tables, LTV functions, BI views)';

-- ---------------------------------------------------------------------------------------------
-- Reference data
-- ---------------------------------------------------------------------------------------------
CREATE TABLE ltv.currencies (
    currency  char(3)  PRIMARY KEY CHECK (currency ~ '^[A-Z]{3}$'),
    exponent  smallint NOT NULL CHECK (exponent BETWEEN 0 AND 4),
    name      text     NOT NULL
);
COMMENT ON TABLE ltv.currencies IS 'ISO 4217 currencies ltv_db accepts, with their minor-unit exponent (GBP 2 = pence)';

INSERT INTO ltv.currencies (currency, exponent, name) VALUES
    ('GBP', 2, 'Pound sterling'), ('EUR', 2, 'Euro'), ('USD', 2, 'US dollar'),
    ('AUD', 2, 'Australian dollar'), ('CAD', 2, 'Canadian dollar'), ('NZD', 2, 'New Zealand dollar'),
    ('CHF', 2, 'Swiss franc'), ('SEK', 2, 'Swedish krona'), ('NOK', 2, 'Norwegian krone'),
    ('DKK', 2, 'Danish krone'), ('PLN', 2, 'Polish zloty'), ('ZAR', 2, 'South African rand'),
    ('JPY', 0, 'Japanese yen'), ('KRW', 0, 'South Korean won'), ('KWD', 3, 'Kuwaiti dinar'),
    ('BHD', 3, 'Bahraini dinar');

CREATE TABLE ltv.vendor_categories (
    vendor_category text PRIMARY KEY CHECK (vendor_category ~ '^[a-z][a-z0-9_]{0,40}$'),
    label           text NOT NULL
);
COMMENT ON TABLE ltv.vendor_categories IS 'Kinds of wedding supplier (photographer, venue, …)';

INSERT INTO ltv.vendor_categories VALUES
    ('photographer', 'Photographer'), ('videographer', 'Videographer'), ('venue', 'Venue'),
    ('florist', 'Florist'), ('caterer', 'Caterer'), ('planner', 'Wedding planner'),
    ('dj_band', 'DJ / band'), ('baker', 'Cake maker'), ('hair_makeup', 'Hair & make-up'),
    ('stationer', 'Stationer');

CREATE TABLE ltv.acquisition_channels (
    acquisition_channel text PRIMARY KEY CHECK (acquisition_channel ~ '^[a-z][a-z0-9_]{0,40}$'),
    label               text NOT NULL
);
COMMENT ON TABLE ltv.acquisition_channels IS 'Marketing channels a supplier can be acquired through';

INSERT INTO ltv.acquisition_channels VALUES
    ('organic', 'Organic / direct'), ('paid_search', 'Paid search'), ('paid_social', 'Paid social'),
    ('referral', 'Supplier referral'), ('wedding_fair', 'Wedding fairs'), ('partner', 'Partnerships');

CREATE TABLE ltv.settings (
    singleton              boolean       PRIMARY KEY DEFAULT true CHECK (singleton),
    base_currency          char(3)       NOT NULL DEFAULT 'GBP' REFERENCES ltv.currencies,
    annual_discount_rate   numeric(6,4)  NOT NULL DEFAULT 0.10 CHECK (annual_discount_rate > 0 AND annual_discount_rate < 1),
    margin_subscription    numeric(5,4)  NOT NULL DEFAULT 0.85 CHECK (margin_subscription BETWEEN 0 AND 1),
    margin_one_off         numeric(5,4)  NOT NULL DEFAULT 0.40 CHECK (margin_one_off BETWEEN 0 AND 1),
    horizon_months         integer       NOT NULL DEFAULT 36 CHECK (horizon_months BETWEEN 1 AND 240),
    churn_grace_days       integer       NOT NULL DEFAULT 14 CHECK (churn_grace_days BETWEEN 0 AND 180),
    fx_max_staleness_days  integer       NOT NULL DEFAULT 7 CHECK (fx_max_staleness_days BETWEEN 0 AND 31),
    partition_months_ahead integer       NOT NULL DEFAULT 6 CHECK (partition_months_ahead BETWEEN 1 AND 60)
);
COMMENT ON TABLE ltv.settings IS 'The one row of engine-wide settings: base currency, discounting, margins, horizon';
INSERT INTO ltv.settings DEFAULT VALUES;

CREATE TABLE ltv.fx_rates (
    currency  char(3)        NOT NULL REFERENCES ltv.currencies,
    day       date           NOT NULL,
    rate      numeric(20,10) NOT NULL CHECK (rate > 0),
    PRIMARY KEY (currency, day)
);
COMMENT ON TABLE ltv.fx_rates IS 'Daily FX: 1 unit of currency = rate units of the base currency';

CREATE TABLE ltv.plans (
    plan_code         text    PRIMARY KEY CHECK (plan_code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    tier              text    NOT NULL CHECK (tier ~ '^[a-z][a-z0-9_]{0,40}$'),
    billing_interval  text    NOT NULL CHECK (billing_interval IN ('month', 'year')),
    list_price_minor  bigint  NOT NULL CHECK (list_price_minor >= 0),
    currency          char(3) NOT NULL REFERENCES ltv.currencies
);
COMMENT ON TABLE ltv.plans IS 'Subscription plans: tier, billing interval and list price in minor units';

CREATE TABLE ltv.acquisition_spend (
    acquisition_channel text    NOT NULL REFERENCES ltv.acquisition_channels,
    month               date    NOT NULL CHECK (month = date_trunc('month', month)::date),
    currency            char(3) NOT NULL REFERENCES ltv.currencies,
    amount_minor        bigint  NOT NULL CHECK (amount_minor >= 0),
    PRIMARY KEY (acquisition_channel, month, currency)
);
COMMENT ON TABLE ltv.acquisition_spend IS 'Marketing spend per channel and calendar month (minor units)';

-- ---------------------------------------------------------------------------------------------
-- Customers and subscriptions
-- ---------------------------------------------------------------------------------------------
CREATE TABLE ltv.customers (
    customer_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_ref        text        NOT NULL UNIQUE CHECK (customer_ref ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    vendor_category     text        NOT NULL REFERENCES ltv.vendor_categories,
    country             text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    region              text,
    acquisition_channel text        NOT NULL REFERENCES ltv.acquisition_channels,
    signed_up_at        timestamptz NOT NULL,
    attributes          jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object')
);
COMMENT ON TABLE ltv.customers IS 'One row per supplier (the marketplace''s paying customer)';
CREATE INDEX customers_segment_idx ON ltv.customers (vendor_category, country, acquisition_channel);

CREATE TABLE ltv.subscriptions (
    customer_id       bigint      NOT NULL REFERENCES ltv.customers,
    subscription_id   bigint      GENERATED ALWAYS AS IDENTITY,
    subscription_ref  text        NOT NULL CHECK (subscription_ref ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    plan_code         text        NOT NULL REFERENCES ltv.plans,
    started_at        timestamptz NOT NULL,
    cancelled_at      timestamptz CHECK (cancelled_at >= started_at),
    ended_at          timestamptz CHECK (ended_at >= started_at),
    PRIMARY KEY (customer_id, subscription_id),
    UNIQUE (customer_id, subscription_ref)
);
COMMENT ON TABLE ltv.subscriptions IS 'Subscription lifecycle per customer; the contractual (sBG) churn model reads it';
COMMENT ON COLUMN ltv.subscriptions.cancelled_at IS 'When the customer cancelled (NULL = active)';
COMMENT ON COLUMN ltv.subscriptions.ended_at IS 'When service stopped (end of the paid period); NULL = not ended';

-- ---------------------------------------------------------------------------------------------
-- Money movements: range-partitioned by month of occurred_at
-- ---------------------------------------------------------------------------------------------
CREATE SEQUENCE ltv.revenue_events_event_id_seq AS bigint;

CREATE TABLE ltv.revenue_events (
    customer_id      bigint        NOT NULL,
    occurred_at      timestamptz   NOT NULL,
    event_id         bigint        NOT NULL DEFAULT nextval('ltv.revenue_events_event_id_seq'),
    kind             text          NOT NULL CHECK (kind IN ('subscription', 'one_off', 'refund', 'chargeback', 'credit')),
    amount_minor     bigint        NOT NULL CHECK (amount_minor >= 0),
    currency         char(3)       NOT NULL,
    fx_rate          numeric(20,10) NOT NULL CHECK (fx_rate > 0),
    amount_base      numeric(20,4) NOT NULL CHECK (amount_base >= 0),
    source           text          NOT NULL CHECK (source ~ '^[a-z][a-z0-9_]{0,31}$'),
    external_id      text          NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
    subscription_id  bigint,
    batch_id         bigint,
    PRIMARY KEY (customer_id, occurred_at, event_id)
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE ltv.revenue_events_event_id_seq OWNED BY ltv.revenue_events.event_id;
COMMENT ON TABLE ltv.revenue_events IS 'Money movements (charges, one-off purchases, refunds, chargebacks, credits), monthly partitions';
COMMENT ON COLUMN ltv.revenue_events.amount_minor IS 'Amount in minor units of currency; never negative — the sign comes from kind';
COMMENT ON COLUMN ltv.revenue_events.amount_base IS 'Amount converted to the base currency (major units) at the event-day rate';
COMMENT ON COLUMN ltv.revenue_events.kind IS 'subscription and one_off add revenue; refund, chargeback and credit subtract';

-- Catches anything outside the monthly partitions so no event is ever refused for its date;
-- ltv.maintain_revenue_partitions() moves such rows into proper partitions.
CREATE TABLE ltv.revenue_events_default PARTITION OF ltv.revenue_events DEFAULT;

-- Idempotency ledger: one row per (source, external_id), whatever month the event fell in.
-- A unique index on the partitioned table would have to include occurred_at, which would let
-- a replayed event with a corrected timestamp slip in twice.
CREATE TABLE ltv.revenue_event_keys (
    source       text        NOT NULL,
    external_id  text        NOT NULL,
    customer_id  bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    event_id     bigint      NOT NULL,
    PRIMARY KEY (source, external_id)
);
COMMENT ON TABLE ltv.revenue_event_keys IS 'Idempotency ledger: every (source, external_id) ever loaded, pointing at its event';

-- ---------------------------------------------------------------------------------------------
-- Ingestion bookkeeping
-- ---------------------------------------------------------------------------------------------
CREATE TABLE ltv.ingest_batches (
    batch_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity        text        NOT NULL,
    file_name     text        NOT NULL,
    sha256        text,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    rows_read     bigint      NOT NULL DEFAULT 0,
    loaded        bigint      NOT NULL DEFAULT 0,
    updated       bigint      NOT NULL DEFAULT 0,
    duplicates    bigint      NOT NULL DEFAULT 0,
    rejected      bigint      NOT NULL DEFAULT 0
);
COMMENT ON TABLE ltv.ingest_batches IS 'One row per ingested file or API batch, with its counts';

CREATE TABLE ltv.ingest_rejects (
    reject_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id     bigint      NOT NULL REFERENCES ltv.ingest_batches,
    file_name    text        NOT NULL,
    line_no      bigint      NOT NULL,
    raw_line     text,
    reason       text        NOT NULL,
    rejected_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE ltv.ingest_rejects IS 'Quarantined input rows: file, line number, raw text and why they were refused';
CREATE INDEX ingest_rejects_batch_idx ON ltv.ingest_rejects (batch_id);

-- ---------------------------------------------------------------------------------------------
-- Models
-- ---------------------------------------------------------------------------------------------
CREATE TABLE ltv.model_fits (
    fit_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model           text        NOT NULL CHECK (model IN ('sbg', 'bgnbd', 'gamma_gamma')),
    segment         text        NOT NULL,
    params          jsonb       NOT NULL DEFAULT '{}',
    std_errors      jsonb,
    log_likelihood  float8,
    data_cutoff     timestamptz NOT NULL,
    n_customers     bigint      NOT NULL CHECK (n_customers >= 0),
    runtime_ms      float8,
    converged       boolean     NOT NULL,
    error           text,
    purpose         text        NOT NULL DEFAULT 'production' CHECK (purpose IN ('production', 'backtest')),
    is_active       boolean     NOT NULL DEFAULT false,
    fitted_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- a failed or non-converged fit can never be the active one
    CHECK (NOT is_active OR (converged AND purpose = 'production'))
);
COMMENT ON TABLE ltv.model_fits IS 'Every model fit ever run; at most one active fit per model and segment';
CREATE UNIQUE INDEX model_fits_active_idx ON ltv.model_fits (model, segment) WHERE is_active;

-- ---------------------------------------------------------------------------------------------
-- Synthetic data: the true parameters the demo generator drew from (for recovery tests)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE ltv.synthetic_truth (
    model         text        NOT NULL CHECK (model IN ('sbg', 'bgnbd', 'gamma_gamma')),
    segment       text        NOT NULL,
    params        jsonb       NOT NULL,
    seed          bigint      NOT NULL,
    suppliers     bigint      NOT NULL,
    generated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (model, segment)
);
COMMENT ON TABLE ltv.synthetic_truth IS 'True model parameters behind the synthetic demo marketplace (empty for real data)';

-- The row every LTV function returns (ltv.score_customers, ltv.customer_ltv); see
-- sql/functions/score_customers.sql for each column's meaning.
CREATE TYPE ltv.customer_ltv_result AS (
    customer_id               bigint,
    vendor_category           text,
    country                   text,
    acquisition_channel       text,
    signed_up_at              timestamptz,
    subscription_status       text,
    billing_interval          text,
    sbg_segment               text,
    bgnbd_segment             text,
    net_revenue               numeric,
    realised_margin           numeric,
    current_mrr               numeric,
    predicted_recurring       numeric,
    predicted_one_off         numeric,
    total_ltv                 numeric,
    p_alive                   float8,
    expected_purchases        float8,
    expected_remaining_months float8,
    ltv_low                   numeric,
    ltv_high                  numeric
);
COMMENT ON TYPE ltv.customer_ltv_result IS 'One customer''s LTV: realised margin, predicted recurring and one-off value, P(alive), 80% interval';
