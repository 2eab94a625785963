"""Live per-customer statistics (ltv.customer_stats) and change notifications (issue 4).

The statement triggers on revenue_events and subscriptions must leave ltv.customer_stats equal
to what ltv.verify_customer_stats() recomputes from the raw tables — after inserts, refunds,
updates of any column, deletes, COPY, ingestion, subscription changes, truncation, rollbacks and
concurrent writers — and every changing statement must send NOTIFY ltv_changed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from ltv_db import demo_data
from ltv_db.migrations import current_revision, downgrade_to, upgrade_head
from tests.conftest import wait_for_lock_wait

T0 = datetime(2025, 1, 1, tzinfo=UTC)
MONTHS = [date(2025, m, 1) for m in (1, 2, 3)]  # partitions; other months land in the default one
EVENT_COLUMNS = ("customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base, "
                 "source, external_id, subscription_id")


# -- helpers -------------------------------------------------------------------------------------
def setup_reference(conn: psycopg.Connection, customers: int = 6) -> list[int]:
    conn.execute("INSERT INTO ltv.plans VALUES ('pro_month_gbp', 'pro', 'month', 2900, 'GBP'),"
                 " ('pro_year_gbp', 'pro', 'year', 29000, 'GBP')")
    for month in MONTHS:
        conn.execute("SELECT ltv.create_revenue_partition(%s)", (month,))
    rows = conn.execute(
        """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
           SELECT 'c-' || g, 'photographer', 'GB', 'organic', %s::timestamptz - interval '30 days'
           FROM generate_series(1, %s) g RETURNING customer_id""",
        (T0, customers),
    ).fetchall()
    return [r[0] for r in rows]


def add_events(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """One INSERT statement: rows of (customer_id, occurred_at, kind, amount, subscription_id)."""
    if not rows:
        return
    cids, ats, kinds, amounts, subs = (list(col) for col in zip(*rows, strict=True))
    conn.execute(
        """INSERT INTO ltv.revenue_events (customer_id, occurred_at, kind, amount_minor, currency, fx_rate,
                                           amount_base, source, external_id, subscription_id)
           SELECT c, t, k, (a * 100)::bigint, 'GBP', 1, a, 'test', gen_random_uuid()::text, s
           FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::numeric[], %s::bigint[]) AS u(c, t, k, a, s)""",
        (cids, ats, kinds, amounts, subs),
    )


def copy_events(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """One COPY into the partitioned parent."""
    with conn.cursor() as cur, cur.copy(f"COPY ltv.revenue_events ({EVENT_COLUMNS}) FROM STDIN") as copy:
        for i, (cid, at, kind, amount, sub) in enumerate(rows):
            copy.write_row((cid, at, kind, int(Decimal(amount) * 100), "GBP", 1, amount, "copy",
                            f"copy-{time.time_ns()}-{i}", sub))


def subscribe(conn: psycopg.Connection, cid: int, started: datetime, plan: str = "pro_month_gbp",
              cancelled: datetime | None = None, ended: datetime | None = None) -> int:
    return conn.execute(
        """INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at, cancelled_at, ended_at)
           VALUES (%s, 's-' || gen_random_uuid(), %s, %s, %s, %s) RETURNING subscription_id""",
        (cid, plan, started, cancelled, ended),
    ).fetchone()[0]


def differences(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT * FROM ltv.verify_customer_stats()").fetchall()


def stats(conn: psycopg.Connection, cid: int) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM ltv.customer_stats WHERE customer_id = %s", (cid,)).fetchone()


def history_both_ways(conn: psycopg.Connection, cutoff: datetime | str) -> tuple[list, list]:
    """customer_history rows from the live statistics and from the raw tables (one transaction:
    the same now())."""
    query = "SELECT * FROM ltv.customer_history_via(%s, NULL, %s) ORDER BY customer_id"
    with conn.transaction():
        return conn.execute(query, (cutoff, True)).fetchall(), conn.execute(query, (cutoff, False)).fetchall()


class Listener:
    """A LISTEN ltv_changed connection collecting payloads."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN ltv_changed")

    def drain(self, wait: float = 0.3) -> list[str]:
        payloads = []
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            for note in self.conn.notifies(timeout=remaining, stop_after=1):
                payloads.append(note.payload)
        return payloads

    def ids(self, payloads: list[str]) -> set[int]:
        return {i for p in payloads for i in json.loads(p).get("ids", [])}

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def listener(db_url: str):
    lis = Listener(db_url)
    yield lis
    lis.close()


