-- ltv_db 0006: ingestion speed.
--
-- CHECK constraints with bounded regex repetition are rewritten as an unbounded pattern plus a
-- length() bound, with identical meaning: `x ~ '^A B{0,N}$'` ⇔ `x ~ '^A B*$' AND length(x) <= N + 1`
-- (A and B single-character classes, length() counts characters as the regex does; NULL
-- passes both). PostgreSQL's regex engine builds its DFA states on every call, and a {0,N}
-- repetition unrolls into N copies of the class: measured per value, `{0,99}` cost 28 µs against
-- 1.5 µs for the rewritten form, and the `source` CHECK was a quarter of the CPU time of
-- inserting revenue events (benchmarks/RESULTS.md, "Ingest (issue 2)"). Constraint names stay.
-- On the partitioned ltv.revenue_events the parent's constraint propagates to every partition
-- (DROP removes the inherited copies, ADD creates them).

ALTER TABLE ltv.vendor_categories
    DROP CONSTRAINT vendor_categories_vendor_category_check,
    ADD CONSTRAINT vendor_categories_vendor_category_check
        CHECK (vendor_category ~ '^[a-z][a-z0-9_]*$' AND length(vendor_category) <= 41);

ALTER TABLE ltv.acquisition_channels
    DROP CONSTRAINT acquisition_channels_acquisition_channel_check,
    ADD CONSTRAINT acquisition_channels_acquisition_channel_check
        CHECK (acquisition_channel ~ '^[a-z][a-z0-9_]*$' AND length(acquisition_channel) <= 41);

ALTER TABLE ltv.plans
    DROP CONSTRAINT plans_plan_code_check,
    ADD CONSTRAINT plans_plan_code_check
        CHECK (plan_code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' AND length(plan_code) <= 64),
    DROP CONSTRAINT plans_tier_check,
    ADD CONSTRAINT plans_tier_check
        CHECK (tier ~ '^[a-z][a-z0-9_]*$' AND length(tier) <= 41);

ALTER TABLE ltv.customers
    DROP CONSTRAINT customers_customer_ref_check,
    ADD CONSTRAINT customers_customer_ref_check
        CHECK (customer_ref ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' AND length(customer_ref) <= 100);

ALTER TABLE ltv.subscriptions
    DROP CONSTRAINT subscriptions_subscription_ref_check,
    ADD CONSTRAINT subscriptions_subscription_ref_check
        CHECK (subscription_ref ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' AND length(subscription_ref) <= 100);

ALTER TABLE ltv.revenue_events
    DROP CONSTRAINT revenue_events_source_check,
    ADD CONSTRAINT revenue_events_source_check
        CHECK (source ~ '^[a-z][a-z0-9_]*$' AND length(source) <= 32);

ALTER TABLE ltv.view_refreshes
    DROP CONSTRAINT view_refreshes_view_name_check,
    ADD CONSTRAINT view_refreshes_view_name_check
        CHECK (view_name ~ '^[a-z][a-z0-9_]*$' AND length(view_name) <= 63);
