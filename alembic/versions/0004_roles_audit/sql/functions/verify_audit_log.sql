-- ltv.verify_audit_log(): check the audit log's hash chain end to end; returns its first broken
-- link, or no row when the chain is intact.
--
-- Every link is checked on its own (so the scan is one pass, no recursion):
--   1. numbering   audit_id follows its predecessor by exactly 1 (the first is 1) — a deleted
--                  entry shows up as a missing audit_id, reported at that id;
--   2. linkage     prev_hash equals the previous entry's stored hash (32 zero bytes for the
--                  first) — an entry deleted and the rest renumbered, or an entry whose hash
--                  was recomputed after editing it, breaks the next entry's link;
--   3. content     hash = sha256(prev_hash || ltv.audit_entry_text(the entry)) — an entry
--                  edited in place is reported at its own audit_id;
--   4. tail        the newest entry is the one ltv.audit_chain_head points at — deleting the
--                  newest entries is detected too.
-- The first failing check in audit_id order is returned, with the hash the chain expected and
-- the hash stored (hex; NULL where there is nothing stored). Run it as the log's owner
-- (ltv_admin) or a superuser; tampering by a superuser is exactly what it exists to reveal,
-- so keep a copy of the chain head (SELECT * FROM ltv.audit_chain_head) somewhere else too.

CREATE OR REPLACE FUNCTION ltv.verify_audit_log()
RETURNS TABLE (audit_id bigint, expected_hash text, stored_hash text, reason text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, ltv
SET jit = off
AS $$
WITH
genesis AS (
    SELECT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea AS hash
),
entries AS (
    SELECT l.audit_id, l.prev_hash, l.hash,
           coalesce(lag(l.audit_id) OVER w, 0)           AS previous_id,
           coalesce(lag(l.hash) OVER w, genesis.hash)    AS previous_hash,
           ltv.audit_link_hash(l.prev_hash, ltv.audit_entry_text(
               l.audit_id, l.happened_at, l.transaction_id, l.db_session_user, l.db_current_user,
               l.application_name, l.table_name, l.operation, l.row_key, l.old_values, l.new_values))
                                                         AS recomputed_hash
    FROM ltv.audit_log l CROSS JOIN genesis
    WINDOW w AS (ORDER BY l.audit_id)
),
tail AS (
    SELECT h.last_audit_id AS head_id, h.last_hash AS head_hash,
           coalesce(t.audit_id, 0) AS last_id, coalesce(t.hash, genesis.hash) AS last_hash
    FROM ltv.audit_chain_head h
    CROSS JOIN genesis
    LEFT JOIN LATERAL (SELECT l.audit_id, l.hash FROM ltv.audit_log l ORDER BY l.audit_id DESC LIMIT 1) t ON true
),
broken AS (
    SELECT e.previous_id + 1 AS audit_id, 1 AS check_no,
           e.prev_hash AS expected, NULL::bytea AS stored,
           format('entry missing: the log jumps from audit_id %s to %s', e.previous_id, e.audit_id) AS reason
    FROM entries e WHERE e.audit_id <> e.previous_id + 1
    UNION ALL
    SELECT e.audit_id, 2, e.previous_hash, e.prev_hash,
           'prev_hash does not match the previous entry''s hash (chain broken before this entry)'
    FROM entries e WHERE e.prev_hash <> e.previous_hash
    UNION ALL
    SELECT e.audit_id, 3, e.recomputed_hash, e.hash,
           'hash does not match the entry''s content (entry altered)'
    FROM entries e WHERE e.hash <> e.recomputed_hash
    UNION ALL
    SELECT least(t.last_id, t.head_id) + 1, 4,
           t.head_hash, t.last_hash,
           CASE WHEN t.last_id < t.head_id
                THEN format('entries %s to %s missing at the end of the log (the chain head is at %s)',
                            t.last_id + 1, t.head_id, t.head_id)
                ELSE format('entries after the chain head (%s): the log ends at %s', t.head_id, t.last_id)
           END
    FROM tail t WHERE t.last_id <> t.head_id
    UNION ALL
    SELECT t.last_id, 4, t.head_hash, t.last_hash,
           'the newest entry does not match the chain head'
    FROM tail t WHERE t.last_id = t.head_id AND t.last_hash <> t.head_hash
)
SELECT b.audit_id, encode(b.expected, 'hex'), encode(b.stored, 'hex'), b.reason
FROM broken b
ORDER BY b.audit_id, b.check_no
LIMIT 1
$$;

COMMENT ON FUNCTION ltv.verify_audit_log() IS
    'Check the audit log''s hash chain: the first broken link (audit_id, expected and stored hash in hex, reason), or no row when intact';
