-- Statement-level triggers that send `NOTIFY ltv_changed` (ltv.notify_customers_changed) for
-- changes outside revenue events and subscriptions (those notify from live_stats_triggers.sql)
-- that still change LTV figures, so a cache never serves a stale one:
--   * ltv.customers — the segment columns a figure depends on (vendor_category, country,
--     acquisition_channel, signed_up_at): inserted, deleted, or updated in one of those columns →
--     those customers' ids;
--   * ltv.settings (margins, discount rate, horizon …) and ltv.plans (billing interval) →
--     {"all":true};
--   * ltv.model_fits, when a statement touches an active fit (ltv.refit_models also notifies
--     explicitly after it activates one) → {"all":true}.

CREATE OR REPLACE FUNCTION ltv.notify_after_customers_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_ids bigint[];
BEGIN
IF TG_OP = 'INSERT' THEN
    SELECT array_agg(customer_id) INTO v_ids FROM inserted_rows;
ELSIF TG_OP = 'DELETE' THEN
    SELECT array_agg(customer_id) INTO v_ids FROM deleted_rows;
ELSE
    WITH
    before_rows AS (SELECT customer_id, vendor_category, country, acquisition_channel, signed_up_at FROM old_rows),
    after_rows  AS (SELECT customer_id, vendor_category, country, acquisition_channel, signed_up_at FROM new_rows),
    changed_customers AS (
        SELECT customer_id FROM (SELECT * FROM before_rows EXCEPT ALL SELECT * FROM after_rows) gone
        UNION
        SELECT customer_id FROM (SELECT * FROM after_rows EXCEPT ALL SELECT * FROM before_rows) came
    )
    SELECT array_agg(customer_id) INTO v_ids FROM changed_customers;
END IF;
IF v_ids IS NOT NULL THEN
    PERFORM ltv.notify_customers_changed(v_ids);
END IF;
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.notify_after_customers_change() IS
    'Statement trigger on ltv.customers: NOTIFY ltv_changed with the customers inserted, deleted or re-segmented';

CREATE OR REPLACE FUNCTION ltv.notify_after_model_fits_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_touches_active boolean := false;
BEGIN
-- each trigger has only the transition tables of its operation
IF TG_OP IN ('UPDATE', 'DELETE') THEN
    v_touches_active := EXISTS (SELECT 1 FROM old_rows WHERE is_active);
END IF;
IF TG_OP IN ('UPDATE', 'INSERT') AND NOT v_touches_active THEN
    v_touches_active := EXISTS (SELECT 1 FROM new_rows WHERE is_active);
END IF;
IF v_touches_active THEN
    PERFORM ltv.notify_customers_changed(NULL);
END IF;
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.notify_after_model_fits_change() IS
    'Statement trigger on ltv.model_fits: NOTIFY ltv_changed {"all":true} when an active fit is added, changed or removed';

CREATE OR REPLACE FUNCTION ltv.notify_after_global_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
BEGIN
PERFORM ltv.notify_customers_changed(NULL);
RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.notify_after_global_change() IS
    'Statement trigger (settings, plans): NOTIFY ltv_changed {"all":true} — every figure may have changed';

-- ---- the triggers (CREATE OR REPLACE: rerunning this file is harmless) --------------------------
CREATE OR REPLACE TRIGGER notify_changed_insert AFTER INSERT ON ltv.customers
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_customers_change();
CREATE OR REPLACE TRIGGER notify_changed_update AFTER UPDATE ON ltv.customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_customers_change();
CREATE OR REPLACE TRIGGER notify_changed_delete AFTER DELETE ON ltv.customers
    REFERENCING OLD TABLE AS deleted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_customers_change();

CREATE OR REPLACE TRIGGER notify_changed_insert AFTER INSERT ON ltv.model_fits
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_model_fits_change();
CREATE OR REPLACE TRIGGER notify_changed_update AFTER UPDATE ON ltv.model_fits
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_model_fits_change();
CREATE OR REPLACE TRIGGER notify_changed_delete AFTER DELETE ON ltv.model_fits
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_model_fits_change();

CREATE OR REPLACE TRIGGER notify_changed AFTER UPDATE ON ltv.settings
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_global_change();
CREATE OR REPLACE TRIGGER notify_changed AFTER UPDATE OR DELETE ON ltv.plans
    FOR EACH STATEMENT EXECUTE FUNCTION ltv.notify_after_global_change();

COMMENT ON TRIGGER notify_changed_insert ON ltv.customers IS 'NOTIFY ltv_changed with the new customers'' ids';
COMMENT ON TRIGGER notify_changed_update ON ltv.customers IS 'NOTIFY ltv_changed with the ids of customers whose segment columns changed';
COMMENT ON TRIGGER notify_changed_delete ON ltv.customers IS 'NOTIFY ltv_changed with the deleted customers'' ids';
COMMENT ON TRIGGER notify_changed_insert ON ltv.model_fits IS 'NOTIFY ltv_changed {"all":true} when an active fit is inserted';
COMMENT ON TRIGGER notify_changed_update ON ltv.model_fits IS 'NOTIFY ltv_changed {"all":true} when an active fit changes or is (de)activated';
COMMENT ON TRIGGER notify_changed_delete ON ltv.model_fits IS 'NOTIFY ltv_changed {"all":true} when an active fit is deleted';
COMMENT ON TRIGGER notify_changed ON ltv.settings IS 'NOTIFY ltv_changed {"all":true}: settings feed every figure';
COMMENT ON TRIGGER notify_changed ON ltv.plans IS 'NOTIFY ltv_changed {"all":true}: a plan''s billing interval feeds its subscribers'' figures';
