-- ltv_db 0006 downgrade: the CHECK constraints as revisions 0001 and 0003 wrote them.

ALTER TABLE ltv.vendor_categories
    DROP CONSTRAINT vendor_categories_vendor_category_check,
    ADD CONSTRAINT vendor_categories_vendor_category_check CHECK (vendor_category ~ '^[a-z][a-z0-9_]{0,40}$');

ALTER TABLE ltv.acquisition_channels
    DROP CONSTRAINT acquisition_channels_acquisition_channel_check,
    ADD CONSTRAINT acquisition_channels_acquisition_channel_check
        CHECK (acquisition_channel ~ '^[a-z][a-z0-9_]{0,40}$');

ALTER TABLE ltv.plans
    DROP CONSTRAINT plans_plan_code_check,
    ADD CONSTRAINT plans_plan_code_check CHECK (plan_code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    DROP CONSTRAINT plans_tier_check,
    ADD CONSTRAINT plans_tier_check CHECK (tier ~ '^[a-z][a-z0-9_]{0,40}$');

ALTER TABLE ltv.customers
    DROP CONSTRAINT customers_customer_ref_check,
    ADD CONSTRAINT customers_customer_ref_check CHECK (customer_ref ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$');

ALTER TABLE ltv.subscriptions
    DROP CONSTRAINT subscriptions_subscription_ref_check,
    ADD CONSTRAINT subscriptions_subscription_ref_check
        CHECK (subscription_ref ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$');

ALTER TABLE ltv.revenue_events
    DROP CONSTRAINT revenue_events_source_check,
    ADD CONSTRAINT revenue_events_source_check CHECK (source ~ '^[a-z][a-z0-9_]{0,31}$');

ALTER TABLE ltv.view_refreshes
    DROP CONSTRAINT view_refreshes_view_name_check,
    ADD CONSTRAINT view_refreshes_view_name_check CHECK (view_name ~ '^[a-z][a-z0-9_]{0,62}$');