# -- trigger correctness -------------------------------------------------------------------------
def test_inserts_count_purchase_days_not_purchases(db: psycopg.Connection) -> None:
    a, b, *_ = setup_reference(db)
    add_events(db, [(a, T0 + timedelta(hours=1), "one_off", "10.00", None),
                    (a, T0 + timedelta(hours=5), "one_off", "20.00", None),      # same UTC day
                    (a, T0 + timedelta(days=3, hours=10), "one_off", "30.00", None),
                    (b, T0 + timedelta(days=1), "refund", "4.00", None)])
    row = stats(db, a)
    assert row["x"] == 2 and row["event_count"] == 3 and row["one_off_spend"] == Decimal("60.00")
    assert row["last_purchase_at"] == T0 + timedelta(days=3, hours=10)
    assert stats(db, b)["one_off_net"] == Decimal("-4.00")
    # a purchase on a day strictly between the first and last purchase days: checked, not guessed
    add_events(db, [(a, T0 + timedelta(days=2), "one_off", "1.00", None)])
    assert stats(db, a)["x"] == 3
    add_events(db, [(a, T0 + timedelta(days=2, hours=3), "one_off", "1.00", None),   # day already counted
                    (a, T0 + timedelta(days=3, hours=2), "one_off", "1.00", None)])  # earlier on the last day
    row = stats(db, a)
    assert row["x"] == 3 and row["last_purchase_at"] == T0 + timedelta(days=3, hours=2)
    assert differences(db) == []


def test_subscription_charges_and_ties(db: psycopg.Connection) -> None:
    a, b, *_ = setup_reference(db)
    sub = subscribe(db, a, T0)
    at = T0 + timedelta(days=31)
    add_events(db, [(a, T0, "subscription", "29.00", sub), (a, at, "subscription", "30.00", sub)])
    add_events(db, [(a, at, "subscription", "31.00", sub)])  # same instant: the larger event_id wins
    row = stats(db, a)
    assert row["paid_periods"] == 3 and row["period_amount"] == Decimal("31.00")
    assert row["recurring_net"] == Decimal("90.00")
    newer = subscribe(db, a, T0 + timedelta(days=40), plan="pro_year_gbp")  # now the latest: no charges yet
    row = stats(db, a)
    assert (row["subscription_id"], row["paid_periods"], row["period_amount"]) == (newer, 0, None)
    add_events(db, [(a, T0 + timedelta(days=41), "subscription", "290.00", newer),
                    (b, T0 + timedelta(days=41), "subscription", "5.00", newer)])  # someone else's charge
    assert stats(db, a)["paid_periods"] == 1 and stats(db, b)["paid_periods"] == 0
    assert differences(db) == []


def test_charges_of_several_subscriptions_and_first_events_in_one_statement(
    db: psycopg.Connection, listener: Listener
) -> None:
    """The two cases the INSERT trigger handles apart from its one merge — charges of more than
    one subscription of a customer (a second UPDATE adds the latest one's) and a customer
    without a row yet (created, then merged) — beside an ordinary merge, in one statement that
    still notifies once."""
    a, b, c, *_ = setup_reference(db)
    older = subscribe(db, a, T0)
    latest = subscribe(db, a, T0 + timedelta(days=20), plan="pro_year_gbp")
    for_c = subscribe(db, c, T0)
    assert stats(db, b) is None
    listener.drain(0.2)
    add_events(db, [(a, T0 + timedelta(days=5), "subscription", "29.00", older),
                    (a, T0 + timedelta(days=21), "subscription", "290.00", latest),
                    (a, T0 + timedelta(days=35), "subscription", "29.00", older),  # a late charge of the old plan
                    (b, T0 + timedelta(days=2), "one_off", "40.00", None),
                    (c, T0 + timedelta(days=1), "subscription", "29.00", for_c)])
    row = stats(db, a)
    assert (row["paid_periods"], row["last_period_at"], row["period_amount"]) == (
        1, T0 + timedelta(days=21), Decimal("290.00"))
    assert row["event_count"] == 3 and row["recurring_net"] == Decimal("348.00")
    row = stats(db, b)
    assert (row["event_count"], row["x"], row["one_off_spend"]) == (1, 1, Decimal("40.00"))
    assert stats(db, c)["paid_periods"] == 1
    assert listener.drain() == [json.dumps({"ids": sorted((a, b, c))}, separators=(",", ":"))]
    assert differences(db) == []


