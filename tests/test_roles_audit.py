"""Roles and grants (ltv_reader, ltv_writer, ltv_admin) and the hash-chained audit log.

Every test connects as real login roles created for it (members of the ltv roles) over the
private cluster's trust-authenticated Unix socket, and tampers with the log as a superuser.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ltv_db.migrations import current_revision, downgrade_to, upgrade_head

GENESIS = bytes(32)
BASE_TABLES = ["customers", "subscriptions", "revenue_events", "revenue_event_keys", "plans", "settings",
               "fx_rates", "acquisition_spend", "model_fits", "ingest_batches", "ingest_rejects", "audit_log",
               "audit_chain_head", "audit_pending", "currencies"]

Connect = Callable[..., psycopg.Connection]


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture
def login_as(db: psycopg.Connection, db_url: str) -> Iterator[Callable[[str], Connect]]:
    """login_as('ltv_reader') → connect(**kw): connections as a fresh login role in that group."""
    created: list[str] = []

    def make(group: str) -> Connect:
        name = f"t_{group}_{uuid.uuid4().hex[:10]}"
        db.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(name), sql.Identifier(group)))
        created.append(name)

        def connect(**kwargs: object) -> psycopg.Connection:
            params = conninfo_to_dict(db_url) | {"user": name}
            return psycopg.connect(make_conninfo(**params), autocommit=True, **kwargs)

        connect.role = name  # type: ignore[attr-defined]
        return connect

    yield make
    for name in created:
        db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def add_customer(conn: psycopg.Connection, ref: str, category: str = "photographer") -> int:
    return conn.execute(
        """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
           VALUES (%s, %s, 'GB', 'organic', '2024-01-05T10:00:00Z') RETURNING customer_id""",
        (ref, category),
    ).fetchone()[0]


def add_event(conn: psycopg.Connection, customer_id: int, occurred_at: str, external_id: str) -> None:
    conn.execute(
        """INSERT INTO ltv.revenue_events (customer_id, occurred_at, kind, amount_minor, currency, fx_rate,
                                           amount_base, source, external_id)
           VALUES (%s, %s, 'subscription', 2900, 'GBP', 1, 29, 'stripe', %s)""",
        (customer_id, occurred_at, external_id),
    )


def entries(db: psycopg.Connection, where: str = "true", params: tuple = ()) -> list[dict]:
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(f"SELECT * FROM ltv.audit_log WHERE {where} ORDER BY audit_id", params).fetchall()


def verify(db: psycopg.Connection) -> list[tuple]:
    return db.execute("SELECT * FROM ltv.verify_audit_log()").fetchall()


def tamper(db: psycopg.Connection, statement: str, params: tuple = ()) -> None:
    """What a superuser can always do: switch the append-only guard off, change the log."""
    with db.transaction():
        db.execute("ALTER TABLE ltv.audit_log DISABLE TRIGGER append_only")
        db.execute(statement, params)
        db.execute("ALTER TABLE ltv.audit_log ENABLE TRIGGER append_only")


def some_history(db: psycopg.Connection, n: int = 5) -> None:
    for i in range(n):
        cid = add_customer(db, f"hist-{i}")
        db.execute("UPDATE ltv.customers SET region = %s WHERE customer_id = %s", (f"r{i}", cid))


# -- roles and grants --------------------------------------------------------------------------
def test_roles_exist_as_groups_and_admin_owns_the_schema(db: psycopg.Connection) -> None:
    rows = db.execute(
        "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('ltv_reader', 'ltv_writer', 'ltv_admin')"
    ).fetchall()
    assert sorted(rows) == [("ltv_admin", False), ("ltv_reader", False), ("ltv_writer", False)]
    not_admin = db.execute(
        """SELECT c.relname FROM pg_class c
           WHERE c.relnamespace = 'ltv'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
             AND pg_get_userbyid(c.relowner) <> 'ltv_admin'"""
    ).fetchall()
    assert not_admin == []
    assert db.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'ltv'").fetchone()[0] == (
        "ltv_admin"
    )


def test_public_has_nothing_in_the_schema(db: psycopg.Connection) -> None:
    assert db.execute("SELECT has_schema_privilege('public', 'ltv', 'USAGE')").fetchone()[0] is False
    executable = db.execute(
        """SELECT p.oid::regprocedure::text FROM pg_proc p
           WHERE p.pronamespace = 'ltv'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')"""
    ).fetchall()
    assert executable == []


