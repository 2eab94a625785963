-- 0015_live_stats_merge: back to counting one day at a time (the downgrade reinstalls the
-- earlier frozen copies of the trigger and of ltv.one_off_purchases_on_day after this file).
DROP FUNCTION IF EXISTS ltv.one_off_purchase_days(bigint, date, date);
