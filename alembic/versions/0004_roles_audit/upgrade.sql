-- ltv_db 0004: roles and the tamper-evident audit log — the non-replaceable part (roles,
-- tables, the pgcrypto glue). The functions (capture triggers, hash chain, verification,
-- grants) come from this revision's frozen copies of sql/functions; the revision module then
-- runs ltv.install_audit_triggers() and ltv.apply_grants(). README "Roles and audit".

-- ---------------------------------------------------------------------------------------------
-- Roles. Roles are cluster-wide: several ltv databases on one server share them, so they are
-- created only when missing (two databases migrating at once may race: the loser's
-- duplicate_object error is swallowed) and never dropped by a downgrade, which revokes this
-- database's grants instead. All three are NOLOGIN groups: grant them to login roles
-- (CREATE ROLE alice LOGIN IN ROLE ltv_reader).
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    v_role text;
BEGIN
    FOREACH v_role IN ARRAY ARRAY['ltv_reader', 'ltv_writer', 'ltv_admin'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by another database's migration
            END;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON ROLE ltv_reader IS 'ltv_db BI access: SELECT on the views of schema ltv and EXECUTE on the LTV read and math functions; no base tables';
COMMENT ON ROLE ltv_writer IS 'ltv_db ingestion: INSERT/UPDATE on the loaded tables, reference lookups, partition creation; no settings, no audit log';
COMMENT ON ROLE ltv_admin IS 'ltv_db owner: owns schema ltv and everything in it (migrations, jobs, refits, refreshes, the audit log)';

-- ---------------------------------------------------------------------------------------------
-- pgcrypto (trusted since PostgreSQL 13) supplies SHA-256 for the hash chain. If the database
-- already has it (in whatever schema) we use that installation; otherwise we install it in
-- schema ltv, where it is ours and where 0004's downgrade removes it again. Either way the
-- chain calls it only through ltv.audit_digest(), whose body names the extension's schema, so
-- no function needs a search_path beyond pg_catalog, ltv. (A pre-existing pgcrypto whose
-- functions were revoked from PUBLIC needs EXECUTE granted to ltv_admin by hand.)
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    v_schema name;
BEGIN
    SELECT n.nspname INTO v_schema
    FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'pgcrypto';
    IF v_schema IS NULL THEN
        CREATE EXTENSION pgcrypto WITH SCHEMA ltv;
        v_schema := 'ltv';
    END IF;
    -- No SET search_path (the name is qualified): it is inlined into the hashing queries,
    -- see sql/functions/audit_hash.sql.
    EXECUTE format($fn$
        CREATE OR REPLACE FUNCTION ltv.audit_digest(p_data bytea)
        RETURNS bytea
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS 'SELECT %I.digest(p_data, ''sha256''::text)'
    $fn$, v_schema);
END;
$$;

COMMENT ON FUNCTION ltv.audit_digest(bytea) IS
    'SHA-256 of p_data via pgcrypto (wherever the extension lives); the only hash the audit chain uses';

-- ---------------------------------------------------------------------------------------------
-- The audit log. One row per audited row change (plus one INGEST entry per finished ingest
-- batch and one TRUNCATE entry per truncated table), hash-chained in audit_id order:
--     hash = sha256(prev_hash || ltv.audit_entry_text(every other column))
-- with prev_hash of audit_id 1 = 32 zero bytes. audit_id is gap-free and totally ordered:
-- entries are numbered and chained at COMMIT, one transaction at a time (see
-- sql/functions/audit_capture.sql for why commit time and what it costs).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE ltv.audit_log (
    audit_id         bigint      PRIMARY KEY CHECK (audit_id > 0),
    happened_at      timestamptz NOT NULL,
    transaction_id   xid8        NOT NULL,
    db_session_user  text        NOT NULL,
    db_current_user  text        NOT NULL,
    application_name text        NOT NULL,
    table_name       text        NOT NULL,
    operation        text        NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'INGEST')),
    row_key          jsonb,
    old_values       jsonb,
    new_values       jsonb,
    prev_hash        bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash             bytea       NOT NULL CHECK (length(hash) = 32)
);
COMMENT ON TABLE ltv.audit_log IS
    'Append-only, hash-chained record of every change to customers, plans, subscriptions, settings, fx_rates, acquisition_spend, model_fits, of every revenue_events update/delete, and of every finished ingest batch; check it with ltv.verify_audit_log()';