def test_reader_reads_views_and_ltv_functions(db: psycopg.Connection, login_as) -> None:
    cid = add_customer(db, "reader-visible")
    # a view created after the migration is covered as soon as apply_grants() runs again
    db.execute("CREATE VIEW ltv.test_customer_count AS SELECT count(*) AS customers FROM ltv.customers")
    db.execute("SELECT ltv.apply_grants()")
    views = [r[0] for r in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'ltv'::regnamespace AND relkind IN ('v', 'm')"
    )]
    reader = login_as("ltv_reader")
    with reader() as conn:
        assert conn.execute("SELECT customers FROM ltv.test_customer_count").fetchone()[0] == 1
        for view in views:  # every view and materialized view of revision 0003 as well
            conn.execute(sql.SQL("SELECT * FROM ltv.{} LIMIT 1").format(sql.Identifier(view))).fetchall()
        row = conn.execute(
            "SELECT customer_id, vendor_category FROM ltv.customer_ltv(%s, '2026-01-01T00:00:00Z')", (cid,)
        ).fetchone()
        assert row == (cid, "photographer")
        assert conn.execute("SELECT ltv.sbg_survival(1, 1, 1)").fetchone()[0] == pytest.approx(0.5)
        conn.execute("SELECT * FROM ltv.formula_ltv('2026-01-01T00:00:00Z')").fetchall()
        conn.execute("SELECT * FROM ltv.channel_economics('2026-01-01T00:00:00Z')").fetchall()


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM ltv.customers",
        "SELECT * FROM ltv.revenue_events",
        "SELECT * FROM ltv.revenue_events_default",
        "SELECT * FROM ltv.audit_log",
        "SELECT * FROM ltv.ingest_rejects",
        "SELECT * FROM ltv.model_fits",
        "SELECT * FROM ltv.settings",
        """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
           VALUES ('r', 'photographer', 'GB', 'organic', now())""",
        "UPDATE ltv.settings SET horizon_months = 12",
        "INSERT INTO ltv.fx_rates VALUES ('EUR', '2026-01-01', 0.85)",
        "DELETE FROM ltv.audit_log",
        "SELECT ltv.refit_models()",
        "SELECT * FROM ltv.verify_audit_log()",
        "SELECT ltv.create_revenue_partition('2031-01-01')",
        "SELECT ltv.apply_grants()",
    ],
)
def test_reader_cannot_read_base_tables_or_write(login_as, statement: str) -> None:
    reader = login_as("ltv_reader")
    with reader() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_reader_has_no_privilege_on_any_table_and_writes_nothing(db: psycopg.Connection) -> None:
    granted = db.execute(
        """SELECT c.relname, c.relkind FROM pg_class c
           WHERE c.relnamespace = 'ltv'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
             AND (has_table_privilege('ltv_reader', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                  OR (c.relkind IN ('r', 'p') AND has_table_privilege('ltv_reader', c.oid, 'SELECT'))
                  OR (c.relkind = 'S' AND has_sequence_privilege('ltv_reader', c.oid, 'USAGE, UPDATE')))"""
    ).fetchall()
    assert granted == []
    # and every function it may call either only reads (STABLE / IMMUTABLE) or is SECURITY DEFINER
    writable = db.execute(
        """SELECT p.oid::regprocedure::text FROM pg_proc p
           WHERE p.pronamespace = 'ltv'::regnamespace AND has_function_privilege('ltv_reader', p.oid, 'EXECUTE')
             AND p.provolatile = 'v' AND p.prokind = 'f'"""
    ).fetchall()
    assert writable == []


