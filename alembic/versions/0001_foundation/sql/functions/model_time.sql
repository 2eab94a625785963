-- Time conventions shared by every model and view.
--
-- Models measure time in months of 30.4375 days (365.25 / 12): BG/NBD recency and age, the
-- horizon, discounting. Subscription periods (sBG) are calendar months or years counted with
-- age() in UTC, so a charge on the 31st renews on the last day of shorter months.

CREATE OR REPLACE FUNCTION ltv.months_between(p_from timestamptz, p_to timestamptz)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
RETURN extract(epoch FROM p_to - p_from)::float8 / (30.4375 * 86400);

COMMENT ON FUNCTION ltv.months_between(timestamptz, timestamptz) IS
    'Elapsed time in model months (30.4375 days) from p_from to p_to';

CREATE OR REPLACE FUNCTION ltv.billing_periods_started(p_interval text, p_started timestamptz, p_at timestamptz)
RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
RETURN CASE
    WHEN p_at < p_started THEN 0
    ELSE 1 + CASE p_interval
        WHEN 'month' THEN (extract(year FROM age(p_at AT TIME ZONE 'UTC', p_started AT TIME ZONE 'UTC')) * 12
                         + extract(month FROM age(p_at AT TIME ZONE 'UTC', p_started AT TIME ZONE 'UTC')))::integer
        WHEN 'year' THEN extract(year FROM age(p_at AT TIME ZONE 'UTC', p_started AT TIME ZONE 'UTC'))::integer
    END
END;

COMMENT ON FUNCTION ltv.billing_periods_started(text, timestamptz, timestamptz) IS
    'How many billing periods (month or year) of a subscription started at p_started have begun by p_at (UTC calendar)';

CREATE OR REPLACE FUNCTION ltv.monthly_discount_rate()
RETURNS float8
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
RETURN (SELECT power(1 + annual_discount_rate::float8, 1.0 / 12) - 1 FROM ltv.settings);

COMMENT ON FUNCTION ltv.monthly_discount_rate() IS
    'The monthly rate equivalent to settings.annual_discount_rate: (1 + annual)^(1/12) - 1';

CREATE OR REPLACE FUNCTION ltv.annuity_factor(p_payments integer, p_rate float8)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
RETURN CASE WHEN p_rate = 0 THEN p_payments::float8
            ELSE (1 - power(1 + p_rate, -p_payments)) * (1 + p_rate) / p_rate END;

COMMENT ON FUNCTION ltv.annuity_factor(integer, float8) IS
    'Present value of p_payments unit payments, the first now and one per period after, at rate p_rate per period';