def test_updates_deletes_and_moves_between_partitions_and_customers(db: psycopg.Connection) -> None:
    a, b, c, *_ = setup_reference(db)
    sub = subscribe(db, a, T0)
    add_events(db, [(a, T0 + timedelta(days=d), "one_off", "10.00", None) for d in range(0, 60, 7)]
               + [(a, T0 + timedelta(days=d), "subscription", "29.00", sub) for d in (0, 31)]
               + [(b, T0 + timedelta(days=d), "one_off", "5.00", None) for d in (1, 2)])
    assert differences(db) == []
    db.execute("UPDATE ltv.revenue_events SET amount_base = amount_base * 2 "
               "WHERE customer_id = %s AND kind = 'one_off'", (a,))
    assert differences(db) == []
    # across months: the row moves to another partition (and into the default one)
    db.execute("UPDATE ltv.revenue_events SET occurred_at = occurred_at + interval '45 days' "
               "WHERE customer_id = %s", (b,))
    db.execute("UPDATE ltv.revenue_events SET occurred_at = occurred_at + interval '400 days' "
               "WHERE customer_id = %s AND kind = 'subscription' AND occurred_at > %s", (a, T0))
    assert differences(db) == []
    # to another customer: both are recomputed
    db.execute("UPDATE ltv.revenue_events SET customer_id = %s WHERE customer_id = %s AND occurred_at < %s",
               (c, a, T0 + timedelta(days=15)))
    assert differences(db) == []
    db.execute("UPDATE ltv.revenue_events SET kind = 'chargeback' WHERE customer_id = %s", (c,))
    # MERGE fires the INSERT, UPDATE and DELETE statement triggers of the actions it takes
    merge = """MERGE INTO ltv.revenue_events e
               USING (SELECT %s::bigint AS cid, %s::timestamptz AS at) v
                  ON e.customer_id = v.cid AND e.occurred_at = v.at
               WHEN MATCHED AND e.kind = 'one_off' THEN DELETE
               WHEN MATCHED THEN UPDATE SET amount_base = e.amount_base + 1
               WHEN NOT MATCHED THEN INSERT (customer_id, occurred_at, kind, amount_minor, currency, fx_rate,
                                             amount_base, source, external_id)
                    VALUES (v.cid, v.at, 'one_off', 100, 'GBP', 1, 1, 'merge', gen_random_uuid()::text)"""
    for at in (T0 + timedelta(days=99), T0 + timedelta(days=99), T0):
        db.execute(merge, (c, at))
        assert differences(db) == []
    db.execute("DELETE FROM ltv.revenue_events WHERE customer_id = %s", (b,))
    assert stats(db, b) is None  # nothing left: no row
    db.execute("UPDATE ltv.subscriptions SET cancelled_at = started_at + interval '20 days', "
               "ended_at = started_at + interval '1 month'")
    db.execute("DELETE FROM ltv.subscriptions WHERE customer_id = %s", (a,))
    assert stats(db, a)["subscription_id"] is None
    assert differences(db) == []


def test_changes_to_thousands_of_customers_take_the_one_pass_way_and_stay_exact(db: psycopg.Connection) -> None:
    """Above 2,500 customers ltv.customer_facts (what ltv.refresh_customer_stats recomputes with)
    reads them in one pass over the events (nested loops off) instead of by lookups, and a few
    customers still by lookups: the same facts either way. Which way each recomputation went is
    read from its plan (auto_explain with the settings that differ from the defaults)."""
    ids = setup_reference(db, customers=3000)
    subs = {cid: subscribe(db, cid, T0) for cid in ids[:2800]}
    add_events(db, [(cid, T0 + timedelta(days=d), "subscription", "29.00", subs[cid]) for cid in ids[:2800]
                    for d in (0, 31)]
               + [(cid, T0 + timedelta(days=3 + cid % 20), "one_off", "12.50", None) for cid in ids])
    assert differences(db) == []
    plans: list[str] = []
    db.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    for setting, value in (("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_settings", "on"),
                           ("log_level", "notice")):
        db.execute(f"SET auto_explain.{setting} = {value}")

    def facts_plans(statement: str, params: tuple = ()) -> list[str]:
        plans.clear()
        db.execute(statement, params)
        return [p for p in plans if "events_before AS" in p]

    db.execute("LOAD 'auto_explain'")
    try:
        # every customer's charges re-priced: 5,600 rows of 2,800 customers
        many = facts_plans("UPDATE ltv.revenue_events SET amount_base = amount_base + 1 WHERE kind = 'subscription'")
        one = facts_plans("UPDATE ltv.revenue_events SET amount_base = amount_base + 1 "
                          "WHERE kind = 'subscription' AND customer_id = %s", (ids[0],))
        add_events(db, [(cid, T0 + timedelta(days=40), "refund", "3.00", None) for cid in ids[:2600]])
        many += facts_plans("DELETE FROM ltv.revenue_events WHERE kind = 'refund'")
    finally:
        db.execute("SET auto_explain.log_min_duration = -1")
    assert len(many) == 2 and all("enable_nestloop = 'off'" in p for p in many), many
    assert len(one) == 1 and "enable_nestloop" not in one[0], one
    assert differences(db) == []


def test_an_update_that_changes_nothing_the_facts_read_costs_nothing(
    db: psycopg.Connection, listener: Listener
) -> None:
    a, *_ = setup_reference(db)
    add_events(db, [(a, T0, "one_off", "10.00", None)])
    listener.drain(0.2)
    db.execute("UPDATE ltv.revenue_events SET batch_id = 7")
    assert listener.drain() == []
    assert differences(db) == []


