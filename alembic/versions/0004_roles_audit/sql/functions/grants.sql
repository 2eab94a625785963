-- Ownership and grants of schema ltv, derived from the catalog so they cover objects that
-- later revisions add. Every revision from 0004 on ends with `SELECT ltv.apply_grants()`.
--
-- The model (README "Roles and audit"):
--   ltv_admin   owns schema ltv and every object in it (so its members can migrate, refit,
--               refresh and alter; SECURITY DEFINER functions run as ltv_admin, not as a
--               superuser). Members act as it with SET ROLE ltv_admin.
--   ltv_reader  USAGE on the schema; SELECT on every view and materialized view; EXECUTE on
--               the LTV read functions (run as the owner, so the reader needs no table
--               access), on every IMMUTABLE function (pure math: it cannot read data) and on
--               functions that the plain views call (a view runs its functions as the caller).
--   ltv_writer  USAGE on the schema; SELECT/INSERT/UPDATE on the tables ingestion loads,
--               SELECT on the reference tables it validates against, USAGE on those tables'
--               sequences; EXECUTE on the ingestion helpers, ltv.create_revenue_partition
--               (SECURITY DEFINER) and every IMMUTABLE function. No settings changes, no
--               DELETE, nothing on the audit tables (the capture triggers run as the owner).
--   PUBLIC      nothing: all privileges on the schema and its objects are revoked, including
--               the EXECUTE on functions PostgreSQL grants to PUBLIC by default.
--
-- Grants are on the partitioned parent ltv.revenue_events only, never on its partitions:
-- rows inserted or updated through the parent are routed without a privilege check on the
-- partition, and direct DML on a partition would bypass the parent's statement-level
-- triggers (live statistics, audit).
--
-- Trigger functions in ltv are made SECURITY DEFINER (a trigger fires with the privileges of
-- whoever wrote the row; as definer it can maintain derived tables and the audit log that
-- the writer cannot touch), except those in c_invoker_triggers, which must see the caller.
-- Every SECURITY DEFINER function must pin its search_path without public or "$user";
-- apply_grants() refuses to finish otherwise.

-- ltv.transfer_ownership(owner): make `owner` the owner of schema ltv and of every object in
-- it (tables, partitions, views, materialized views, standalone sequences, types, functions,
-- procedures, aggregates). Objects that belong to an extension, and sequences and indexes
-- that follow their table, are left alone. Used by apply_grants() (→ ltv_admin) and by 0004's
-- downgrade (→ the role running the migration).
CREATE OR REPLACE FUNCTION ltv.transfer_ownership(p_owner name)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_owner oid := p_owner::regrole;
    v_ltv   oid := 'ltv'::regnamespace;
    v_obj   record;
BEGIN
    IF (SELECT n.nspowner FROM pg_namespace n WHERE n.oid = v_ltv) <> v_owner THEN
        EXECUTE format('ALTER SCHEMA ltv OWNER TO %I', p_owner);
    END IF;

    FOR v_obj IN
        SELECT c.relkind, format('ltv.%I', c.relname) AS name
        FROM pg_class c
        WHERE c.relnamespace = v_ltv
          AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
          AND c.relowner <> v_owner
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
          -- identity and OWNED BY sequences follow their table
          AND NOT (c.relkind = 'S' AND EXISTS (
                  SELECT FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
        ORDER BY c.relkind, c.relname
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I',
                       CASE v_obj.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                          WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                          WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END,
                       v_obj.name, p_owner);
    END LOOP;

    FOR v_obj IN
        SELECT t.typtype, format('ltv.%I', t.typname) AS name
        FROM pg_type t
        WHERE t.typnamespace = v_ltv
          AND t.typtype IN ('d', 'e', 'r')
          AND t.typowner <> v_owner
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I',
                       CASE v_obj.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, v_obj.name, p_owner);
    END LOOP;

    FOR v_obj IN
        SELECT p.oid::regprocedure AS routine
        FROM pg_proc p
        WHERE p.pronamespace = v_ltv
          AND p.proowner <> v_owner
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', v_obj.routine, p_owner);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION ltv.transfer_ownership(name) IS
    'Give schema ltv and every object in it (except extension members and dependent sequences) to the named role';