def test_writer_loads_every_ingested_table(db: psycopg.Connection, login_as) -> None:
    writer = login_as("ltv_writer")
    with writer() as conn:
        cid = add_customer(conn, "w-1")
        conn.execute("UPDATE ltv.customers SET region = 'Kent' WHERE customer_id = %s", (cid,))
        conn.execute("INSERT INTO ltv.plans VALUES ('pro-m', 'pro', 'month', 2900, 'GBP')")
        conn.execute(
            """INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at)
               VALUES (%s, 'sub-1', 'pro-m', '2024-01-05T10:00:00Z')""",
            (cid,),
        )
        add_event(conn, cid, "2024-01-05T10:00:00Z", "ch_w1")
        conn.execute(
            """INSERT INTO ltv.revenue_event_keys
               SELECT source, external_id, customer_id, occurred_at, event_id FROM ltv.revenue_events"""
        )
        conn.execute("UPDATE ltv.revenue_events SET amount_base = 28 WHERE customer_id = %s", (cid,))
        batch = conn.execute(
            "INSERT INTO ltv.ingest_batches (entity, file_name) VALUES ('revenue_events', 'x.csv') RETURNING batch_id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO ltv.ingest_rejects (batch_id, file_name, line_no, reason) VALUES (%s, 'x.csv', 2, 'bad')",
            (batch,),
        )
        conn.execute("INSERT INTO ltv.fx_rates VALUES ('EUR', '2026-01-01', 0.85)")
        conn.execute("INSERT INTO ltv.acquisition_spend VALUES ('paid_search', '2026-01-01', 'GBP', 100000)")
        # a month with no partition yet: the SECURITY DEFINER function creates it for the writer
        assert conn.execute("SELECT ltv.create_revenue_partition('2032-03-01')").fetchone()[0] is True
        add_event(conn, cid, "2032-03-15T10:00:00Z", "ch_w2")
        conn.execute("SELECT ltv.fx_rate_at('EUR', '2026-01-02')").fetchone()
    owner = "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'ltv.revenue_events_p2032_03'::regclass"
    assert db.execute(owner).fetchone()[0] == "ltv_admin"
    assert db.execute("SELECT count(*) FROM ltv.revenue_events_p2032_03").fetchone()[0] == 1


def test_partition_creation_by_writer_rehomes_stranded_rows(db: psycopg.Connection, login_as) -> None:
    cid = add_customer(db, "stranded")
    add_event(db, cid, "2033-05-02T00:00:00Z", "ch_stranded")  # no partition: lands in DEFAULT
    writer = login_as("ltv_writer")
    with writer() as conn:
        # a temp table of the name the old implementation used must not be picked up
        conn.execute("CREATE TEMP TABLE stranded_revenue_events (x int)")
        assert conn.execute("SELECT ltv.create_revenue_partition('2033-05-01')").fetchone()[0] is True
    assert db.execute("SELECT count(*) FROM ltv.revenue_events_default").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM ltv.revenue_events_p2033_05").fetchone()[0] == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ltv.settings SET horizon_months = 12",
        "INSERT INTO ltv.settings DEFAULT VALUES",
        "SELECT * FROM ltv.audit_log",
        "UPDATE ltv.audit_log SET table_name = 'x'",
        "DELETE FROM ltv.audit_log",
        "TRUNCATE ltv.audit_log",
        "INSERT INTO ltv.audit_log (audit_id) VALUES (1)",
        "UPDATE ltv.audit_chain_head SET last_audit_id = 0",
        "INSERT INTO ltv.audit_pending (happened_at) VALUES (now())",
        "DELETE FROM ltv.customers",
        "TRUNCATE ltv.revenue_events",
        "UPDATE ltv.revenue_events_default SET amount_base = 0",
        "UPDATE ltv.model_fits SET is_active = false",
        "SELECT * FROM ltv.verify_audit_log()",
        "SELECT ltv.refit_models()",
    ],
)
def test_writer_cannot_alter_settings_or_the_audit_log(login_as, statement: str) -> None:
    writer = login_as("ltv_writer")
    with writer() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


def test_security_definer_functions_pin_their_search_path(db: psycopg.Connection) -> None:
    rows = db.execute(
        """SELECT p.oid::regprocedure::text, p.proconfig, pg_get_userbyid(p.proowner)
           FROM pg_proc p WHERE p.pronamespace = 'ltv'::regnamespace AND p.prosecdef"""
    ).fetchall()
    names = {r[0] for r in rows}
    assert {"ltv.create_revenue_partition(date)", "ltv.audit_capture()", "ltv.audit_chain_pending()"} <= names
    assert any(n.startswith("ltv.customer_ltv(") for n in names)
    for name, config, owner in rows:
        path = next(c for c in config if c.startswith("search_path="))
        assert path.startswith("search_path=pg_catalog, ltv"), name
        assert owner == "ltv_admin", name


