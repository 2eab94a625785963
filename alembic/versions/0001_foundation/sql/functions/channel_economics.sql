-- ltv.channel_economics(as_of): acquisition economics per channel and signup month:
--   cac                 that month's spend on the channel (base currency, converted with
--                       ltv.fx_rate_at on the month's first day) ÷ customers it signed up
--   formula_ltv         the channel's ltv.formula_ltv as of as_of
--   ltv_to_cac          formula_ltv ÷ cac
--   cac_payback_months  cac ÷ (channel ARPA × subscription margin): months of gross margin
--                       needed to earn the acquisition cost back
-- A month with spend but no signups has cac NULL; spend with no usable FX rate is NULL and
-- flagged in spend_unconverted.

CREATE OR REPLACE FUNCTION ltv.channel_economics(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (
    acquisition_channel text,
    signup_month        date,
    new_customers       bigint,
    spend               numeric,
    spend_unconverted   boolean,
    cac                 numeric,
    formula_ltv         numeric,
    ltv_to_cac          numeric,
    cac_payback_months  numeric
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
AS $$
WITH
settings AS (
    SELECT margin_subscription FROM ltv.settings
),
signups AS (
    SELECT c.acquisition_channel, date_trunc('month', c.signed_up_at AT TIME ZONE 'UTC')::date AS month,
           count(*) AS new_customers
    FROM ltv.customers c
    WHERE c.signed_up_at < p_as_of
    GROUP BY 1, 2
),
spend_base AS (
    SELECT sp.acquisition_channel, sp.month,
           sum(sp.amount_minor / 10::numeric ^ cur.exponent * ltv.fx_rate_at(sp.currency, sp.month)) AS spend,
           bool_or(ltv.fx_rate_at(sp.currency, sp.month) IS NULL) AS unconverted
    FROM ltv.acquisition_spend sp
    JOIN ltv.currencies cur USING (currency)
    WHERE sp.month < p_as_of
    GROUP BY 1, 2
),
channel_ltv AS (
    SELECT f.acquisition_channel, f.formula_ltv, f.arpa FROM ltv.formula_ltv(p_as_of) f
)
SELECT coalesce(s.acquisition_channel, sp.acquisition_channel),
       coalesce(s.month, sp.month),
       coalesce(s.new_customers, 0),
       round(sp.spend, 2),
       coalesce(sp.unconverted, false),
       round(sp.spend / nullif(s.new_customers, 0), 2) AS cac,
       l.formula_ltv,
       round(l.formula_ltv / nullif(sp.spend / nullif(s.new_customers, 0), 0), 2),
       round(sp.spend / nullif(s.new_customers, 0) / nullif(l.arpa * st.margin_subscription, 0), 1)
FROM signups s
FULL JOIN spend_base sp ON sp.acquisition_channel = s.acquisition_channel AND sp.month = s.month
LEFT JOIN channel_ltv l ON l.acquisition_channel = coalesce(s.acquisition_channel, sp.acquisition_channel)
CROSS JOIN settings st
ORDER BY 1, 2
$$;

COMMENT ON FUNCTION ltv.channel_economics(timestamptz) IS
    'CAC, formula LTV, LTV:CAC and CAC payback months per acquisition channel and signup month';
