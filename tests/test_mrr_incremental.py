"""ltv.mrr_movements maintained incrementally (ltv.refresh_mrr_movements, issue 4).

The property: after any committed changes and any move of the clock, a refresh leaves the table
equal — row for row, every column — to ltv.mrr_movement_rows recomputed for everyone as of the
refresh, while recomputing only the customers that can have changed. (tests/test_views.py checks
mrr_movement_rows itself against an independent month-end MRR series.)
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ltv_db import demo_data


def refresh(conn: psycopg.Connection, as_of: datetime | None = None) -> tuple[int | None, int, int]:
    if as_of is None:
        return conn.execute("SELECT * FROM ltv.refresh_mrr_movements()").fetchone()
    return conn.execute("SELECT * FROM ltv.refresh_mrr_movements(%s)", (as_of,)).fetchone()


def as_of(conn: psycopg.Connection) -> datetime:
    return conn.execute(
        "SELECT last_refreshed_at FROM ltv.view_refreshes WHERE view_name = 'mrr_movements'"
    ).fetchone()[0]


def mismatches(conn: psycopg.Connection) -> list[tuple]:
    """Rows in which the view differs from its derivation from scratch (ltv.verify_mrr_movements)."""
    return conn.execute("SELECT * FROM ltv.verify_mrr_movements()").fetchall()


@pytest.fixture
def market(db: psycopg.Connection) -> psycopg.Connection:
    demo_data.load(db, demo_data.DemoConfig(suppliers=1500, seed=11))
    db.execute("ANALYZE")
    recomputed, deleted, inserted = refresh(db)
    assert recomputed > 1000 and deleted == 0 and inserted > 10_000  # the load queued its customers
    assert mismatches(db) == []
    return db


def test_the_check_reports_a_tampered_row_and_only_it(market: psycopg.Connection) -> None:
    db = market
    with pytest.raises(psycopg.errors.RaiseException), db.transaction():
        key = db.execute("""UPDATE ltv.mrr_movement_store SET closing_mrr = closing_mrr + 1
                            WHERE (customer_id, month) = (SELECT customer_id, month FROM ltv.mrr_movement_store
                                                          ORDER BY customer_id, month LIMIT 1)
                            RETURNING customer_id, month""").fetchone()
        found = mismatches(db)
        assert [row[:2] for row in found] == [key] and found[0][2] != found[0][3]
        db.execute("DELETE FROM ltv.mrr_movement_store WHERE (customer_id, month) = (%s, %s)", key)
        found = mismatches(db)
        assert [row[:2] for row in found] == [key] and found[0][2] is None and found[0][3] is not None
        db.execute("DO $$ BEGIN RAISE EXCEPTION 'undo'; END $$")
    assert mismatches(db) == []


def test_changes_recompute_only_their_customers_and_leave_the_view_exact(market: psycopg.Connection) -> None:
    db = market
    assert refresh(db)[0] < 20  # nothing queued: only customers with a date since the last refresh
    customers = [r[0] for r in db.execute(
        """SELECT DISTINCT customer_id FROM ltv.subscriptions WHERE cancelled_at IS NULL
           ORDER BY customer_id LIMIT 12""").fetchall()]
    with db.transaction():
        # cancel two subscriptions last month, re-price two charges, delete one, refund and buy
        db.execute("UPDATE ltv.subscriptions SET cancelled_at = '2026-10-10', ended_at = '2026-10-10' "
                   "WHERE customer_id = ANY (%s)", (customers[:2],))
        db.execute(
            """UPDATE ltv.revenue_events SET amount_base = amount_base * 2, amount_minor = amount_minor * 2
               WHERE event_id IN (SELECT max(event_id) FROM ltv.revenue_events
                                  WHERE customer_id = ANY (%s) AND kind = 'subscription' GROUP BY customer_id)""",
            (customers[2:4],))
        db.execute(
            """DELETE FROM ltv.revenue_events WHERE event_id IN (
                   SELECT min(event_id) FROM ltv.revenue_events WHERE customer_id = %s AND kind = 'subscription')""",
            (customers[4],))
        db.execute(
            """INSERT INTO ltv.revenue_events (customer_id, occurred_at, kind, amount_minor, currency, fx_rate,
                                               amount_base, source, external_id, subscription_id)
               SELECT c, '2026-09-03 10:00+00', k, 5000, 'GBP', 1, 50, 'test', 'mrr-' || c || '-' || k, NULL
               FROM unnest(%s::bigint[]) c CROSS JOIN (VALUES ('one_off'), ('refund')) AS k(k)""",
            (customers[5:7],))
        # a customer moved to another category: every one of its rows carries the segment
        db.execute("UPDATE ltv.customers SET vendor_category = CASE vendor_category WHEN 'florist' THEN 'venue' "
                   "ELSE 'florist' END WHERE customer_id = %s", (customers[7],))
        # a subscription that starts later (a scheduled upgrade): nothing until the clock passes it
        db.execute(
            """INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at)
               SELECT customer_id, 'upgrade-' || customer_id, plan_code, now() + interval '1 day'
               FROM ltv.subscriptions WHERE customer_id = %s LIMIT 1""", (customers[8],))
    queued = {r[0] for r in db.execute("SELECT customer_id FROM ltv.mrr_stale_customers").fetchall()}
    assert queued == set(customers[:9])
    recomputed, deleted, inserted = refresh(db)
    assert 9 <= recomputed < 40  # the nine, and the few with a date since the last refresh
    assert deleted > 0 and inserted > 0
    assert db.execute("SELECT count(*) FROM ltv.mrr_stale_customers").fetchone()[0] == 0
    assert mismatches(db) == []
    assert db.execute("SELECT count(*) FROM ltv.mrr_movements WHERE month = '2026-11-01' "
                      "AND customer_id = ANY (%s) AND closing_mrr > 0", (customers[:2],)).fetchone()[0] == 0


def test_the_clock_alone_moves_rows_and_a_new_month_adds_one(market: psycopg.Connection) -> None:
    """No data change between the refreshes: a cancellation the clock passes and a new month."""
    db = market
    cancelled = db.execute(
        """UPDATE ltv.subscriptions SET cancelled_at = '2026-11-20 12:00+00'
           WHERE subscription_id = (SELECT min(subscription_id) FROM ltv.subscriptions
                                    WHERE cancelled_at IS NULL AND started_at < '2026-06-01')
           RETURNING customer_id"""
    ).fetchone()[0]
    t0, t1, t2 = (datetime(2026, 10, 25, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC),
                  datetime(2026, 11, 25, tzinfo=UTC))
    refresh(db, t0)
    assert mismatches(db) == []
    paying_at_t0 = db.execute("SELECT count(*) FROM ltv.mrr_movements WHERE month = '2026-10-01' "
                              "AND closing_mrr > 0").fetchone()[0]
    # a new month: every customer paying at October's end gets a November row, and only those
    # with a change or a date since are recomputed
    recomputed, _, inserted = refresh(db, t1)
    assert recomputed < paying_at_t0 / 4 and inserted >= paying_at_t0
    assert mismatches(db) == []
    # two months at once, and back to the month between
    refresh(db, datetime(2027, 1, 5, tzinfo=UTC))
    assert mismatches(db) == []
    refresh(db, t1)
    assert mismatches(db) == []
    recomputed, deleted, inserted = refresh(db, t2)  # the clock passes the cancellation
    assert recomputed < paying_at_t0 / 4
    assert mismatches(db) == []
    assert db.execute("SELECT closing_mrr, movement FROM ltv.mrr_movements WHERE customer_id = %s "
                      "AND month = '2026-11-01'", (cancelled,)).fetchone() == (0, "churn")
    refresh(db, t0)  # back in time works the same way
    assert mismatches(db) == []
    assert db.execute("SELECT max(month) FROM ltv.mrr_movements").fetchone()[0].isoformat() == "2026-10-01"


def test_a_rolled_back_change_queues_nothing_and_a_plan_change_queues_everyone(market: psycopg.Connection) -> None:
    db = market
    refresh(db)
    with pytest.raises(psycopg.errors.RaiseException), db.transaction():
        db.execute("DELETE FROM ltv.revenue_events WHERE customer_id = (SELECT min(customer_id) FROM ltv.customers)")
        db.execute("DO $$ BEGIN RAISE EXCEPTION 'abort'; END $$")
    assert db.execute("SELECT count(*) FROM ltv.mrr_stale_customers").fetchone()[0] == 0
    db.execute("UPDATE ltv.plans SET billing_interval = 'month' WHERE billing_interval = 'year' AND "
               "plan_code = (SELECT min(plan_code) FROM ltv.plans WHERE billing_interval = 'year')")
    assert db.execute("SELECT count(*) FROM ltv.mrr_stale_customers WHERE customer_id IS NULL").fetchone()[0] == 1
    recomputed, deleted, inserted = refresh(db)
    assert recomputed is None and deleted > 0 and inserted > 0  # everyone: annual charges are now monthly
    assert mismatches(db) == []


def test_a_change_committed_during_a_refresh_waits_for_the_next_one(market: psycopg.Connection,
                                                                    db_url: str) -> None:
    db = market
    refresh(db)
    customer = db.execute("SELECT min(customer_id) FROM ltv.subscriptions WHERE cancelled_at IS NULL").fetchone()[0]
    with psycopg.connect(db_url) as writer, psycopg.connect(db_url) as refresher:
        writer.execute("UPDATE ltv.subscriptions SET cancelled_at = '2026-10-01', ended_at = '2026-10-01' "
                       "WHERE customer_id = %s", (customer,))
        # the refresh runs while the change is uncommitted: it neither sees nor waits for it
        result: dict[str, object] = {}
        thread = threading.Thread(target=lambda: result.update(rows=refresh(refresher)))
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive()
        refresher.commit()
        writer.commit()
    assert db.execute("SELECT array_agg(customer_id) FROM ltv.mrr_stale_customers").fetchone()[0] == [customer]
    assert {row[0] for row in mismatches(db)} == {customer}  # that customer stale until the next refresh ...
    refresh(db)
    assert mismatches(db) == []  # ... which catches up


def test_readers_see_the_view_but_not_its_table(market: psycopg.Connection, db_url: str) -> None:
    refresh(market)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET ROLE ltv_reader")
        assert conn.execute("SELECT count(*) FROM ltv.mrr_movements").fetchone()[0] > 10_000
        for table in ("mrr_movement_store", "mrr_stale_customers"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM ltv.{table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ltv.refresh_mrr_movements()")


def test_refresh_refuses_a_moment_that_is_not_one(market: psycopg.Connection) -> None:
    for bad in ("infinity", None):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="finite moment"):
            market.execute("SELECT * FROM ltv.refresh_mrr_movements(%s::timestamptz)", (bad,))
    assert timedelta(0) <= datetime.now(UTC) - as_of(market) < timedelta(days=1)