-- ltv.apply_grants(): (re)apply ownership, SECURITY DEFINER flags and every privilege of
-- schema ltv from the lists below and the catalog. Idempotent; run by the migration role
-- (a superuser or a member of ltv_admin), not SECURITY DEFINER.
CREATE OR REPLACE FUNCTION ltv.apply_grants()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    -- LTV read functions for BI (every overload): SECURITY DEFINER, EXECUTE to ltv_reader.
    c_reader_functions  CONSTANT name[] := ARRAY['customer_ltv', 'score_customers', 'customer_history',
                                                 'formula_ltv', 'channel_economics'];
    -- Tables ingestion loads: SELECT, INSERT, UPDATE to ltv_writer.
    c_writer_tables     CONSTANT name[] := ARRAY['customers', 'subscriptions', 'revenue_events',
                                                 'revenue_event_keys', 'ingest_batches', 'ingest_rejects',
                                                 'fx_rates', 'plans', 'acquisition_spend'];
    -- Reference tables ingestion validates against: SELECT only to ltv_writer.
    c_writer_lookups    CONSTANT name[] := ARRAY['currencies', 'vendor_categories', 'acquisition_channels',
                                                 'settings'];
    -- Functions ingestion calls besides the IMMUTABLE ones (overloads included; names not yet
    -- installed are skipped — the ingestion revision brings the parsing helpers).
    c_writer_functions  CONSTANT name[] := ARRAY['create_revenue_partition', 'fx_rate_at',
                                                 'parse_timestamptz', 'timestamp_problem', 'parse_date',
                                                 'parse_month', 'amount_problem', 'amount_to_minor',
                                                 'csv_split_line', 'ingest_valid_ymd'];
    -- Must stay SECURITY DEFINER besides the reader functions and the trigger functions.
    c_definer_functions CONSTANT name[] := ARRAY['create_revenue_partition'];
    -- Trigger functions that must run as the caller.
    c_invoker_triggers  CONSTANT name[] := ARRAY['audit_log_guard'];
    v_ltv    oid := 'ltv'::regnamespace;
    v_fn     record;
    v_path   text;