def test_apply_grants_is_idempotent(db: psycopg.Connection) -> None:
    snapshot = """SELECT c.relname, c.relacl::text, pg_get_userbyid(c.relowner) FROM pg_class c
                  WHERE c.relnamespace = 'ltv'::regnamespace
                  UNION ALL
                  SELECT p.oid::regprocedure::text, p.proacl::text, p.prosecdef::text FROM pg_proc p
                  WHERE p.pronamespace = 'ltv'::regnamespace ORDER BY 1"""
    before = db.execute(snapshot).fetchall()
    db.execute("SELECT ltv.apply_grants()")
    db.execute("SELECT ltv.install_audit_triggers()")
    assert db.execute(snapshot).fetchall() == before


# -- the audit log -----------------------------------------------------------------------------
def test_insert_update_delete_are_recorded_with_who_and_application(db: psycopg.Connection, login_as) -> None:
    writer = login_as("ltv_writer")
    with writer() as conn:
        conn.execute("SET application_name = 'nightly-loader'")
        cid = add_customer(conn, "aud-1")
        conn.execute("UPDATE ltv.customers SET region = 'Kent', country = 'IE' WHERE customer_id = %s", (cid,))
    db.execute("SET application_name = 'ops-console'")
    db.execute("SET ROLE ltv_admin")
    db.execute("DELETE FROM ltv.customers WHERE customer_id = %s", (cid,))
    db.execute("RESET ROLE")

    log = entries(db, "table_name = 'customers'")
    assert [e["operation"] for e in log] == ["INSERT", "UPDATE", "DELETE"]
    ins, upd, dele = log
    assert all(e["row_key"] == {"customer_id": cid} for e in log)
    assert ins["old_values"] is None and ins["new_values"]["customer_ref"] == "aud-1"
    assert ins["new_values"]["region"] is None
    assert upd["old_values"]["region"] is None and upd["old_values"]["country"] == "GB"
    assert upd["new_values"] == {"region": "Kent", "country": "IE"}  # only the changed columns
    assert dele["old_values"]["region"] == "Kent" and dele["new_values"] is None
    for e in (ins, upd):
        assert e["db_session_user"] == writer.role and e["db_current_user"] == writer.role
        assert e["application_name"] == "nightly-loader"
    assert dele["db_session_user"] == "postgres" and dele["db_current_user"] == "ltv_admin"
    assert dele["application_name"] == "ops-console"
    assert ins["happened_at"] <= upd["happened_at"] <= dele["happened_at"]
    assert verify(db) == []


def test_every_audited_table_is_recorded(db: psycopg.Connection) -> None:
    db.execute("UPDATE ltv.settings SET horizon_months = 24")
    db.execute("INSERT INTO ltv.plans VALUES ('basic-y', 'basic', 'year', 29000, 'GBP')")
    db.execute("UPDATE ltv.plans SET list_price_minor = 31000")
    db.execute("INSERT INTO ltv.fx_rates VALUES ('EUR', '2026-01-01', 0.85)")
    db.execute("DELETE FROM ltv.fx_rates")
    db.execute("INSERT INTO ltv.acquisition_spend VALUES ('referral', '2026-01-01', 'GBP', 500)")
    cid = add_customer(db, "aud-all")
    db.execute(
        """INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at)
           VALUES (%s, 's1', 'basic-y', '2024-01-05T10:00:00Z')""",
        (cid,),
    )
    db.execute(
        """INSERT INTO ltv.model_fits (model, segment, data_cutoff, n_customers, converged)
           VALUES ('sbg', 'all', now(), 0, false)"""
    )
    db.execute("TRUNCATE ltv.acquisition_spend")
    recorded = set(db.execute("SELECT table_name, operation FROM ltv.audit_log").fetchall())
    assert recorded >= {
        ("settings", "UPDATE"), ("plans", "INSERT"), ("plans", "UPDATE"), ("fx_rates", "INSERT"),
        ("fx_rates", "DELETE"), ("acquisition_spend", "INSERT"), ("acquisition_spend", "TRUNCATE"),
        ("customers", "INSERT"), ("subscriptions", "INSERT"), ("model_fits", "INSERT"),
    }
    (settings,) = entries(db, "table_name = 'settings'")
    assert settings["row_key"] == {"singleton": True}
    assert settings["old_values"]["horizon_months"] == 36 and settings["new_values"] == {"horizon_months": 24}
    assert verify(db) == []


