-- ltv_db 0004 downgrade: back to 0003's privileges and no audit log.
--
-- The roles are NOT dropped: they are cluster-wide, other ltv databases on this server may use
-- them, and login roles may be members of them. This database's side of them is removed
-- instead: ownership goes back to the role running the downgrade, their privileges here are
-- revoked, and PUBLIC gets back the EXECUTE on functions that PostgreSQL grants by default.
-- To remove the roles from a server with no ltv database left:
--   DROP ROLE ltv_reader, ltv_writer, ltv_admin;
-- The revision module then re-installs 0003's function definitions (undoing SECURITY DEFINER
-- and the new ltv.create_revenue_partition).

SELECT ltv.transfer_ownership(current_user);

REVOKE ALL ON SCHEMA ltv FROM ltv_reader, ltv_writer, ltv_admin;
REVOKE ALL ON ALL TABLES IN SCHEMA ltv FROM ltv_reader, ltv_writer, ltv_admin;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA ltv FROM ltv_reader, ltv_writer, ltv_admin;
REVOKE ALL ON ALL ROUTINES IN SCHEMA ltv FROM ltv_reader, ltv_writer, ltv_admin;
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA ltv TO PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE ltv_admin GRANT EXECUTE ON ROUTINES TO PUBLIC;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM ltv_admin', current_database());
END;
$$;

-- The audit log and its machinery (dropping the trigger functions drops their triggers).
DROP FUNCTION ltv.audit_capture() CASCADE;
DROP FUNCTION ltv.audit_chain_pending() CASCADE;
DROP FUNCTION ltv.audit_log_guard() CASCADE;
DROP TABLE ltv.audit_pending_xacts, ltv.audit_pending, ltv.audit_chain_head, ltv.audit_log;
DROP FUNCTION ltv.install_audit_triggers();
DROP FUNCTION ltv.verify_audit_log();
DROP AGGREGATE ltv.audit_chain(bytea, text);
DROP FUNCTION ltv.audit_chain_step(bytea, bytea, text);
DROP FUNCTION ltv.audit_link_hash(bytea, text);
DROP FUNCTION ltv.audit_entry_text(bigint, timestamptz, xid8, text, text, text, text, text, jsonb, jsonb, jsonb);
DROP FUNCTION ltv.audit_row_key_sql(text[], text);
DROP FUNCTION ltv.audit_acting_role();
DROP FUNCTION ltv.audit_digest(bytea);
DROP FUNCTION ltv.apply_grants();
DROP FUNCTION ltv.transfer_ownership(name);

-- pgcrypto is ours when it lives in schema ltv (0004 installed it there); one that was
-- already installed elsewhere is left alone.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension e
               WHERE e.extname = 'pgcrypto' AND e.extnamespace = 'ltv'::regnamespace) THEN
        DROP EXTENSION pgcrypto;
    END IF;
END;
$$;
