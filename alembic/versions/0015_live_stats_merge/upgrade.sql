-- 0015_live_stats_merge: the INSERT trigger lists a customer's purchase days over a range with
-- ltv.one_off_purchase_days (a frozen file of this revision) instead of counting one day at a
-- time with ltv.one_off_purchases_on_day, which nothing calls any more.
DROP FUNCTION ltv.one_off_purchases_on_day(bigint, date);
