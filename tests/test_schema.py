"""Constraints make bad states impossible; partitions keep every event."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest


def _customer(db: psycopg.Connection, ref: str = "sup-1") -> int:
    return db.execute(
        """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
           VALUES (%s, 'photographer', 'GB', 'organic', '2024-01-05T10:00:00Z') RETURNING customer_id""",
        (ref,),
    ).fetchone()[0]


def _event(db: psycopg.Connection, customer_id: int, occurred_at: str, **overrides: object) -> None:
    row = {
        "kind": "subscription", "amount_minor": 2900, "currency": "GBP", "fx_rate": 1,
        "amount_base": 29, "source": "stripe", "external_id": f"ch_{occurred_at}",
    } | overrides
    db.execute(
        """INSERT INTO ltv.revenue_events (customer_id, occurred_at, kind, amount_minor, currency,
                                           fx_rate, amount_base, source, external_id)
           VALUES (%(customer_id)s, %(occurred_at)s, %(kind)s, %(amount_minor)s, %(currency)s,
                   %(fx_rate)s, %(amount_base)s, %(source)s, %(external_id)s)""",
        {"customer_id": customer_id, "occurred_at": occurred_at, **row},
    )


@pytest.mark.parametrize(
    ("overrides", "constraint_word"),
    [
        ({"amount_minor": -1}, "amount_minor"),
        ({"kind": "gift"}, "kind"),
        ({"source": "Stripe; DROP TABLE x"}, "source"),
        ({"fx_rate": 0}, "fx_rate"),
    ],
)
def test_revenue_event_constraints(db: psycopg.Connection, overrides: dict, constraint_word: str) -> None:
    cid = _customer(db)
    with pytest.raises(psycopg.errors.CheckViolation) as info:
        _event(db, cid, "2026-11-03T10:00:00Z", **overrides)
    assert constraint_word in str(info.value)


def test_customer_and_subscription_constraints(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
               VALUES ('x', 'photographer', 'gbr', 'organic', now())"""
        )
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(
            """INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
               VALUES ('x', 'astronaut', 'GB', 'organic', now())"""
        )
    cid = _customer(db)
    db.execute("INSERT INTO ltv.plans VALUES ('pro_month_gbp', 'pro', 'month', 2900, 'GBP')")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            """INSERT INTO ltv.subscriptions (customer_id, subscription_ref, plan_code, started_at, cancelled_at)
               VALUES (%s, 'sub_1', 'pro_month_gbp', '2024-02-01Z', '2024-01-01Z')""",
            (cid,),
        )
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO ltv.plans VALUES ('weekly', 'pro', 'week', 100, 'GBP')")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute("INSERT INTO ltv.plans VALUES ('pro_month_xxx', 'pro', 'month', 100, 'XXX')")
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE ltv.settings SET annual_discount_rate = 0")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO ltv.settings DEFAULT VALUES")


def test_inactive_or_unconverged_fit_cannot_be_active(db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(
            """INSERT INTO ltv.model_fits (model, segment, data_cutoff, n_customers, converged, is_active)
               VALUES ('sbg', 'all', now(), 10, false, true)"""
        )
    insert = """INSERT INTO ltv.model_fits (model, segment, data_cutoff, n_customers, converged, is_active)
                VALUES ('sbg', 'all', now(), 10, true, true)"""
    db.execute(insert)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(insert)


def test_future_partitions_exist_ahead(db: psycopg.Connection) -> None:
    ahead = db.execute("SELECT partition_months_ahead FROM ltv.settings").fetchone()[0]
    names = {
        r[0]
        for r in db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'ltv.revenue_events'::regclass"
        )
    }
    now = datetime.now(UTC)
    for k in range(ahead + 1):
        year, month = divmod(now.month - 1 + k, 12)
        assert f"revenue_events_p{now.year + year:04d}_{month + 1:02d}" in names
    assert "revenue_events_default" in names


def test_out_of_range_events_are_kept_and_rehomed(db: psycopg.Connection) -> None:
    cid = _customer(db)
    _event(db, cid, "1999-12-31T23:30:00Z", external_id="old")
    _event(db, cid, "2040-02-10T00:00:00Z", external_id="future")
    _event(db, cid, "2026-11-15T00:00:00Z", external_id="now")
    in_default = db.execute("SELECT count(*) FROM ltv.revenue_events_default").fetchone()[0]
    assert in_default == 2
    created = db.execute("SELECT ltv.maintain_revenue_partitions()").fetchone()[0]
    assert created == 2
    assert db.execute("SELECT count(*) FROM ltv.revenue_events_default").fetchone()[0] == 0
    rows = db.execute(
        "SELECT external_id, tableoid::regclass::text FROM ltv.revenue_events ORDER BY occurred_at"
    ).fetchall()
    assert rows == [
        ("old", "ltv.revenue_events_p1999_12"),
        ("now", "ltv.revenue_events_p2026_11"),
        ("future", "ltv.revenue_events_p2040_02"),
    ]
    # running maintenance again changes nothing
    assert db.execute("SELECT ltv.maintain_revenue_partitions()").fetchone()[0] == 0


def test_partition_bounds_are_utc_whatever_the_session_timezone(db: psycopg.Connection) -> None:
    db.execute("SET timezone = 'Pacific/Auckland'")
    db.execute("SELECT ltv.create_revenue_partition('2031-05-01')")
    bound = db.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE relname = 'revenue_events_p2031_05'"
    ).fetchone()[0]
    db.execute("SET timezone = 'UTC'")
    assert "2031-05-01 12:00:00+12" in bound  # 2031-05-01 00:00 UTC shown in NZST (UTC+12)


def test_date_bounded_query_prunes_partitions(db: psycopg.Connection) -> None:
    plan = "\n".join(
        r[0]
        for r in db.execute(
            "EXPLAIN SELECT sum(amount_base) FROM ltv.revenue_events "
            "WHERE occurred_at >= '2026-12-01Z' AND occurred_at < '2027-01-01Z'"
        )
    )
    assert "revenue_events_p2026_12" in plan
    assert "revenue_events_p2027_01" not in plan
    assert "revenue_events_default" not in plan