COMMENT ON COLUMN ltv.audit_log.audit_id IS 'Position in the chain: 1, 2, 3, … with no gaps, in commit order';
COMMENT ON COLUMN ltv.audit_log.happened_at IS 'clock_timestamp() when the audited statement ran';
COMMENT ON COLUMN ltv.audit_log.transaction_id IS 'Top-level transaction id of the change (entries of one transaction are consecutive)';
COMMENT ON COLUMN ltv.audit_log.db_session_user IS 'session_user: the role that logged in';
COMMENT ON COLUMN ltv.audit_log.db_current_user IS 'The role the session acted as (SET ROLE), else the session user';
COMMENT ON COLUMN ltv.audit_log.application_name IS 'The client''s application_name setting';
COMMENT ON COLUMN ltv.audit_log.table_name IS 'Audited table in schema ltv';
COMMENT ON COLUMN ltv.audit_log.operation IS 'INSERT, UPDATE, DELETE, TRUNCATE, or INGEST (an ingest batch finished; stands for the revenue_events rows it loaded)';
COMMENT ON COLUMN ltv.audit_log.row_key IS 'Primary key of the changed row as a JSON object (NULL for TRUNCATE)';
COMMENT ON COLUMN ltv.audit_log.old_values IS 'The whole row before an UPDATE or DELETE';
COMMENT ON COLUMN ltv.audit_log.new_values IS 'INSERT / INGEST: the whole new row; UPDATE: only the columns whose value changed ({} when none did)';
COMMENT ON COLUMN ltv.audit_log.prev_hash IS 'hash of the previous entry (32 zero bytes before audit_id 1)';
COMMENT ON COLUMN ltv.audit_log.hash IS 'sha256(prev_hash || ltv.audit_entry_text(…this entry…))';

-- The chain head: the last audit_id and hash. Appending transactions lock this row, which is
-- what serialises them; ltv.verify_audit_log() also compares the log's tail with it, so
-- deleting the newest entries is detected too.
CREATE TABLE ltv.audit_chain_head (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_audit_id  bigint  NOT NULL DEFAULT 0 CHECK (last_audit_id >= 0),
    last_hash      bytea   NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea
                           CHECK (length(last_hash) = 32)
);
COMMENT ON TABLE ltv.audit_chain_head IS 'The audit chain''s newest audit_id and hash; locked FOR UPDATE by each committing transaction that appends';
INSERT INTO ltv.audit_chain_head DEFAULT VALUES;

-- Entries captured during a transaction, waiting to be chained at its commit. UNLOGGED: a row
-- here only ever belongs to a transaction still in progress (it is deleted when chained), and
-- a crash aborts those transactions anyway — so writing it to WAL would be pure cost.
CREATE UNLOGGED TABLE ltv.audit_pending (
    transaction_id   xid8        NOT NULL DEFAULT pg_current_xact_id(),
    seq              bigint      GENERATED ALWAYS AS IDENTITY,
    happened_at      timestamptz NOT NULL,
    db_session_user  text        NOT NULL,
    db_current_user  text        NOT NULL,
    application_name text        NOT NULL,
    table_name       text        NOT NULL,
    operation        text        NOT NULL,
    row_key          jsonb,
    old_values       jsonb,
    new_values       jsonb
);
CREATE INDEX audit_pending_xact_idx ON ltv.audit_pending (transaction_id, seq);
COMMENT ON TABLE ltv.audit_pending IS 'Audit entries of transactions in progress, chained into ltv.audit_log at their commit (internal)';

-- One row per transaction that has pending entries; its deferred constraint trigger is what
-- runs the chaining at commit (one trigger event per transaction, not per entry).
CREATE UNLOGGED TABLE ltv.audit_pending_xacts (
    transaction_id xid8 PRIMARY KEY
);
COMMENT ON TABLE ltv.audit_pending_xacts IS 'Transactions with pending audit entries; inserting one queues the commit-time chaining (internal)';