def test_copy_and_insert_select_into_the_parent(db: psycopg.Connection) -> None:
    ids = setup_reference(db, customers=40)
    rows = [(cid, T0 + timedelta(days=(i * 7 + cid) % 80, hours=i % 3 * 5), ("one_off", "refund", "credit")[i % 3],
             f"{1 + i % 9}.{i % 100:02d}", None)
            for cid in ids for i in range(12)]
    copy_events(db, rows)
    assert db.execute("SELECT sum(event_count) FROM ltv.customer_stats").fetchone()[0] == len(rows)
    db.execute("CREATE TEMP TABLE more AS SELECT * FROM ltv.revenue_events")
    db.execute("UPDATE more SET event_id = nextval('ltv.revenue_events_event_id_seq'), "
               "occurred_at = occurred_at + interval '1 day'")
    db.execute("INSERT INTO ltv.revenue_events SELECT * FROM more")
    assert differences(db) == []


def test_ingestion_keeps_statistics_exact(db: psycopg.Connection, tmp_path) -> None:
    from ltv_db.ingest import ingest_file

    demo_data.write_csv(demo_data.DemoConfig(suppliers=300, seed=5), tmp_path, workers=1)
    for entity in ("plans", "fx_rates", "customers", "subscriptions", "events"):
        result = ingest_file(db, entity, tmp_path / f"{entity}.csv")
        assert result.rejected == 0, (entity, result)
    events = db.execute("SELECT count(*) FROM ltv.revenue_events").fetchone()[0]
    assert events > 1000
    assert db.execute("SELECT sum(event_count) FROM ltv.customer_stats").fetchone()[0] == events
    assert differences(db) == []
    # re-ingesting the same file is all duplicates: nothing changes
    before = db.execute("SELECT * FROM ltv.customer_stats ORDER BY customer_id").fetchall()
    ingest_file(db, "events", tmp_path / "events.csv")
    assert db.execute("SELECT * FROM ltv.customer_stats ORDER BY customer_id").fetchall() == before


def test_truncate_partition_maintenance_and_repair(db: psycopg.Connection, listener: Listener) -> None:
    a, b, *_ = setup_reference(db)
    subscribe(db, a, T0)
    far = datetime(2031, 6, 15, tzinfo=UTC)  # beyond the partitions: lands in the DEFAULT one
    add_events(db, [(a, far, "one_off", "10.00", None), (b, T0, "one_off", "3.00", None)])
    before = db.execute("SELECT * FROM ltv.customer_stats ORDER BY customer_id").fetchall()
    listener.drain(0.2)
    # rehoming rows child-to-child is not a change: no trigger, no notification, same statistics
    assert db.execute("SELECT ltv.create_revenue_partition('2031-06-01')").fetchone()[0] is True
    assert db.execute("SELECT count(*) FROM ltv.revenue_events_default").fetchone()[0] == 0
    assert listener.drain() == []
    assert db.execute("SELECT * FROM ltv.customer_stats ORDER BY customer_id").fetchall() == before
    # loading with the triggers off leaves the table stale; verify says so and refresh repairs it
    db.execute("ALTER TABLE ltv.revenue_events DISABLE TRIGGER live_stats_insert")
    add_events(db, [(b, T0 + timedelta(days=9), "one_off", "8.00", None)])
    db.execute("ALTER TABLE ltv.revenue_events ENABLE TRIGGER live_stats_insert")
    diffs = differences(db)
    assert {(d[0], d[1]) for d in diffs} >= {(b, "x"), (b, "event_count")}
    assert db.execute("SELECT ltv.refresh_customer_stats(%s)", ([b],)).fetchone()[0] == 1
    assert differences(db) == []
    assert listener.drain() == [f'{{"ids":[{b}]}}']  # a repair changes figures too
    db.execute("TRUNCATE ltv.revenue_events")
    assert db.execute("SELECT customer_id, event_count FROM ltv.customer_stats").fetchall() == [(a, 0)]
    assert listener.drain() == ['{"all":true}']
    db.execute("TRUNCATE ltv.subscriptions")
    assert db.execute("SELECT count(*) FROM ltv.customer_stats").fetchone()[0] == 0
    assert differences(db) == []


def test_rolled_back_changes_leave_no_trace(db_url: str, db: psycopg.Connection) -> None:
    a, *_ = setup_reference(db)
    add_events(db, [(a, T0, "one_off", "10.00", None)])
    before = stats(db, a)
    with psycopg.connect(db_url) as conn:
        add_events(conn, [(a, T0 + timedelta(days=5), "one_off", "99.00", None)])
        conn.execute("DELETE FROM ltv.revenue_events WHERE occurred_at = %s", (T0,))
        conn.rollback()
    assert stats(db, a) == before
    assert differences(db) == []


