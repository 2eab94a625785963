-- ltv_db 0005 downgrade: drop the functions this revision added; the revision module then
-- reinstalls the earlier copies of the functions it replaced (fits recorded meanwhile keep
-- their extra params keys, which the earlier functions ignore).
DROP FUNCTION IF EXISTS ltv.one_off_season_index(timestamptz);
DROP FUNCTION IF EXISTS ltv.season_mean(float8[], timestamptz, timestamptz);
DROP FUNCTION IF EXISTS ltv.notice_cdf(float8[]);
DROP FUNCTION IF EXISTS ltv.sbg_notice_norm(float8, float8, integer, float8);
DROP FUNCTION IF EXISTS ltv.billing_period_elapsed(text, timestamptz, integer, timestamptz);
DROP FUNCTION IF EXISTS ltv.sbg_derl_series(float8, float8, integer, integer, float8);
DROP FUNCTION IF EXISTS ltv.season_thirds(jsonb, timestamptz, float8);
DROP FUNCTION IF EXISTS ltv.segment_fits(bigint[]);
