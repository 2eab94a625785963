-- The audit log's hash chain: what an entry's hash covers, and how a run of entries is chained.
--
-- Each entry's hash is sha256(prev_hash || canonical text of the entry), where the canonical
-- text is a JSON array of every column except the two hashes. It must not depend on session
-- settings, so the timestamp is spelt out in UTC with microseconds, the transaction id as
-- text, and the jsonb columns by jsonb's own output (keys sorted, numbers exact). Appending
-- (ltv.audit_chain_pending) and verifying (ltv.verify_audit_log) both go through these
-- functions, so there is exactly one definition of what is hashed.
--
-- Why ltv.audit_entry_text and ltv.audit_link_hash (and ltv.audit_digest, 0004's upgrade.sql)
-- have no `SET search_path`, unlike every other function: they are single-expression SQL
-- functions that the planner inlines into the chaining and verification queries, which run
-- them once per entry. A SET clause stops inlining and makes each call a separately planned
-- function call: chaining measured 3.7× slower per entry with the clauses than without.
-- They are pure, every function they call is schema-qualified, and their callers (SECURITY
-- DEFINER triggers, ltv.verify_audit_log) pin search_path themselves.

-- ltv.audit_entry_text(...): the canonical text of one entry.
CREATE OR REPLACE FUNCTION ltv.audit_entry_text(
    p_audit_id         bigint,
    p_happened_at      timestamptz,
    p_transaction_id   xid8,
    p_session_user     text,
    p_current_user     text,
    p_application_name text,
    p_table_name       text,
    p_operation        text,
    p_row_key          jsonb,
    p_old_values       jsonb,
    p_new_values       jsonb)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
SELECT pg_catalog.jsonb_build_array(
    p_audit_id,
    pg_catalog.to_char(p_happened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    p_transaction_id::text,
    p_session_user,
    p_current_user,
    p_application_name,
    p_table_name,
    p_operation,
    p_row_key,
    p_old_values,
    p_new_values)::text
$$;

COMMENT ON FUNCTION ltv.audit_entry_text(bigint, timestamptz, xid8, text, text, text, text, text, jsonb, jsonb, jsonb) IS
    'Canonical, settings-independent text of one audit entry (a JSON array of every column but the hashes) — what its hash covers';

-- ltv.audit_link_hash(prev_hash, entry_text): one link of the chain.
CREATE OR REPLACE FUNCTION ltv.audit_link_hash(p_prev_hash bytea, p_entry text)
RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
SELECT ltv.audit_digest(p_prev_hash || pg_catalog.convert_to(p_entry, 'UTF8'))
$$;

COMMENT ON FUNCTION ltv.audit_link_hash(bytea, text) IS
    'Hash of an audit entry: sha256(prev_hash || UTF-8 bytes of its canonical text)';

-- ltv.audit_chain(seed, entry) — an aggregate used as a running window aggregate,
--     ltv.audit_chain(head_hash, entry_text) OVER (ORDER BY audit_id ROWS UNBOUNDED PRECEDING)
-- returns each row's hash with the chain continued from head_hash: the state is the previous
-- row's hash (the seed before the first row). PostgreSQL advances a running aggregate one row
-- at a time, so a whole transaction's entries are chained in one set-based pass instead of a
-- loop. The transition function is PL/pgSQL on purpose: PL/pgSQL keeps its expression plan
-- for the session, whereas PostgreSQL 15 re-plans a SQL-language function's body (re-inlining
-- audit_link_hash and audit_digest) on every call — measured ~10× slower per entry.
CREATE OR REPLACE FUNCTION ltv.audit_chain_step(p_state bytea, p_seed bytea, p_entry text)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    RETURN ltv.audit_link_hash(coalesce(p_state, p_seed), p_entry);
END;
$$;

COMMENT ON FUNCTION ltv.audit_chain_step(bytea, bytea, text) IS
    'Transition function of ltv.audit_chain: hash the next entry onto the previous hash (the seed for the first entry)';

CREATE OR REPLACE AGGREGATE ltv.audit_chain(bytea, text) (
    SFUNC = ltv.audit_chain_step,
    STYPE = bytea
);

COMMENT ON AGGREGATE ltv.audit_chain(bytea, text) IS
    'Running hash chain: as a window aggregate ordered by audit_id, each row''s hash continuing from the seed hash';
