-- ltv.customer_ltv(customer_id, as_of): one customer's LTV from the active fits — the row of
-- ltv.score_customers for that customer (see there for every column's meaning).
-- Unknown customer → SQLSTATE 02000-class error 'no_data_found' with a clear message.

CREATE OR REPLACE FUNCTION ltv.customer_ltv(p_customer_id bigint, p_as_of timestamptz DEFAULT now())
RETURNS SETOF ltv.customer_ltv_result
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    RETURN QUERY SELECT * FROM ltv.score_customers(p_as_of, NULL, p_customer_id);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ltv.customer_ltv: no customer % signed up before %', p_customer_id, p_as_of
            USING ERRCODE = 'no_data_found';
    END IF;
END;
$$;

COMMENT ON FUNCTION ltv.customer_ltv(bigint, timestamptz) IS
    'LTV of one customer from the active fits: realised margin, predicted recurring and one-off value, P(alive), interval';