# -- the property: random interleavings never leave a difference ----------------------------------
CUSTOMERS = 5
times = st.builds(lambda d, h: T0 + timedelta(days=d, hours=h),
                  st.integers(min_value=-5, max_value=95), st.sampled_from([0, 0, 6, 23]))
amounts = st.integers(min_value=0, max_value=5000).map(lambda c: f"{c // 100}.{c % 100:02d}")
kinds = st.sampled_from(["one_off", "one_off", "subscription", "refund", "chargeback", "credit"])
new_event = st.tuples(st.integers(0, CUSTOMERS - 1), times, kinds, amounts, st.integers(-1, 4))
operations = st.one_of(
    st.tuples(st.just("insert"), st.lists(new_event, min_size=1, max_size=6)),
    st.tuples(st.just("copy"), st.lists(new_event, min_size=1, max_size=12)),
    st.tuples(st.just("set_amount"), st.integers(0, 50), amounts),
    st.tuples(st.just("shift_time"), st.integers(0, 50), st.integers(-40, 40)),
    st.tuples(st.just("move_customer"), st.integers(0, 50), st.integers(0, CUSTOMERS - 1)),
    st.tuples(st.just("set_kind"), st.integers(0, 50), kinds),
    st.tuples(st.just("delete"), st.integers(0, 50), st.integers(1, 3)),
    st.tuples(st.just("subscribe"), st.integers(0, CUSTOMERS - 1), times, st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 10), st.integers(0, 60)),
    st.tuples(st.just("unsubscribe"), st.integers(0, 10)),
    st.tuples(st.just("move_subscription"), st.integers(0, 10), st.integers(0, CUSTOMERS - 1)),
    st.tuples(st.just("rollback"), st.lists(new_event, min_size=1, max_size=4)),
)


def apply(conn: psycopg.Connection, customers: list[int], op: tuple) -> None:
    events = [r[0] for r in conn.execute(
        "SELECT event_id FROM ltv.revenue_events ORDER BY occurred_at, event_id")]
    subs = [r[0] for r in conn.execute("SELECT subscription_id FROM ltv.subscriptions ORDER BY subscription_id")]

    def resolve(spec: tuple) -> tuple:
        who, at, kind, amount, sub = spec
        sub_id = subs[sub % len(subs)] if subs and sub >= 0 else None
        return customers[who], at, kind, amount, sub_id

    name, *args = op
    if name in ("insert", "copy", "rollback"):
        rows = [resolve(spec) for spec in args[0]]
        if name == "insert":
            add_events(conn, rows)
        elif name == "copy":
            copy_events(conn, rows)
        else:
            with pytest.raises(ZeroDivisionError), conn.transaction():
                add_events(conn, rows)
                conn.execute("UPDATE ltv.subscriptions SET ended_at = started_at")
                raise ZeroDivisionError
    elif name in ("set_amount", "shift_time", "move_customer", "set_kind", "delete") and events:
        target = events[args[0] % len(events)]
        if name == "set_amount":
            conn.execute("UPDATE ltv.revenue_events SET amount_base = %s WHERE event_id = %s", (args[1], target))
        elif name == "shift_time":
            conn.execute("UPDATE ltv.revenue_events SET occurred_at = occurred_at + %s * interval '1 day' "
                         "WHERE event_id = %s", (args[1], target))
        elif name == "move_customer":
            conn.execute("UPDATE ltv.revenue_events SET customer_id = %s WHERE event_id = %s",
                         (customers[args[1]], target))
        elif name == "set_kind":
            conn.execute("UPDATE ltv.revenue_events SET kind = %s WHERE event_id = %s", (args[1], target))
        else:
            conn.execute("DELETE FROM ltv.revenue_events WHERE event_id = ANY(%s)",
                         ([events[(args[0] + k) % len(events)] for k in range(args[1])],))
    elif name == "subscribe":
        who, at, yearly = args
        subscribe(conn, customers[who], at, plan="pro_year_gbp" if yearly else "pro_month_gbp")
    elif name in ("cancel", "unsubscribe", "move_subscription") and subs:
        target = subs[args[0] % len(subs)]
        if name == "cancel":
            conn.execute("UPDATE ltv.subscriptions SET cancelled_at = started_at + %s * interval '1 day', "
                         "ended_at = started_at + %s * interval '1 day' + interval '1 month' "
                         "WHERE subscription_id = %s", (args[1], args[1], target))
        elif name == "unsubscribe":
            conn.execute("DELETE FROM ltv.subscriptions WHERE subscription_id = %s", (target,))
        else:
            conn.execute("UPDATE ltv.subscriptions SET customer_id = %s, "
                         "subscription_ref = 'moved-' || subscription_id WHERE subscription_id = %s",
                         (customers[args[1]], target))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, min_size=1, max_size=12))
