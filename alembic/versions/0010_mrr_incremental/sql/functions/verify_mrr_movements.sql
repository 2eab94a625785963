-- ltv.verify_mrr_movements(): derive every customer's MRR rows from scratch
-- (ltv.mrr_movement_rows as of the view's last refresh) and return every row in which the
-- incrementally maintained ltv.mrr_movements differs: (customer_id, month, stored, recomputed),
-- each side the whole row as text, NULL where that side has no row. Nothing returned =
-- consistent. Numbers compare by value (1.5 = 1.50). A full derivation (two minutes at a
-- million suppliers): for tests, audits and after repairs — ltv.refresh_mrr_movements keeps the
-- rows exact, this checks that it did.

CREATE OR REPLACE FUNCTION ltv.verify_mrr_movements()
RETURNS TABLE (customer_id bigint, month date, stored text, recomputed text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
AS $$
WITH
refreshed AS (  -- never refreshed: nothing to derive (and the store is empty)
    SELECT r.last_refreshed_at AS as_of
    FROM ltv.view_refreshes r
    WHERE r.view_name = 'mrr_movements' AND r.last_refreshed_at IS NOT NULL
),
recomputed_rows AS (
    SELECT f AS rw FROM refreshed CROSS JOIN LATERAL ltv.mrr_movement_rows(refreshed.as_of) f
)
SELECT coalesce((s.rw).customer_id, (r.rw).customer_id), coalesce((s.rw).month, (r.rw).month),
       s.rw::text, r.rw::text
FROM (SELECT m AS rw FROM ltv.mrr_movement_store m) s
FULL JOIN recomputed_rows r ON (r.rw).customer_id = (s.rw).customer_id AND (r.rw).month = (s.rw).month
WHERE s.rw IS DISTINCT FROM r.rw
ORDER BY 1, 2
$$;

COMMENT ON FUNCTION ltv.verify_mrr_movements() IS
    'Every row in which ltv.mrr_movements differs from its derivation from scratch as of its last refresh (customer, month, stored, recomputed); empty = consistent';
