-- ltv.verify_customer_stats(): recompute every customer's facts from the raw tables
-- (ltv.customer_facts with no cutoff) and return every difference from the live statistics in
-- ltv.customer_stats, one row per customer and column: (customer_id, column_name, stored,
-- recomputed), values as text. Nothing returned = consistent. A missing or surplus row is one
-- difference with column_name '(row)' and the whole row on its side. Numbers compare by value
-- (1.5 = 1.50). A full pass over the raw tables: for tests, audits and after bulk repairs.

CREATE OR REPLACE FUNCTION ltv.verify_customer_stats()
RETURNS TABLE (customer_id bigint, column_name text, stored text, recomputed text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
AS $$
WITH
stored_rows AS (
    SELECT s.customer_id, to_jsonb(s) AS j FROM ltv.customer_stats s
),
recomputed_rows AS (
    SELECT f.customer_id, to_jsonb(f) AS j FROM ltv.customer_facts(NULL) f
),
paired AS (
    SELECT coalesce(s.customer_id, r.customer_id) AS customer_id, s.j AS stored, r.j AS recomputed
    FROM stored_rows s
    FULL JOIN recomputed_rows r ON r.customer_id = s.customer_id
),
missing_or_surplus AS (
    SELECT p.customer_id, '(row)' AS column_name, p.stored::text AS stored, p.recomputed::text AS recomputed
    FROM paired p
    WHERE p.stored IS NULL OR p.recomputed IS NULL
),
differing_columns AS (
    SELECT p.customer_id, k.key AS column_name, p.stored ->> k.key AS stored, p.recomputed ->> k.key AS recomputed
    FROM paired p
    CROSS JOIN LATERAL jsonb_object_keys(p.recomputed) k(key)
    WHERE p.stored IS NOT NULL AND p.recomputed IS NOT NULL
      AND (p.stored -> k.key) IS DISTINCT FROM (p.recomputed -> k.key)
)
SELECT * FROM missing_or_surplus
UNION ALL
SELECT * FROM differing_columns
ORDER BY 1, 2
$$;

COMMENT ON FUNCTION ltv.verify_customer_stats() IS
    'Every difference between ltv.customer_stats and its recomputation from the raw tables (customer, column, stored, recomputed); empty = consistent';
