-- Time conventions shared by every model and view.
--
-- Models measure time in months of 30.4375 days (365.25 / 12): BG/NBD recency and age, the
-- horizon, discounting. Subscription periods (sBG) are calendar months or years counted with
-- age() in UTC, so a charge on the 31st renews on the last day of shorter months.

-- No SET search_path on months_between, deliberately: ltv.customer_history calls it twice per
-- customer, and only a function without SET is inlined into the caller's query (as a function
-- call it cost ~2.2 s per million calls; inlined, nothing measurable). Its SQL-standard body
-- (RETURN …) is parsed when the function is created, so the caller's search_path cannot change
-- what it calls.
CREATE OR REPLACE FUNCTION ltv.months_between(p_from timestamptz, p_to timestamptz)
RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN extract(epoch FROM p_to - p_from)::float8 / (30.4375 * 86400);

COMMENT ON FUNCTION ltv.months_between(timestamptz, timestamptz) IS
    'Elapsed time in model months (30.4375 days) from p_from to p_to';

CREATE OR REPLACE FUNCTION ltv.billing_periods_started(p_interval text, p_started timestamptz, p_at timestamptz)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_months_per_period integer := CASE p_interval WHEN 'month' THEN 1 WHEN 'year' THEN 12 END;
    v_start timestamp := p_started AT TIME ZONE 'UTC';
    v_at    timestamp := p_at AT TIME ZONE 'UTC';
    v_age   interval;
    v_whole integer;
BEGIN
    IF v_months_per_period IS NULL THEN
        RAISE EXCEPTION 'ltv.billing_periods_started: interval must be month or year, got %', p_interval
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_at < v_start THEN
        RETURN 0;
    END IF;
    v_age := age(v_at, v_start);
    v_whole := ((extract(year FROM v_age) * 12 + extract(month FROM v_age))::integer) / v_months_per_period;
    -- age() counts 31 Jan -> 29 Feb as 29 days, but the renewal clamps to 29 Feb: one more
    -- period has started when the clamped renewal date is already reached.
    IF v_start + make_interval(months => (v_whole + 1) * v_months_per_period) <= v_at THEN
        v_whole := v_whole + 1;
    END IF;
    RETURN v_whole + 1;
END;
$$;

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