def test_random_interleavings_leave_no_difference(db: psycopg.Connection, ops: list[tuple]) -> None:
    if not db.execute("SELECT count(*) FROM ltv.customers").fetchone()[0]:
        setup_reference(db, customers=CUSTOMERS)
    db.execute("TRUNCATE ltv.revenue_events, ltv.subscriptions")  # start empty (the trigger rebuilds)
    customers = [r[0] for r in db.execute("SELECT customer_id FROM ltv.customers ORDER BY 1")]
    for op in ops:
        apply(db, customers, op)
        assert differences(db) == [], op
    live, raw = history_both_ways(db, datetime(2025, 2, 15, tzinfo=UTC))
    assert live == raw
    live, raw = history_both_ways(db, datetime(2030, 1, 1, tzinfo=UTC))
    assert live == raw


# -- concurrency ---------------------------------------------------------------------------------
def test_writers_for_different_customers_do_not_block_each_other(db_url: str, db: psycopg.Connection) -> None:
    a, b, c, *_ = setup_reference(db)
    subscribe(db, a, T0)
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        # first holds its transaction open after writing customer a (events and subscription)
        add_events(first, [(a, T0 + timedelta(days=1), "one_off", "1.00", None)])
        first.execute("UPDATE ltv.subscriptions SET cancelled_at = %s WHERE customer_id = %s",
                      (T0 + timedelta(days=9), a))
        second.execute("SET lock_timeout = '2s'")
        add_events(second, [(b, T0 + timedelta(days=1), "one_off", "2.00", None)])
        subscribe(second, c, T0)
        copy_events(second, [(c, T0 + timedelta(days=3), "subscription", "29.00", None)])
        second.execute("DELETE FROM ltv.revenue_events WHERE customer_id = %s", (b,))
        second.commit()
        # the same customer does wait for the first writer …
        with pytest.raises(psycopg.errors.LockNotAvailable):
            add_events(second, [(a, T0 + timedelta(days=2), "one_off", "3.00", None)])
        second.rollback()
        first.commit()
    assert differences(db) == []


def test_concurrent_writers_lose_nothing(db_url: str, db: psycopg.Connection) -> None:
    ids = setup_reference(db, customers=12)
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '20s'")
                for i in range(25):
                    who = [ids[(seed * 7 + i * k) % len(ids)] for k in (1, 3, 5)]
                    rows = [(cid, T0 + timedelta(days=(seed + i * k) % 40), "one_off", f"{k}.{seed:02d}", None)
                            for k, cid in enumerate(who, start=1)]
                    if i % 2:
                        add_events(conn, rows)
                    else:
                        copy_events(conn, rows)
                    if i % 5 == 4:
                        conn.execute("DELETE FROM ltv.revenue_events WHERE event_id = "
                                     "(SELECT max(event_id) FROM ltv.revenue_events WHERE customer_id = %s)", (who[0],))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert differences(db) == []


