-- ltv.billing_period_elapsed(interval, started, paid, at): the fraction in [0, 1] of the current
-- billing period (the paid-th, counted from started in UTC calendar months / years) gone at `at`;
-- NULL for an unknown interval or paid < 1. The input of the cancellation-notice adjustment
-- (see sbg_notice_norm.sql).
--
-- No SET search_path, deliberately: scoring calls this once per active subscription, and only a
-- plain one-expression SQL function is inlined into the caller's query (6.5 µs per call
-- otherwise, seconds at a million customers). Inlined, it is parsed under the caller's
-- search_path (ltv.score_customers pins pg_catalog, ltv); it touches no table, runs with the
-- caller's privileges, and every function it uses is a pg_catalog built-in.

CREATE OR REPLACE FUNCTION ltv.billing_period_elapsed(p_interval text, p_started timestamptz, p_paid integer,
                                                      p_at timestamptz)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT CASE WHEN p_paid >= 1 AND p_interval IN ('month', 'year') THEN
    least(greatest(
        extract(epoch FROM (p_at AT TIME ZONE 'UTC')
                           - ((p_started AT TIME ZONE 'UTC')
                              + (p_paid - 1) * CASE p_interval WHEN 'year' THEN interval '1 year' ELSE interval '1 month' END))
        / extract(epoch FROM ((p_started AT TIME ZONE 'UTC')
                              + p_paid * CASE p_interval WHEN 'year' THEN interval '1 year' ELSE interval '1 month' END)
                             - ((p_started AT TIME ZONE 'UTC')
                                + (p_paid - 1) * CASE p_interval WHEN 'year' THEN interval '1 year' ELSE interval '1 month' END)),
        0), 1)::float8
END
$$;

COMMENT ON FUNCTION ltv.billing_period_elapsed(text, timestamptz, integer, timestamptz) IS
    'Fraction (0..1) of the current (paid-th) billing period gone at a moment; NULL for an unknown interval or paid < 1';