BEGIN
    PERFORM ltv.transfer_ownership('ltv_admin');

    -- SECURITY DEFINER where the model needs it, and only with a pinned search_path.
    IF EXISTS (SELECT FROM unnest(c_reader_functions) AS f(name)
               WHERE NOT EXISTS (SELECT FROM pg_proc p WHERE p.pronamespace = v_ltv AND p.proname = f.name)) THEN
        RAISE EXCEPTION 'ltv.apply_grants: a reader function in % is missing; update the list', c_reader_functions;
    END IF;
    FOR v_fn IN
        SELECT p.oid::regprocedure AS routine, p.prosecdef, p.proconfig
        FROM pg_proc p
        WHERE p.pronamespace = v_ltv
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
          AND (p.proname = ANY (c_reader_functions) OR p.proname = ANY (c_definer_functions)
               OR (p.prorettype = 'trigger'::regtype AND NOT p.proname = ANY (c_invoker_triggers)))
    LOOP
        SELECT substr(c, length('search_path=') + 1) INTO v_path
        FROM unnest(v_fn.proconfig) AS c WHERE c LIKE 'search_path=%';
        IF v_path IS NULL OR v_path ~* '(^|[ ,])("?public"?|"?\$user"?)($|[ ,])' THEN
            RAISE EXCEPTION 'ltv.apply_grants: % would run as the owner but its search_path is %; pin it (SET search_path = pg_catalog, ltv)',
                v_fn.routine, coalesce(v_path, 'not set');
        END IF;
        IF NOT v_fn.prosecdef THEN
            EXECUTE format('ALTER ROUTINE %s SECURITY DEFINER', v_fn.routine);
        END IF;
    END LOOP;

    -- Start from nothing: PUBLIC and the two non-owner roles lose everything in the schema.
    REVOKE ALL ON SCHEMA ltv FROM PUBLIC, ltv_reader, ltv_writer;
    REVOKE ALL ON ALL TABLES IN SCHEMA ltv FROM PUBLIC, ltv_reader, ltv_writer;
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA ltv FROM PUBLIC, ltv_reader, ltv_writer;
    REVOKE ALL ON ALL ROUTINES IN SCHEMA ltv FROM PUBLIC, ltv_reader, ltv_writer;
    -- Functions ltv_admin creates later start without PUBLIC's default EXECUTE.
    ALTER DEFAULT PRIVILEGES FOR ROLE ltv_admin REVOKE EXECUTE ON ROUTINES FROM PUBLIC;

    -- ltv_admin owns everything except extension members (pgcrypto, when it lives in ltv),
    -- whose PUBLIC EXECUTE was just revoked: give the owner role back what the chain uses.
    FOR v_fn IN
        SELECT p.oid::regprocedure AS routine
        FROM pg_proc p JOIN pg_depend d
             ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
        WHERE p.pronamespace = v_ltv
    LOOP
        EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO ltv_admin', v_fn.routine);
    END LOOP;
    -- ltv.create_revenue_partition stages rows in a temporary table.
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO ltv_admin', current_database());

    -- ltv_reader
    GRANT USAGE ON SCHEMA ltv TO ltv_reader;
    FOR v_fn IN
        SELECT format('ltv.%I', c.relname) AS relation
        FROM pg_class c WHERE c.relnamespace = v_ltv AND c.relkind IN ('v', 'm')
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO ltv_reader', v_fn.relation);
    END LOOP;
    FOR v_fn IN
        SELECT DISTINCT p.oid::regprocedure AS routine
        FROM pg_proc p
        WHERE p.pronamespace = v_ltv
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
          AND (p.proname = ANY (c_reader_functions)
               OR (p.provolatile = 'i' AND p.prorettype <> 'trigger'::regtype)
               OR p.oid IN (SELECT d.refobjid
                            FROM pg_rewrite r
                            JOIN pg_class v ON v.oid = r.ev_class AND v.relnamespace = v_ltv AND v.relkind = 'v'
                            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                                            AND d.refclassid = 'pg_proc'::regclass))
    LOOP
        EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO ltv_reader', v_fn.routine);
    END LOOP;

    -- ltv_writer
    GRANT USAGE ON SCHEMA ltv TO ltv_writer;
    FOR v_fn IN
        SELECT format('ltv.%I', c.relname) AS relation, c.relname = ANY (c_writer_tables) AS loads
        FROM pg_class c
        WHERE c.relnamespace = v_ltv AND c.relkind IN ('r', 'p')
          AND (c.relname = ANY (c_writer_tables) OR c.relname = ANY (c_writer_lookups))
    LOOP
        EXECUTE format('GRANT %s ON %s TO ltv_writer',
                       CASE WHEN v_fn.loads THEN 'SELECT, INSERT, UPDATE' ELSE 'SELECT' END, v_fn.relation);
    END LOOP;
    FOR v_fn IN
        SELECT format('ltv.%I', s.relname) AS sequence
        FROM pg_class s
        JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        JOIN pg_class t ON t.oid = d.refobjid
        WHERE s.relnamespace = v_ltv AND s.relkind = 'S' AND t.relname = ANY (c_writer_tables)
          AND t.relnamespace = v_ltv
    LOOP
        EXECUTE format('GRANT USAGE ON SEQUENCE %s TO ltv_writer', v_fn.sequence);
    END LOOP;
    FOR v_fn IN
        SELECT p.oid::regprocedure AS routine
        FROM pg_proc p
        WHERE p.pronamespace = v_ltv
          AND NOT EXISTS (SELECT FROM pg_depend d
                          WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
          AND (p.proname = ANY (c_writer_functions)
               OR (p.provolatile = 'i' AND p.prorettype <> 'trigger'::regtype))
    LOOP
        EXECUTE format('GRANT EXECUTE ON ROUTINE %s TO ltv_writer', v_fn.routine);
    END LOOP;

    -- The audit log: append-only for everyone but its owner (privileges; the append_only
    -- trigger enforces it even against roles granted them by mistake).
    REVOKE UPDATE, DELETE, TRUNCATE ON ltv.audit_log, ltv.audit_chain_head FROM PUBLIC, ltv_reader, ltv_writer;
END;
$$;

COMMENT ON FUNCTION ltv.apply_grants() IS
    'Re-apply ownership (ltv_admin), SECURITY DEFINER flags and the ltv_reader / ltv_writer privileges to every object in schema ltv; call at the end of every revision';