def test_revenue_event_changes_are_recorded_but_inserts_are_not(db: psycopg.Connection) -> None:
    cid = add_customer(db, "aud-ev")
    add_event(db, cid, "2026-11-03T10:00:00Z", "ch_ev1")
    add_event(db, cid, "2026-11-04T10:00:00Z", "ch_ev2")
    assert entries(db, "table_name = 'revenue_events'") == []
    db.execute("UPDATE ltv.revenue_events SET amount_base = 30 WHERE external_id = 'ch_ev1'")
    db.execute("DELETE FROM ltv.revenue_events WHERE external_id = 'ch_ev2'")
    upd, dele = entries(db, "table_name = 'revenue_events'")
    assert upd["operation"] == "UPDATE" and upd["new_values"] == {"amount_base": 30}
    assert upd["row_key"]["customer_id"] == cid and set(upd["row_key"]) == {"customer_id", "occurred_at", "event_id"}
    assert dele["operation"] == "DELETE" and dele["old_values"]["external_id"] == "ch_ev2"


def test_one_entry_per_finished_ingest_batch(db: psycopg.Connection, login_as) -> None:
    writer = login_as("ltv_writer")
    with writer() as conn:
        batch = conn.execute(
            """INSERT INTO ltv.ingest_batches (entity, file_name, sha256)
               VALUES ('revenue_events', 'stripe-2026-11.csv', 'ab12') RETURNING batch_id"""
        ).fetchone()[0]
        conn.execute("UPDATE ltv.ingest_batches SET rows_read = 500 WHERE batch_id = %s", (batch,))  # progress
        assert entries(db, "table_name = 'ingest_batches'") == []
        conn.execute(
            """UPDATE ltv.ingest_batches SET rows_read = 1000, loaded = 990, rejected = 10, finished_at = now()
               WHERE batch_id = %s""",
            (batch,),
        )
        conn.execute(
            """INSERT INTO ltv.ingest_batches (entity, file_name, sha256, finished_at, rows_read, loaded)
               VALUES ('customers', 'suppliers.csv', 'cd34', now(), 3, 3)"""
        )
    done, second = entries(db, "table_name = 'ingest_batches'")
    assert done["operation"] == "INGEST" and done["row_key"] == {"batch_id": batch}
    assert done["new_values"]["file_name"] == "stripe-2026-11.csv" and done["new_values"]["sha256"] == "ab12"
    assert (done["new_values"]["rows_read"], done["new_values"]["loaded"], done["new_values"]["rejected"]) == (
        1000, 990, 10)
    assert done["db_session_user"] == writer.role
    assert second["operation"] == "INGEST" and second["new_values"]["file_name"] == "suppliers.csv"
    db.execute("UPDATE ltv.ingest_batches SET duplicates = 1 WHERE batch_id = %s", (batch,))
    (later,) = entries(db, "table_name = 'ingest_batches' AND operation = 'UPDATE'")
    assert later["new_values"] == {"duplicates": 1}


def test_bulk_load_is_captured_by_one_set_based_trigger_call(db: psycopg.Connection) -> None:
    db.execute("SET track_functions = 'all'")
    with db.transaction():
        db.execute(
            """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
               SELECT 'bulk-' || g, 'florist', 'FR', 'paid_social', now() FROM generate_series(1, 20000) g"""
        )
        calls = db.execute(
            "SELECT calls FROM pg_stat_xact_user_functions WHERE schemaname = 'ltv' AND funcname = 'audit_capture'"
        ).fetchone()[0]
        assert calls == 1
    rows = db.execute(
        "SELECT count(*), count(DISTINCT transaction_id), min(audit_id), max(audit_id) FROM ltv.audit_log"
    ).fetchone()
    assert rows == (20000, 1, 1, 20000)
    assert db.execute("SELECT count(*) FROM ltv.audit_pending").fetchone()[0] == 0
    assert verify(db) == []


