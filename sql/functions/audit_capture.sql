-- Audit capture: statement-level triggers put entries into ltv.audit_pending; a deferred
-- constraint trigger chains them into ltv.audit_log when the transaction commits.
--
-- Why statement-level triggers with transition tables: one trigger call per statement, and
-- the entries of a 1M-row COPY are written by one INSERT … SELECT over the transition table
-- — set-based, not a million trigger calls.
--
-- Why chain at COMMIT rather than in the statement: the chain is totally ordered and gap-free
-- only if appends are serialised (the head row ltv.audit_chain_head is locked FOR UPDATE).
-- Taking that lock in the statement would hold it until the transaction ends: a long
-- ingestion transaction would stall every other audited write, and two transactions that
-- each hold a row lock the other wants would deadlock on the head. Taking it at commit holds
-- it only for the chaining itself, after every row lock the transaction needs is held.
-- The cost: audited commits are serialised — each waits for the chaining (numbering, hashing,
-- inserting its entries) of any commit ahead of it, so audited transactions have a throughput
-- ceiling of 1 / (chaining time) however many cores there are; every entry is also written
-- twice (pending, then log). Measured figures in README "Roles and audit".
-- Consequences: a transaction does not see its own entries in ltv.audit_log before it
-- commits (they are in ltv.audit_pending); audit_id follows commit order, so happened_at
-- (statement time) is not monotonic in audit_id. Under REPEATABLE READ / SERIALIZABLE an
-- audited transaction fails at commit with a serialization error if another audited
-- transaction committed after its snapshot was taken (the head row changed): retry it, as
-- those isolation levels require anyway.
--
-- The capture functions are SECURITY DEFINER (owned by ltv_admin): writers need no privilege
-- on the audit tables. Inside them current_user is the owner, so the acting role is taken
-- from the `role` setting (SET ROLE), falling back to session_user.

-- ltv.audit_acting_role(): the role the session acts as — the SET ROLE target, else the
-- session user. Unlike current_user it is unchanged inside SECURITY DEFINER functions, which
-- is where the capture triggers call it. (PL/pgSQL: its plan is cached, a SQL function
-- with a SET clause would be parsed again on every call.)
CREATE OR REPLACE FUNCTION ltv.audit_acting_role()
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
BEGIN
    RETURN CASE current_setting('role') WHEN 'none' THEN session_user::text ELSE current_setting('role') END;
END;
$$;

COMMENT ON FUNCTION ltv.audit_acting_role() IS
    'The role the session acts as (SET ROLE target, else session_user), unaffected by SECURITY DEFINER';

