-- ltv_db 0002 down: remove the live statistics, their triggers and the change notifications.
-- The revision module then reinstalls 0001's frozen customer_history.sql and refit_models.sql.

DROP TRIGGER IF EXISTS live_stats_insert ON ltv.revenue_events;
DROP TRIGGER IF EXISTS live_stats_update ON ltv.revenue_events;
DROP TRIGGER IF EXISTS live_stats_delete ON ltv.revenue_events;
DROP TRIGGER IF EXISTS live_stats_truncate ON ltv.revenue_events;
DROP TRIGGER IF EXISTS live_stats_insert ON ltv.subscriptions;
DROP TRIGGER IF EXISTS live_stats_update ON ltv.subscriptions;
DROP TRIGGER IF EXISTS live_stats_delete ON ltv.subscriptions;
DROP TRIGGER IF EXISTS live_stats_truncate ON ltv.subscriptions;
DROP TRIGGER IF EXISTS notify_changed_insert ON ltv.customers;
DROP TRIGGER IF EXISTS notify_changed_update ON ltv.customers;
DROP TRIGGER IF EXISTS notify_changed_delete ON ltv.customers;
DROP TRIGGER IF EXISTS notify_changed_insert ON ltv.model_fits;
DROP TRIGGER IF EXISTS notify_changed_update ON ltv.model_fits;
DROP TRIGGER IF EXISTS notify_changed_delete ON ltv.model_fits;
DROP TRIGGER IF EXISTS notify_changed ON ltv.settings;
DROP TRIGGER IF EXISTS notify_changed ON ltv.plans;

DROP FUNCTION IF EXISTS ltv.live_stats_after_insert();
DROP FUNCTION IF EXISTS ltv.live_stats_after_change();
DROP FUNCTION IF EXISTS ltv.live_stats_after_truncate();
DROP FUNCTION IF EXISTS ltv.notify_after_customers_change();
DROP FUNCTION IF EXISTS ltv.notify_after_model_fits_change();
DROP FUNCTION IF EXISTS ltv.notify_after_global_change();
DROP FUNCTION IF EXISTS ltv.notify_customers_changed(bigint[]);
DROP FUNCTION IF EXISTS ltv.verify_customer_stats();
DROP FUNCTION IF EXISTS ltv.refresh_customer_stats(bigint[]);
DROP FUNCTION IF EXISTS ltv.lock_customer_stats(bigint[]);
DROP FUNCTION IF EXISTS ltv.one_off_purchases_on_day(bigint, date);
DROP FUNCTION IF EXISTS ltv.customer_history_via(timestamptz, bigint, boolean);
DROP FUNCTION IF EXISTS ltv.customer_facts(timestamptz, bigint[]);

DROP TABLE IF EXISTS ltv.customer_stats;