def test_chain_is_recomputable_outside_the_database(db: psycopg.Connection) -> None:
    some_history(db, 3)
    rows = db.execute(
        """SELECT audit_id, prev_hash, hash,
                  ltv.audit_entry_text(audit_id, happened_at, transaction_id, db_session_user, db_current_user,
                                       application_name, table_name, operation, row_key, old_values, new_values)
           FROM ltv.audit_log ORDER BY audit_id"""
    ).fetchall()
    previous = GENESIS
    for audit_id, prev_hash, stored, text in rows:
        assert bytes(prev_hash) == previous, audit_id
        assert hashlib.sha256(previous + text.encode()).digest() == bytes(stored), audit_id
        previous = bytes(stored)
    assert bytes(db.execute("SELECT last_hash FROM ltv.audit_chain_head").fetchone()[0]) == previous


def test_rolled_back_work_leaves_no_gap(db: psycopg.Connection) -> None:
    add_customer(db, "kept-1")
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
        add_customer(db, "gone")
        add_customer(db, "kept-1")
    add_customer(db, "kept-2")
    assert [e["audit_id"] for e in entries(db)] == [1, 2]
    assert db.execute("SELECT count(*) FROM ltv.audit_pending_xacts").fetchone()[0] == 0
    assert verify(db) == []


