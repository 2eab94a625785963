-- ltv.fx_rate_at(currency, day): the rate that converts `currency` into the base currency on
-- `day` — that day's rate, else the latest earlier rate no older than
-- settings.fx_max_staleness_days; 1 for the base currency itself; NULL when there is no usable
-- rate (callers must report that, never fall back to 1.0). The one FX rule of ltv_db: ingestion
-- applies it once per distinct (currency, day) of a batch, reports apply it to spend.

CREATE OR REPLACE FUNCTION ltv.fx_rate_at(p_currency text, p_day date)
RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
SELECT CASE
    WHEN p_currency = s.base_currency THEN 1::numeric
    ELSE (SELECT r.rate FROM ltv.fx_rates r
          -- cast: comparing the char(3) column with text would defeat the primary-key index
          WHERE r.currency = p_currency::char(3)
            AND r.day <= p_day AND r.day >= p_day - s.fx_max_staleness_days
          ORDER BY r.day DESC
          LIMIT 1)
END
FROM ltv.settings s
$$;

COMMENT ON FUNCTION ltv.fx_rate_at(text, date) IS
    'Rate converting currency to the base currency on a day (or the latest earlier rate within fx_max_staleness_days); NULL if none';