def insert_in_thread(db_url: str, rows: list[tuple]) -> tuple[threading.Thread, dict]:
    """add_events(rows) in a connection of its own, in a thread; returns it and its outcome (the
    connection's pid as soon as it is known, an error if one was raised)."""
    outcome: dict = {}
    started = threading.Event()

    def write() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                outcome["pid"] = conn.info.backend_pid
                started.set()
                conn.execute("SET lock_timeout = '60s'")
                add_events(conn, rows)
        except BaseException as exc:  # noqa: BLE001 - asserted by the caller
            outcome["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=write)
    thread.start()
    started.wait(30)
    return thread, outcome


def test_a_purchase_day_two_writers_add_at_once_counts_once(db_url: str, db: psycopg.Connection) -> None:
    """The second writer waits for the first one's row, then merges into what it committed; the
    purchase day strictly between the stored first and last ones is new for the first writer and
    not for the second, which must count the day's purchases with a snapshot taken after the
    wait (the statement's own snapshot sees only its own purchase that day and would count the
    day twice)."""
    a, *_ = setup_reference(db)
    add_events(db, [(a, T0, "one_off", "10.00", None), (a, T0 + timedelta(days=10), "one_off", "10.00", None)])
    day_5 = T0 + timedelta(days=5)
    with psycopg.connect(db_url) as first:
        add_events(first, [(a, day_5, "one_off", "1.00", None)])  # holds a's row until it commits
        second, outcome = insert_in_thread(db_url, [(a, day_5 + timedelta(hours=2), "one_off", "2.00", None)])
        wait_for_lock_wait(db, outcome["pid"])
        first.commit()
    second.join(60)
    assert "error" not in outcome, outcome.get("error")
    row = stats(db, a)
    assert (row["x"], row["event_count"], row["one_off_spend"]) == (3, 4, Decimal("23.00"))
    assert differences(db) == []


def test_a_payment_that_waited_for_a_deleted_row_lands_in_a_new_one(db_url: str, db: psycopg.Connection) -> None:
    """A writer deletes a customer's every event, which deletes the customer's statistics row; a
    payment for that customer, waiting for the row meanwhile, finds it gone when the delete
    commits — and must not be lost: the row is created again and the payment merged into it."""
    a, *_ = setup_reference(db)
    add_events(db, [(a, T0, "one_off", "10.00", None)])
    with psycopg.connect(db_url) as first:
        first.execute("DELETE FROM ltv.revenue_events WHERE customer_id = %s", (a,))
        second, outcome = insert_in_thread(db_url, [(a, T0 + timedelta(days=1), "one_off", "7.00", None)])
        wait_for_lock_wait(db, outcome["pid"])
        first.commit()
    second.join(60)
    assert "error" not in outcome, outcome.get("error")
    row = stats(db, a)
    assert (row["event_count"], row["x"], row["one_off_spend"]) == (1, 1, Decimal("7.00"))
    assert differences(db) == []


# -- notifications --------------------------------------------------------------------------------
def test_notifications_after_commit_only(db_url: str, db: psycopg.Connection, listener: Listener) -> None:
    ids = setup_reference(db, customers=6)
    listener.drain(0.2)
    with psycopg.connect(db_url) as conn:
        add_events(conn, [(ids[3], T0, "one_off", "1.00", None), (ids[1], T0, "refund", "1.00", None),
                          (ids[3], T0, "one_off", "2.00", None)])
        assert listener.drain() == []  # not before commit
        conn.commit()
        payloads = listener.drain()
        assert payloads == [json.dumps({"ids": sorted([ids[1], ids[3]])}, separators=(",", ":"))]
        # a rolled-back statement sends nothing
        add_events(conn, [(ids[0], T0, "one_off", "1.00", None)])
        conn.rollback()
        assert listener.drain() == []
        # each statement: subscriptions, updates, deletes
        subscribe(conn, ids[2], T0)
        conn.execute("UPDATE ltv.revenue_events SET amount_base = 3 WHERE customer_id = %s", (ids[1],))
        conn.execute("DELETE FROM ltv.revenue_events WHERE customer_id = %s", (ids[3],))
        conn.commit()
        assert listener.ids(listener.drain()) == {ids[1], ids[2], ids[3]}
        # customers, settings and plans
        conn.execute("UPDATE ltv.customers SET vendor_category = 'venue' WHERE customer_id = %s", (ids[4],))
        conn.execute("UPDATE ltv.customers SET region = 'North'")  # no figure depends on it
        conn.commit()
        assert listener.drain() == [f'{{"ids":[{ids[4]}]}}']
        conn.execute("UPDATE ltv.settings SET margin_one_off = 0.5")
        conn.commit()
        assert listener.drain() == ['{"all":true}']


def test_notification_payloads_stay_under_8000_bytes(db: psycopg.Connection, listener: Listener) -> None:
    db.execute("SELECT setval(pg_get_serial_sequence('ltv.customers', 'customer_id'), 1000000000000)")
    ids = setup_reference(db, customers=6000)
    listener.drain(0.5)
    add_events(db, [(cid, T0, "one_off", "1.00", None) for cid in ids[:4000]])
    payloads = listener.drain(1.0)
    assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
    assert listener.ids(payloads) == set(ids[:4000])
    add_events(db, [(cid, T0, "one_off", "1.00", None) for cid in ids])  # > 5,000 customers
    assert listener.drain(1.0) == ['{"all":true}']
    assert db.execute("SELECT ltv.notify_customers_changed(NULL)").fetchone()[0] == 1
    assert listener.drain() == ['{"all":true}']


def test_refit_that_activates_a_fit_notifies_everyone(db: psycopg.Connection, listener: Listener) -> None:
    db.execute("INSERT INTO ltv.plans VALUES ('pro_month_gbp', 'pro', 'month', 2900, 'GBP')")
    db.execute(
        """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
           SELECT 'r-' || g, 'photographer', 'GB', 'organic', '2023-01-01'::timestamptz + g * interval '1 hour'
           FROM generate_series(1, 60) g""")
    db.execute(
        """INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at, cancelled_at, ended_at)
           SELECT customer_id, 's-' || customer_id, 'pro_month_gbp', signed_up_at, ends, ends
           FROM ltv.customers
           CROSS JOIN LATERAL (SELECT CASE WHEN customer_id % 3 > 0
                                           THEN signed_up_at + make_interval(months => 1 + (customer_id % 9)::int)
                                      END AS ends) e""")
    listener.drain(0.3)
    fits = db.execute("SELECT activated FROM ltv.refit_models('2026-01-01', 10)").fetchall()
    assert any(f[0] for f in fits)
    assert listener.drain() == ['{"all":true}']


# -- always-current LTV ---------------------------------------------------------------------------
def test_customer_ltv_reflects_a_payment_committed_a_moment_ago(db_url: str, db: psycopg.Connection) -> None:
    a, *_ = setup_reference(db)
    before = db.execute("SELECT net_revenue FROM ltv.customer_ltv(%s)", (a,)).fetchone()[0]
    with psycopg.connect(db_url) as writer:
        add_events(writer, [(a, datetime.now(UTC) - timedelta(seconds=1), "one_off", "42.50", None)])
    after = db.execute("SELECT net_revenue FROM ltv.customer_ltv(%s)", (a,)).fetchone()[0]
    assert after == before + Decimal("42.50")
    # and inside the writing transaction itself
    with db.transaction():
        add_events(db, [(a, datetime.now(UTC) - timedelta(seconds=1), "refund", "2.50", None)])
        assert db.execute("SELECT net_revenue FROM ltv.customer_ltv(%s)", (a,)).fetchone()[0] == after - Decimal("2.50")


def test_live_and_raw_history_agree(db: psycopg.Connection) -> None:
    ids = setup_reference(db, customers=8)
    sub = subscribe(db, ids[0], T0 - timedelta(days=10), cancelled=T0 + timedelta(days=50),
                    ended=T0 + timedelta(days=70))
    subscribe(db, ids[1], T0, plan="pro_year_gbp")
    add_events(db, [(ids[0], T0 + timedelta(days=d), "subscription", "29.00", sub) for d in (-10, 21, 52)]
               + [(cid, T0 + timedelta(days=i * 9 % 50, hours=i), "one_off", f"{i}.50", None)
                  for i, cid in enumerate(ids * 3)]
               + [(ids[2], datetime.now(UTC) + timedelta(days=3), "one_off", "9.00", None)])  # dated in the future
    for cutoff in ("now", T0 + timedelta(days=30), T0 - timedelta(days=5)):
        live, raw = history_both_ways(db, cutoff)
        assert live == raw, cutoff
    # the public function routes by cutoff; its rows are the same either way
    with db.transaction():
        assert db.execute("SELECT * FROM ltv.customer_history(now()) ORDER BY 1").fetchall() == \
            db.execute("SELECT * FROM ltv.customer_history_via(now(), NULL, false) ORDER BY 1").fetchall()
    assert db.execute("SELECT * FROM ltv.customer_history(%s, %s)", (T0, ids[0])).fetchall() == \
        db.execute("SELECT * FROM ltv.customer_history_via(%s, %s, false)", (T0, ids[0])).fetchall()


def test_single_customer_lookup_uses_indexes_only(db: psycopg.Connection) -> None:
    ids = setup_reference(db, customers=3000)
    add_events(db, [(cid, T0 + timedelta(days=cid % 60), "one_off", "5.00", None) for cid in ids])
    db.execute("VACUUM ANALYZE ltv.customer_stats, ltv.customers, ltv.revenue_events")
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN SELECT * FROM ltv.customer_stats WHERE customer_id = %s",
                                               (ids[100],)))
    assert "Index Scan using customer_stats_pkey" in plan, plan
    # every statement customer_ltv runs, nested ones included, as auto_explain reports them
    plans: list[str] = []
    db.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    db.execute("LOAD 'auto_explain'")
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_level = notice"):
        db.execute(f"SET auto_explain.{setting}")
    db.execute("SELECT * FROM ltv.customer_ltv(%s)", (ids[100],)).fetchall()
    db.execute("SET auto_explain.log_min_duration = -1")
    text = "\n".join(plans)
    assert "customer_stats_pkey" in text, text
    assert not re.search(r"Seq Scan on (customer_stats|revenue_events|customers)\b", text), text


# -- migration --------------------------------------------------------------------------------------
def test_upgrade_backfills_and_downgrade_restores_0001(empty_db_url: str) -> None:
    upgrade_head(empty_db_url, "0001_foundation")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        def definitions() -> dict[str, str]:
            return dict(conn.execute(
                """SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
                   WHERE p.pronamespace = 'ltv'::regnamespace
                     AND p.proname IN ('customer_history', 'score_customers', 'customer_ltv', 'refit_models')"""))

        at_0001 = definitions()
        a, b, *_ = setup_reference(conn)
        add_events(conn, [(a, T0, "one_off", "10.00", None), (b, T0, "subscription", "29.00", None)])
        upgrade_head(empty_db_url, "0002_live_stats")
        assert current_revision(empty_db_url) == "0002_live_stats"
        assert conn.execute("SELECT count(*) FROM ltv.customer_stats").fetchone()[0] == 2
        assert differences(conn) == []
        downgrade_to(empty_db_url, "0001_foundation")
        assert conn.execute("SELECT to_regclass('ltv.customer_stats')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'live_stats%%' "
                            "OR tgname LIKE 'notify_changed%%'").fetchone()[0] == 0
        assert definitions() == at_0001