def test_log_is_append_only_even_for_superusers(db: psycopg.Connection) -> None:
    some_history(db, 1)
    for statement in ("UPDATE ltv.audit_log SET table_name = 'x'", "DELETE FROM ltv.audit_log",
                      "TRUNCATE ltv.audit_log", "UPDATE ltv.audit_chain_head SET last_audit_id = 0"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            db.execute(statement)
    assert verify(db) == []


def test_altered_entry_is_reported(db: psycopg.Connection) -> None:
    some_history(db, 3)
    assert verify(db) == []
    tamper(db, """UPDATE ltv.audit_log SET new_values = new_values || '{"region": "Forged"}' WHERE audit_id = 4""")
    audit_id, expected, stored, reason = verify(db)[0]
    assert audit_id == 4 and expected != stored and "altered" in reason


def test_altered_entry_with_recomputed_hash_breaks_the_next_link(db: psycopg.Connection) -> None:
    some_history(db, 3)
    tamper(
        db,
        """UPDATE ltv.audit_log SET db_session_user = 'someone_else',
                  hash = ltv.audit_link_hash(prev_hash, ltv.audit_entry_text(audit_id, happened_at, transaction_id,
                      'someone_else', db_current_user, application_name, table_name, operation, row_key,
                      old_values, new_values))
           WHERE audit_id = 2""",
    )
    audit_id, _expected, _stored, reason = verify(db)[0]
    assert audit_id == 3 and "prev_hash" in reason


def test_deleted_entry_in_the_middle_is_reported(db: psycopg.Connection) -> None:
    some_history(db, 3)
    # the owner may change the log (no trigger to disable) — the chain still tells
    db.execute("SET ROLE ltv_admin")
    db.execute("DELETE FROM ltv.audit_log WHERE audit_id = 3")
    db.execute("RESET ROLE")
    audit_id, expected, stored, reason = verify(db)[0]
    assert audit_id == 3 and stored is None and "missing" in reason
    next_prev = db.execute("SELECT encode(prev_hash, 'hex') FROM ltv.audit_log WHERE audit_id = 4").fetchone()[0]
    assert expected == next_prev  # the hash the missing entry had


def test_deleted_newest_entries_are_reported(db: psycopg.Connection) -> None:
    some_history(db, 3)
    tamper(db, "DELETE FROM ltv.audit_log WHERE audit_id >= 5")
    audit_id, _expected, _stored, reason = verify(db)[0]
    assert audit_id == 5 and "missing at the end" in reason


def test_concurrent_appends_keep_the_chain_gap_free(db: psycopg.Connection, login_as) -> None:
    writer = login_as("ltv_writer")
    workers, transactions = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        try:
            with writer() as conn:
                conn.execute(sql.SQL("SET application_name = {}").format(sql.Literal(f"worker-{worker}")))
                start.wait()
                for t in range(transactions):
                    with conn.transaction():
                        cid = add_customer(conn, f"cc-{worker}-{t}")
                        conn.execute("UPDATE ltv.customers SET region = 'x' WHERE customer_id = %s", (cid,))
                        conn.execute(
                            "INSERT INTO ltv.fx_rates VALUES ('EUR', %s::date + %s, 0.85)",
                            ("2020-01-01", worker * 1000 + t),
                        )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = workers * transactions * 3
    ids = [r[0] for r in db.execute("SELECT audit_id FROM ltv.audit_log ORDER BY audit_id")]
    assert ids == list(range(1, total + 1))
    # each transaction's entries are consecutive: chained as one block at its commit
    blocks = db.execute(
        """SELECT transaction_id, max(audit_id) - min(audit_id) + 1, count(*) FROM ltv.audit_log
           GROUP BY transaction_id"""
    ).fetchall()
    assert len(blocks) == workers * transactions and all(span == n == 3 for _, span, n in blocks)
    assert verify(db) == []


def test_open_audited_transaction_does_not_block_other_audited_writes(db: psycopg.Connection, db_url: str) -> None:
    first, second = add_customer(db, "long-1"), add_customer(db, "long-2")
    with psycopg.connect(db_url) as slow, psycopg.connect(db_url, autocommit=True) as fast:
        slow.execute("UPDATE ltv.customers SET region = 'slow' WHERE customer_id = %s", (first,))  # stays open
        fast.execute("SET statement_timeout = '5s'")
        fast.execute("UPDATE ltv.customers SET region = 'fast' WHERE customer_id = %s", (second,))
        slow.commit()
    fast_id, slow_id = (
        db.execute("SELECT audit_id FROM ltv.audit_log WHERE new_values = %s::jsonb", (f'{{"region": "{r}"}}',))
        .fetchone()[0]
        for r in ("fast", "slow")
    )
    assert fast_id < slow_id  # chained in commit order
    assert verify(db) == []


def test_repeatable_read_commit_after_another_audited_commit_must_retry(db: psycopg.Connection, db_url: str) -> None:
    with psycopg.connect(db_url) as snapshot_holder:
        snapshot_holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        snapshot_holder.execute("SELECT 1")  # takes the snapshot
        add_customer(db, "committed-meanwhile")  # moves the chain head
        add_customer(snapshot_holder, "too-late")
        with pytest.raises(psycopg.errors.SerializationFailure):
            snapshot_holder.commit()
    assert [e["new_values"]["customer_ref"] for e in entries(db)] == ["committed-meanwhile"]
    assert db.execute("SELECT count(*) FROM ltv.audit_pending").fetchone()[0] == 0
    assert verify(db) == []


# -- migrations --------------------------------------------------------------------------------
def test_downgrade_to_0003_revokes_and_upgrade_restores(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        some_history(conn, 2)
    downgrade_to(db_url, "0003_bi_views")
    assert current_revision(db_url) == "0003_bi_views"
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('ltv.audit_log')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'ltv\\_%'").fetchone()[0] == 3
        assert conn.execute(
            """SELECT has_schema_privilege('ltv_reader', 'ltv', 'USAGE')
                      OR has_schema_privilege('ltv_writer', 'ltv', 'USAGE')"""
        ).fetchone()[0] is False
        assert conn.execute(
            """SELECT count(*) FROM pg_class WHERE relnamespace = 'ltv'::regnamespace
               AND pg_get_userbyid(relowner) LIKE 'ltv\\_%'"""
        ).fetchone()[0] == 0
        # what 0004 made SECURITY DEFINER is back to its 0003 definition
        flipped = conn.execute(
            """SELECT p.oid::regprocedure::text FROM pg_proc p
               WHERE p.pronamespace = 'ltv'::regnamespace AND p.prosecdef
                 AND p.proname IN ('customer_ltv', 'score_customers', 'formula_ltv', 'create_revenue_partition')"""
        ).fetchall()
        assert flipped == []
        assert conn.execute(
            "SELECT has_function_privilege('public', 'ltv.customer_ltv(bigint, timestamptz)', 'EXECUTE')"
        ).fetchone()[0] is True
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit\\_%'").fetchone()[0] == 0

    upgrade_head(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM ltv.audit_log").fetchone()[0] == 0  # a new chain
        add_customer(conn, "after-upgrade")
        assert [e["operation"] for e in entries(conn)] == ["INSERT"]
        assert verify(conn) == []
        assert conn.execute("SELECT has_schema_privilege('ltv_reader', 'ltv', 'USAGE')").fetchone()[0] is True