-- ltv.audit_row_key_sql(columns, alias): SQL text of a jsonb object holding the primary key
-- columns of a row referred to by `alias`, e.g. jsonb_build_object('customer_id', o.customer_id).
CREATE OR REPLACE FUNCTION ltv.audit_row_key_sql(p_columns text[], p_alias text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_parts text[] := '{}';
    v_col   text;
BEGIN
    FOREACH v_col IN ARRAY p_columns LOOP
        v_parts := v_parts || format('%L, %I.%I', v_col, p_alias, v_col);
    END LOOP;
    RETURN format('jsonb_build_object(%s)', array_to_string(v_parts, ', '));
END;
$$;

COMMENT ON FUNCTION ltv.audit_row_key_sql(text[], text) IS
    'SQL expression building the jsonb primary key of a row from its key columns under an alias (audit capture helper)';

-- ltv.audit_capture(): AFTER … FOR EACH STATEMENT trigger for INSERT (NEW TABLE audit_new),
-- UPDATE (OLD TABLE audit_old, NEW TABLE audit_new), DELETE (OLD TABLE audit_old) and TRUNCATE.
-- INSERT and DELETE entries hold the whole row; UPDATE entries the whole old row and only the
-- changed columns of the new one ({} when nothing changed), pairing old and new rows by
-- primary key (a row whose key changed is recorded as two UPDATE entries: the old row with
-- new_values NULL, and the new row with old_values NULL).
--
-- Trigger arguments (set by ltv.install_audit_triggers): the mode, then the table's primary
-- key columns (read from the catalog when the triggers are installed, not on every call).
-- Mode 'ingest' (on ltv.ingest_batches) records batches rather than rows: inserted
-- revenue_events are not audited row by row; each ingest batch gets one INGEST entry (the
-- whole batch row: file, sha256, counts) when it is finished — inserted with finished_at set,
-- or updated from unfinished to finished. Later changes to a finished batch are UPDATE
-- entries; progress updates of an unfinished batch are not recorded.
CREATE OR REPLACE FUNCTION ltv.audit_capture()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, ltv, pg_temp
SET jit = off
AS $$
DECLARE
    -- trigger arguments: mode ('row' or 'ingest'), then the primary key columns
    v_ingest  constant boolean := TG_ARGV[0] = 'ingest';
    v_key_old constant text := ltv.audit_row_key_sql(TG_ARGV[1:TG_NARGS - 1], 'o');
    v_key_new constant text := ltv.audit_row_key_sql(TG_ARGV[1:TG_NARGS - 1], 'n');
    v_select  text;
    v_rows    bigint;
BEGIN
    IF TG_NARGS < 2 THEN
        RAISE EXCEPTION 'ltv.audit_capture on %.%: arguments (mode, key columns…) missing; install it with ltv.install_audit_triggers()',
            TG_TABLE_SCHEMA, TG_TABLE_NAME;
    END IF;
    IF TG_OP = 'INSERT' THEN
        v_select := format(
            'SELECT $1, $2, $3, $4, $5, %L, %s, NULL::jsonb, to_jsonb(n) FROM audit_new n %s',
            CASE WHEN v_ingest THEN 'INGEST' ELSE 'INSERT' END, v_key_new,
            CASE WHEN v_ingest THEN 'WHERE n.finished_at IS NOT NULL' ELSE '' END);
    ELSIF TG_OP = 'DELETE' THEN
        v_select := format(
            'SELECT $1, $2, $3, $4, $5, ''DELETE'', %s, to_jsonb(o), NULL::jsonb FROM audit_old o',
            v_key_old);
    ELSIF TG_OP = 'UPDATE' THEN
        -- o.j / n.j: whole old / new rows as jsonb (MATERIALIZED: computed once per row, not
        -- once per reference); changed.j: the members of n.j whose values differ from o.j
        v_select := format(
            'WITH o AS MATERIALIZED (SELECT %s AS k, to_jsonb(o) AS j FROM audit_old o),'
            '     n AS MATERIALIZED (SELECT %s AS k, to_jsonb(n) AS j FROM audit_new n)'
            ' SELECT $1, $2, $3, $4, $5, %s, coalesce(o.k, n.k), %s, %s'
            '  FROM o FULL JOIN n ON n.k = o.k'
            '  LEFT JOIN LATERAL (SELECT coalesce(jsonb_object_agg(c.key, c.value), ''{}'') AS j'
            '                       FROM jsonb_each(n.j) AS c'
            '                      WHERE o.j -> c.key IS DISTINCT FROM c.value) AS changed'
            '         ON o.j IS NOT NULL AND n.j IS NOT NULL %s',
            v_key_old, v_key_new,
            CASE WHEN v_ingest
                 THEN 'CASE WHEN o.j ->> ''finished_at'' IS NULL THEN ''INGEST'' ELSE ''UPDATE'' END'
                 ELSE quote_literal('UPDATE') END,
            CASE WHEN v_ingest
                 THEN 'CASE WHEN o.j ->> ''finished_at'' IS NOT NULL THEN o.j END'
                 ELSE 'o.j' END,
            CASE WHEN v_ingest
                 THEN 'CASE WHEN o.j ->> ''finished_at'' IS NULL THEN n.j ELSE changed.j END'
                 ELSE 'CASE WHEN o.j IS NULL THEN n.j ELSE changed.j END' END,
            CASE WHEN v_ingest
                 THEN 'WHERE n.j ->> ''finished_at'' IS NOT NULL AND (o.j ->> ''finished_at'' IS NULL OR o.j <> n.j)'
                 ELSE '' END);
    ELSE  -- TRUNCATE
        v_select := 'SELECT $1, $2, $3, $4, $5, ''TRUNCATE'', NULL::jsonb, NULL::jsonb, NULL::jsonb';
    END IF;

    EXECUTE 'INSERT INTO ltv.audit_pending (happened_at, db_session_user, db_current_user,'
            ' application_name, table_name, operation, row_key, old_values, new_values) '
            || v_select
    USING clock_timestamp(), session_user::text, ltv.audit_acting_role(),
          current_setting('application_name'), TG_TABLE_NAME::text;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    IF v_rows > 0 THEN
        INSERT INTO ltv.audit_pending_xacts (transaction_id) VALUES (pg_current_xact_id())
        ON CONFLICT (transaction_id) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.audit_capture() IS
    'Statement-level audit trigger: records the statement''s rows (transition tables) as pending audit entries, chained at commit; with argument ''ingest'', one INGEST entry per finished ingest batch';

-- ltv.audit_chain_pending(): deferred constraint trigger on ltv.audit_pending_xacts, fired
-- once per transaction at commit. Locks the chain head, numbers the transaction's pending
-- entries after it, chains them with the ltv.audit_chain window aggregate, appends them to
-- ltv.audit_log and moves the head — all in one statement.
CREATE OR REPLACE FUNCTION ltv.audit_chain_pending()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, ltv, pg_temp
SET jit = off
AS $$
DECLARE
    v_xact      xid8 := NEW.transaction_id;
    v_last_id   bigint;
    v_last_hash bytea;
    v_new_id    bigint;
    v_new_hash  bytea;
BEGIN
    SELECT h.last_audit_id, h.last_hash INTO v_last_id, v_last_hash
    FROM ltv.audit_chain_head h WHERE h.singleton
    FOR UPDATE;

    WITH
    pending AS (
        DELETE FROM ltv.audit_pending p WHERE p.transaction_id = v_xact
        RETURNING p.*
    ),
    numbered AS (
        SELECT v_last_id + row_number() OVER (ORDER BY p.seq) AS audit_id, p.*
        FROM pending p
    ),
    chained AS (
        SELECT n.*,
               ltv.audit_chain(v_last_hash, ltv.audit_entry_text(
                   n.audit_id, n.happened_at, n.transaction_id, n.db_session_user, n.db_current_user,
                   n.application_name, n.table_name, n.operation, n.row_key, n.old_values, n.new_values))
                   OVER (ORDER BY n.audit_id ROWS UNBOUNDED PRECEDING) AS hash
        FROM numbered n
    ),
    appended AS (
        INSERT INTO ltv.audit_log (audit_id, happened_at, transaction_id, db_session_user, db_current_user,
                                   application_name, table_name, operation, row_key, old_values, new_values,
                                   prev_hash, hash)
        SELECT c.audit_id, c.happened_at, c.transaction_id, c.db_session_user, c.db_current_user,
               c.application_name, c.table_name, c.operation, c.row_key, c.old_values, c.new_values,
               coalesce(lag(c.hash) OVER (ORDER BY c.audit_id), v_last_hash), c.hash
        FROM chained c
        RETURNING audit_id, hash
    )
    SELECT a.audit_id, a.hash INTO v_new_id, v_new_hash
    FROM appended a ORDER BY a.audit_id DESC LIMIT 1;

    IF v_new_id IS NOT NULL THEN
        UPDATE ltv.audit_chain_head SET last_audit_id = v_new_id, last_hash = v_new_hash
        WHERE singleton;
    END IF;
    DELETE FROM ltv.audit_pending_xacts x WHERE x.transaction_id = v_xact;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.audit_chain_pending() IS
    'Deferred (commit-time) trigger: append the transaction''s pending audit entries to ltv.audit_log, numbered and hash-chained after the locked chain head';

-- ltv.audit_log_guard(): BEFORE UPDATE OR DELETE OR TRUNCATE … FOR EACH STATEMENT on the audit
-- log and its chain head. Privileges already deny these to everyone but the owner; this
-- trigger refuses them even to roles that were granted the privilege, and to superusers
-- (unless they disable it or act as the owner: a superuser can always bypass it — the hash
-- chain is what makes such tampering evident). Not SECURITY DEFINER: it must see the caller.
CREATE OR REPLACE FUNCTION ltv.audit_log_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    v_owner name := (SELECT pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = TG_RELID);
BEGIN
    IF current_user <> v_owner THEN
        RAISE EXCEPTION '% on %.% refused: the audit log is append-only (only its owner % may change it)',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME, v_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION ltv.audit_log_guard() IS
    'Refuses UPDATE, DELETE and TRUNCATE on the audit log and chain head unless current_user is their owner';

-- ltv.install_audit_triggers(): (re)create every audit trigger; idempotent. The tables audited
-- are listed here — later revisions that add an audited table, or change an audited table's
-- primary key, extend the list and call it.
CREATE OR REPLACE FUNCTION ltv.install_audit_triggers()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, ltv
AS $$
DECLARE
    -- every INSERT, UPDATE, DELETE and TRUNCATE is recorded
    c_audited      CONSTANT text[] := ARRAY['customers', 'plans', 'subscriptions', 'settings',
                                            'fx_rates', 'acquisition_spend', 'model_fits'];
    -- UPDATE, DELETE and TRUNCATE only: inserts are covered by the INGEST entry of their batch
    c_changes_only CONSTANT text[] := ARRAY['revenue_events'];
    v_table        text;
    v_keys         text;   -- the primary key columns, as trigger arguments
    v_mode         text;
    v_trigger      name;
BEGIN
    FOREACH v_table IN ARRAY c_audited || c_changes_only || ARRAY['ingest_batches'] LOOP
        SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY k.ord) INTO v_keys
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = format('ltv.%I', v_table)::regclass AND i.indisprimary;
        IF v_keys IS NULL THEN
            RAISE EXCEPTION 'ltv.install_audit_triggers: ltv.% has no primary key to identify audited rows', v_table;
        END IF;
        -- ingest_batches: INGEST entries for inserts and updates; deletes are ordinary rows
        v_mode := CASE WHEN v_table = 'ingest_batches' THEN 'ingest' ELSE 'row' END;

        IF v_table = ANY (c_audited) OR v_table = 'ingest_batches' THEN
            EXECUTE format('CREATE OR REPLACE TRIGGER audit_insert AFTER INSERT ON ltv.%I'
                           ' REFERENCING NEW TABLE AS audit_new'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION ltv.audit_capture(%L, %s)', v_table, v_mode, v_keys);
        END IF;
        EXECUTE format('CREATE OR REPLACE TRIGGER audit_update AFTER UPDATE ON ltv.%I'
                       ' REFERENCING OLD TABLE AS audit_old NEW TABLE AS audit_new'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ltv.audit_capture(%L, %s)', v_table, v_mode, v_keys);
        EXECUTE format('CREATE OR REPLACE TRIGGER audit_delete AFTER DELETE ON ltv.%I'
                       ' REFERENCING OLD TABLE AS audit_old'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ltv.audit_capture(''row'', %s)', v_table, v_keys);
        EXECUTE format('CREATE OR REPLACE TRIGGER audit_truncate AFTER TRUNCATE ON ltv.%I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ltv.audit_capture(''row'', %s)', v_table, v_keys);
        FOR v_trigger IN
            SELECT t.tgname FROM pg_trigger t
            WHERE t.tgrelid = format('ltv.%I', v_table)::regclass AND t.tgname LIKE 'audit\_%'
        LOOP
            EXECUTE format('COMMENT ON TRIGGER %I ON ltv.%I IS %L', v_trigger, v_table,
                           'Records this table''s changes in ltv.audit_log, hash-chained at commit (ltv.audit_capture)');
        END LOOP;
    END LOOP;

    FOREACH v_table IN ARRAY ARRAY['audit_log', 'audit_chain_head'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ltv.%I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION ltv.audit_log_guard()', v_table);
        EXECUTE format('COMMENT ON TRIGGER append_only ON ltv.%I IS %L', v_table,
                       'Refuses UPDATE, DELETE and TRUNCATE unless current_user owns the table (ltv.audit_log_guard)');
    END LOOP;

    -- constraint triggers cannot be CREATE OR REPLACEd
    DROP TRIGGER IF EXISTS chain_at_commit ON ltv.audit_pending_xacts;
    CREATE CONSTRAINT TRIGGER chain_at_commit AFTER INSERT ON ltv.audit_pending_xacts
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION ltv.audit_chain_pending();
    COMMENT ON TRIGGER chain_at_commit ON ltv.audit_pending_xacts IS
        'At commit, appends the transaction''s pending audit entries to the hash chain (ltv.audit_chain_pending)';
END;
$$;

COMMENT ON FUNCTION ltv.install_audit_triggers() IS
    'Create (or re-create) the audit triggers on every audited table, the append-only guards and the commit-time chaining trigger';
