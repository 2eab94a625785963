"""Ingestion (ltv_db.ingest, `ltv-db ingest`, `ltv-db rejects`) against a real PostgreSQL 15.

Reference data (plans, FX rates, customers, subscriptions) is set up through the ingestion API
itself, so every test also exercises the entity it needs.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from ltv_db import ingest
from ltv_db.cli import IngestEntity
from ltv_db.ingest import IngestResult, ingest_file, ingest_stream, record_event
from tests.conftest import run_cli, wait_for_lock_wait

EVENT_HEADER = "source,external_id,customer_ref,occurred_at,kind,amount,currency,subscription_ref"


# -- helpers -----------------------------------------------------------------------------------------
def write(tmp_path: Path, name: str, header: str, rows: list[str], newline: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes((newline.join([header, *rows]) + newline).encode())
    return path


def load(db: psycopg.Connection, tmp_path: Path, entity: str, header: str, rows: list[str]) -> IngestResult:
    return ingest_file(db, entity, write(tmp_path, f"{entity}-{len(rows)}-{random.random()}.csv", header, rows))


def setup_marketplace(db: psycopg.Connection, tmp_path: Path) -> None:
    """Plans, FX rates, three customers and their subscriptions — all through ingestion."""
    results = [
        load(db, tmp_path, "plans", "plan_code,tier,billing_interval,list_price,currency", [
            "basic_m,basic,month,29.00,GBP",
            "pro_y,pro,year,290.00,GBP",
        ]),
        load(db, tmp_path, "fx_rates", "currency,day,rate", [
            "EUR,2024-03-05,0.85",
            "EUR,2024-03-06,0.86",
            "USD,2024-03-01,0.80",
            "AUD,2024-02-20,0.50",
            "JPY,2024-03-05,0.0052",
            "KWD,2024-03-05,2.5",
        ]),
        load(db, tmp_path, "customers", "customer_ref,vendor_category,country,acquisition_channel,signed_up_at", [
            "c1,photographer,GB,organic,2023-01-01T00:00:00Z",
            "c2,venue,FR,paid_search,2023-02-01T00:00:00+01:00",
            "c3,florist,US,referral,2023-03-01T00:00:00Z",
        ]),
        load(db, tmp_path, "subscriptions",
             "subscription_ref,customer_ref,plan_code,billing_interval,started_at,cancelled_at", [
                 "s1,c1,basic_m,month,2023-01-01T00:00:00Z,",
                 "s2,c2,pro_y,year,2023-02-01T00:00:00Z,",
             ]),
    ]
    assert [r.rejected for r in results] == [0, 0, 0, 0], [r.rejects_by_reason for r in results]


def rejects(db: psycopg.Connection, batch_id: int) -> list[tuple[int, str, str]]:
    return db.execute(
        "SELECT line_no, raw_line, reason FROM ltv.ingest_rejects WHERE batch_id = %s ORDER BY line_no",
        (batch_id,),
    ).fetchall()


def count(db: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> int:
    return db.execute(query, params).fetchone()[0]


def event(ext: str, customer: str = "c1", at: str = "2024-03-05T10:00:00Z", kind: str = "one_off",
          amount: str = "10.00", currency: str = "GBP", sub: str = "", source: str = "stripe") -> str:
    return f"{source},{ext},{customer},{at},{kind},{amount},{currency},{sub}"


# -- good files, bad rows ---------------------------------------------------------------------------
def test_good_events_file_loads_with_batch_bookkeeping(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    path = write(tmp_path, "events.csv", EVENT_HEADER, [
        event("e1", kind="subscription", amount="29.00", sub="s1"),
        event("e2", customer="c2", kind="subscription", amount="290.00", sub="s2"),
        event("e3", customer="c3", kind="refund", amount="5.50"),
    ])
    result = ingest_file(db, "events", path)
    assert (result.rows_read, result.loaded, result.duplicates, result.rejected) == (3, 3, 0, 0)
    assert result.exit_code == 0
    rows = db.execute(
        """SELECT e.external_id, c.customer_ref, e.kind, e.amount_minor, e.currency, e.fx_rate, e.amount_base,
                  s.subscription_ref, e.batch_id
           FROM ltv.revenue_events e JOIN ltv.customers c USING (customer_id)
           LEFT JOIN ltv.subscriptions s USING (customer_id, subscription_id) ORDER BY 1"""
    ).fetchall()
    assert rows == [
        ("e1", "c1", "subscription", 2900, "GBP", Decimal("1.0000000000"), Decimal("29.0000"), "s1", result.batch_id),
        ("e2", "c2", "subscription", 29000, "GBP", Decimal("1.0000000000"), Decimal("290.0000"), "s2", result.batch_id),
        ("e3", "c3", "refund", 550, "GBP", Decimal("1.0000000000"), Decimal("5.5000"), None, result.batch_id),
    ]
    # the ledger points at each event
    assert count(db, """SELECT count(*) FROM ltv.revenue_event_keys k JOIN ltv.revenue_events e
                        USING (customer_id, occurred_at, event_id)""") == 3
    batch = db.execute(
        "SELECT entity, file_name, sha256, rows_read, loaded, updated, duplicates, rejected, finished_at IS NOT NULL "
        "FROM ltv.ingest_batches WHERE batch_id = %s", (result.batch_id,)
    ).fetchone()
    assert batch == ("events", str(path), hashlib.sha256(path.read_bytes()).hexdigest(), 3, 3, 0, 0, 0, True)


BAD_ROWS = [
    # (line text, reason prefix)
    (event("b1", at="2024-02-30T10:00:00Z"), "occurred_at is not a real date and time"),
    (event("b2", amount="12.x0"), "amount is not a decimal number"),
    (event("b3", amount="-5.00"), "amount is negative"),
    (event("b4", amount="1.234"), "amount has more decimal places than the currency allows"),
    (event("b5", amount="1.5", currency="JPY"), "amount has more decimal places than the currency allows"),
    (event("b6", currency="XXX"), "unknown currency"),
    (event("b7", kind="gift"), "unknown kind"),
    (event("b8", customer="nobody"), "unknown customer"),
    (event("b9", kind="subscription", sub="s404"), "unknown subscription"),
    (event("b10", kind="subscription", sub="s2"), "subscription of another customer"),
    ("stripe,b11,c1,2024-03-05T10:00:00Z,one_off,10.00,GBP", "wrong column count"),
    (event("good1"), "duplicate in file"),  # good1 appears first among the good rows below
    (event("b13", at="2024-03-05T10:00:00"), "occurred_at has no UTC offset"),
    (event("b14", source="Stripe!"), "invalid source"),
    ('stripe,b15,c1,"2024-03-05T10:00:00Z,one_off,10.00,GBP,', "malformed CSV quoting"),
    ("", "empty line"),
]


def test_every_bad_row_kind_is_quarantined_while_good_rows_commit(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    good = [event("good1"), event("good2", amount="1.230"), event("good3", amount="1500", currency="JPY")]
    lines = [*good, *(row for row, _ in BAD_ROWS)]
    body = ("\n".join([EVENT_HEADER, *lines]) + "\n").encode()
    invalid_utf8 = b"stripe,b16,c1,2024-03-05T10:00:00Z,one_off,10.00,GBP,caf\xe9\n"
    control = b"stripe,b17,c1,2024-03-05T10:00:00Z,one_off,10.00,GBP,\x01x\n"
    path = tmp_path / "mixed.csv"
    path.write_bytes(body + invalid_utf8 + control + b"\n\n\n")  # trailing empty lines are ignored

    result = ingest_file(db, "events", path)

    n_bad = len(BAD_ROWS) + 2
    assert (result.rows_read, result.loaded, result.rejected) == (len(good) + n_bad, len(good), n_bad)
    assert result.exit_code == 3
    got = rejects(db, result.batch_id)
    first_bad_line = 2 + len(good)  # line 1 is the header
    expected = [(first_bad_line + i, row, reason) for i, (row, reason) in enumerate(BAD_ROWS)]
    expected.append((first_bad_line + len(BAD_ROWS), "stripe,b16,c1,2024-03-05T10:00:00Z,one_off,10.00,GBP,caf\\xe9",
                     "invalid UTF-8 / control bytes"))
    expected.append((first_bad_line + len(BAD_ROWS) + 1, "stripe,b17,c1,2024-03-05T10:00:00Z,one_off,10.00,GBP,\\x01x",
                     "invalid UTF-8 / control bytes"))
    assert [(line, raw) for line, raw, _ in got] == [(line, raw) for line, raw, _ in expected]
    for (line, _, reason), (_, _, prefix) in zip(got, expected, strict=True):
        assert reason.startswith(prefix), (line, reason, prefix)
    # details name the offending value (or the first line for a repeat)
    reasons = {line: reason for line, _, reason in got}
    assert reasons[first_bad_line + 11] == "duplicate in file: same source and external_id as line 2"
    assert "'nobody'" in reasons[first_bad_line + 7]
    assert reasons[first_bad_line + 10] == "wrong column count: 7 fields, the header has 8"
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == len(good)
    assert db.execute("SELECT external_id, amount_minor, currency FROM ltv.revenue_events ORDER BY 1").fetchall() == [
        ("good1", 1000, "GBP"), ("good2", 123, "GBP"), ("good3", 1500, "JPY"),
    ]
    assert result.rejects_by_reason["invalid UTF-8 / control bytes"] == 2
    assert result.rejects_by_reason["amount has more decimal places than the currency allows"] == 2


def test_reingesting_the_same_file_adds_nothing(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    path = write(tmp_path, "events.csv", EVENT_HEADER, [
        event("e1"), event("e2", customer="c2"), event("e1"), event("bad", customer="nobody"),
    ])
    first = ingest_file(db, "events", path)
    assert (first.loaded, first.duplicates, first.rejected) == (2, 0, 2)
    before = db.execute("SELECT count(*), sum(amount_minor) FROM ltv.revenue_events").fetchone()
    second = ingest_file(db, "events", path)
    assert (second.rows_read, second.loaded, second.duplicates, second.rejected) == (4, 0, 2, 2)
    assert second.rejects_by_reason == first.rejects_by_reason
    assert second.exit_code == 4  # rows rejected and nothing loaded
    assert db.execute("SELECT count(*), sum(amount_minor) FROM ltv.revenue_events").fetchone() == before
    assert [r[2].split(":")[0] for r in rejects(db, second.batch_id)] == ["duplicate in file", "unknown customer"]
    assert count(db, "SELECT count(*) FROM ltv.revenue_event_keys") == 2


def test_overlapping_loaders_never_both_insert_an_event(db: psycopg.Connection, db_url: str,
                                                        tmp_path: Path) -> None:
    """Two loaders whose files share 100 keys (listed in opposite orders): the second one's
    claims wait for the first one's commit and then find the keys taken — every shared line is a
    duplicate, every key is loaded once."""
    setup_marketplace(db, tmp_path)
    load(db, tmp_path, "events", EVENT_HEADER, [event("warm-up")])  # the month's partition exists
    first_file = write(tmp_path, "first.csv", EVENT_HEADER, [event(f"k{i:03d}") for i in range(200)])
    second_file = write(tmp_path, "second.csv", EVENT_HEADER, [event(f"k{i:03d}") for i in reversed(range(100, 300))])
    outcome: dict[str, object] = {}

    def second_loader() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute("SET lock_timeout = '60s'")
                outcome["result"] = ingest_file(conn, "events", second_file)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    with psycopg.connect(db_url) as conn:
        with conn.transaction():
            first = ingest_file(conn, "events", first_file)  # claimed, not committed yet
            other = threading.Thread(target=second_loader)
            other.start()
            wait_for_lock_wait(db)  # the second loader waits for the first one's keys
        other.join(60)
    assert "error" not in outcome, outcome.get("error")
    second = outcome["result"]
    assert isinstance(second, IngestResult)
    assert (first.loaded, first.duplicates, first.rejected) == (200, 0, 0)
    assert (second.loaded, second.duplicates, second.rejected) == (100, 100, 0)
    assert count(db, "SELECT count(*) FROM ltv.revenue_events WHERE external_id LIKE %s", ("k%",)) == 300
    assert count(db, "SELECT count(DISTINCT external_id) FROM ltv.revenue_events WHERE external_id LIKE %s",
                 ("k%",)) == 300
    assert count(db, "SELECT count(*) FROM ltv.revenue_event_keys WHERE external_id LIKE %s", ("k%",)) == 300


@pytest.mark.parametrize(("table_sql", "value", "ok"), [
    ("customers", "a" * 100, True), ("customers", "a" * 101, False), ("customers", "A1_.:-z", True),
    ("customers", "_a", False), ("customers", "a b", False), ("customers", "", False),
    ("events", "a" * 32, True), ("events", "a" * 33, False), ("events", "stripe_2", True),
    ("events", "Stripe", False), ("events", "2stripe", False), ("events", "", False),
])
def test_identifier_checks_keep_their_meaning(db: psycopg.Connection, tmp_path: Path, table_sql: str, value: str,
                                              ok: bool) -> None:
    """Revision 0006 rewrote `~ '^…{0,N}$'` CHECKs as `~ '^…*$' AND length() <= N + 1`: same rule."""
    setup_marketplace(db, tmp_path)
    statement = {
        "customers": "INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, "
                     "signed_up_at) VALUES (%s, 'venue', 'GB', 'organic', now())",
        "events": "INSERT INTO ltv.revenue_events (customer_id, occurred_at, kind, amount_minor, currency, fx_rate, "
                  "amount_base, source, external_id) SELECT customer_id, now(), 'one_off', 1, 'GBP', 1, 0.01, %s, 'x' "
                  "FROM ltv.customers WHERE customer_ref = 'c1'",
    }[table_sql]
    if ok:
        db.execute(statement, (value,))
    else:
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(statement, (value,))


def test_a_conflicting_reingest_is_rejected_and_the_original_kept(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    load(db, tmp_path, "events", EVENT_HEADER, [event("e1", amount="10.00"), event("e2")])
    result = load(db, tmp_path, "events", EVENT_HEADER, [event("e1", amount="11.00"), event("e2"), event("e3")])
    assert (result.loaded, result.duplicates, result.rejected) == (1, 1, 1)
    [(line, raw, reason)] = rejects(db, result.batch_id)
    assert (line, raw) == (2, event("e1", amount="11.00"))
    assert reason.startswith("conflicts with an already-loaded event: event_id ")
    assert db.execute("SELECT amount_minor FROM ltv.revenue_events WHERE external_id = 'e1'").fetchall() == [(1000,)]


def test_minor_units_are_exact_for_each_currency_exponent(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    result = load(db, tmp_path, "events", EVENT_HEADER, [
        event("a", amount="0.10"), event("b", amount="0.20"),
        event("yen", amount="1500", currency="JPY"),
        event("dinar", amount="1.234", currency="KWD"),
        event("zeros", amount="7.500", currency="GBP"),
    ])
    assert result.rejected == 0
    minor = dict(db.execute("SELECT external_id, amount_minor FROM ltv.revenue_events").fetchall())
    assert minor == {"a": 10, "b": 20, "yen": 1500, "dinar": 1234, "zeros": 750}
    assert count(db, "SELECT sum(amount_minor) FROM ltv.revenue_events WHERE external_id IN ('a', 'b')") == 30
    assert db.execute(
        "SELECT sum(amount_base) FROM ltv.revenue_events WHERE external_id IN ('a', 'b')"
    ).fetchone()[0] == Decimal("0.3000")
    assert db.execute(
        "SELECT amount_base FROM ltv.revenue_events WHERE external_id = 'dinar'"
    ).fetchone()[0] == Decimal("3.0850")  # 1.234 KWD × 2.5


def test_fx_uses_the_event_day_or_a_recent_earlier_rate_and_refuses_stale_ones(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    setup_marketplace(db, tmp_path)
    result = load(db, tmp_path, "events", EVENT_HEADER, [
        event("eur_same_day", amount="10.00", currency="EUR", at="2024-03-05T12:00:00Z"),
        # 23:30 at UTC-2 is 01:30 UTC on the 6th: the 6th's rate applies
        event("eur_utc_day", amount="10.00", currency="EUR", at="2024-03-05T23:30:00-02:00"),
        event("usd_4_days", amount="10.00", currency="USD", at="2024-03-05T12:00:00Z"),
        event("usd_7_days", amount="10.00", currency="USD", at="2024-03-08T23:59:59Z"),
        event("usd_8_days", amount="10.00", currency="USD", at="2024-03-09T00:00:00Z"),
        event("aud_stale", amount="10.00", currency="AUD", at="2024-03-05T12:00:00Z"),
        event("eur_before_any_rate", amount="10.00", currency="EUR", at="2024-03-04T12:00:00Z"),
        event("gbp_base", amount="10.00", currency="GBP", at="1999-01-01T00:00:00Z"),
    ])
    got = {ext: (rate, base) for ext, rate, base in db.execute(
        "SELECT external_id, fx_rate, amount_base FROM ltv.revenue_events").fetchall()}
    assert got == {
        "eur_same_day": (Decimal("0.8500000000"), Decimal("8.5000")),
        "eur_utc_day": (Decimal("0.8600000000"), Decimal("8.6000")),
        "usd_4_days": (Decimal("0.8000000000"), Decimal("8.0000")),
        "usd_7_days": (Decimal("0.8000000000"), Decimal("8.0000")),
        "gbp_base": (Decimal("1.0000000000"), Decimal("10.0000")),
    }
    assert result.rejects_by_reason == {"no usable FX rate": 3}
    reasons = [reason for _, _, reason in rejects(db, result.batch_id)]
    assert reasons == [
        "no usable FX rate: USD on 2024-03-09 (no rate that day or within 7 days before)",
        "no usable FX rate: AUD on 2024-03-05 (no rate that day or within 7 days before)",
        "no usable FX rate: EUR on 2024-03-04 (no rate that day or within 7 days before)",
    ]


def test_base_amounts_that_would_overflow_are_rejected(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    load(db, tmp_path, "fx_rates", "currency,day,rate", ["BHD,2024-03-05,150"])  # a rate ≥ 100: checked per row
    result = load(db, tmp_path, "events", EVENT_HEADER, [
        event("small", amount="2.125", currency="BHD"),
        event("huge", amount="99999999999999.999", currency="BHD"),
    ])
    assert (result.loaded, result.rejects_by_reason) == (1, {"amount too large in base currency": 1})
    assert db.execute("SELECT amount_minor, fx_rate, amount_base FROM ltv.revenue_events").fetchall() == [
        (2125, Decimal("150.0000000000"), Decimal("318.7500")),
    ]
    [(line, _, reason)] = rejects(db, result.batch_id)
    assert (line, reason) == (3, "amount too large in base currency: rate 150.0000000000")


def test_events_outside_existing_partitions_are_kept_and_rehomed(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    far_future = (date.today().replace(day=1) + timedelta(days=366 * 30)).isoformat()
    result = load(db, tmp_path, "events", EVENT_HEADER, [
        event("old_month", at="2010-05-17T08:00:00Z"),  # no partition yet: ingestion creates it
        event("y1999", at="1999-12-31T23:59:59Z"),  # before 2000: lands in the default partition
        event("future", at=f"{far_future}T00:00:00Z"),  # beyond the horizon: default partition too
    ])
    assert result.loaded == 3
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == 3
    assert count(db, "SELECT count(*) FROM ltv.revenue_events_p2010_05") == 1
    assert count(db, "SELECT count(*) FROM ltv.revenue_events_default") == 2
    db.execute("SELECT ltv.maintain_revenue_partitions()")
    assert count(db, "SELECT count(*) FROM ltv.revenue_events_default") == 0
    assert count(db, "SELECT count(*) FROM ltv.revenue_events_p1999_12") == 1
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == 3


def test_header_order_is_free_and_extra_columns_are_ignored(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    header = "Amount,note,currency,occurred_at,external_id,kind,source,subscription_ref,customer_ref"
    result = load(db, tmp_path, "events", header, [
        "12.00,hello,GBP,2024-03-05T10:00:00Z,x1,one_off,paypal,,c3",
        '13.00,"quoted, with comma",GBP,2024-03-05T10:00:00Z,x2,one_off,paypal,,c3',
    ])
    assert (result.loaded, result.rejected, result.ignored_columns) == (2, 0, ("note",))
    assert db.execute("SELECT source, external_id, amount_minor FROM ltv.revenue_events ORDER BY 2").fetchall() == [
        ("paypal", "x1", 1200), ("paypal", "x2", 1300),
    ]


def test_a_missing_required_column_refuses_the_whole_file(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    batches = count(db, "SELECT count(*) FROM ltv.ingest_batches")
    header = "source,external_id,customer_ref,occurred_at,kind,amount,subscription_ref"
    path = write(tmp_path, "no_currency.csv", header, ["stripe,e1,c1,2024-03-05T10:00:00Z,one_off,10.00,"])
    with pytest.raises(ingest.MissingColumnsError, match="currency") as info:
        ingest_file(db, "events", path)
    assert info.value.exit_code == 2 and info.value.missing == ("currency",)
    assert count(db, "SELECT count(*) FROM ltv.ingest_batches") == batches
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == 0
    with pytest.raises(ingest.HeaderError, match="empty"):
        ingest_stream(db, "events", [], file_name="empty.csv")
    with pytest.raises(ingest.UnknownEntityError):
        ingest_stream(db, "payments", [b"a\n"], file_name="x.csv")


def test_chunk_boundaries_crlf_and_odd_lines_do_not_matter(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    lines = [EVENT_HEADER, event("k1"), "", event("k2"), "\\.", event("k3"), '"quoted ""source""",k4', event("k5")]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
    seen: list[int] = []
    result = ingest_stream(db, "events", pieces, file_name="chunks.csv", progress=seen.append)
    assert seen[-1] == len(data) and seen == sorted(seen)
    assert (result.rows_read, result.loaded, result.rejected) == (7, 4, 3)
    assert [(line, raw, reason.split(":")[0]) for line, raw, reason in rejects(db, result.batch_id)] == [
        (3, "", "empty line"),
        (5, "\\.", "wrong column count"),  # not taken for COPY's end-of-data marker
        (7, '"quoted ""source""",k4', "wrong column count"),
    ]
    assert sorted(r[0] for r in db.execute("SELECT external_id FROM ltv.revenue_events")) == ["k1", "k2", "k3", "k5"]


# -- reference entities -----------------------------------------------------------------------------
def test_customers_are_upserted_on_customer_ref(db: psycopg.Connection, tmp_path: Path) -> None:
    header = "customer_ref,vendor_category,country,acquisition_channel,signed_up_at,region"
    first = load(db, tmp_path, "customers", header, [
        "a1,photographer,GB,organic,2024-01-01T00:00:00Z,London",
        "a2,venue,GB,organic,2024-01-02T00:00:00Z,",
        "a3,wizard,GB,organic,2024-01-02T00:00:00Z,",
        "a4,venue,gb,organic,2024-01-02T00:00:00Z,",
        "a5,venue,GB,tv,2024-01-02T00:00:00Z,",
        "bad ref,venue,GB,organic,2024-01-02T00:00:00Z,",
        "a1,photographer,GB,organic,2024-01-01T00:00:00Z,London",
    ])
    assert (first.loaded, first.rejected) == (2, 5)
    assert first.rejects_by_reason == {"unknown vendor_category": 1, "invalid country": 1,
                                       "unknown acquisition_channel": 1, "invalid customer_ref": 1,
                                       "duplicate in file": 1}
    # identical → duplicate; changed → updated; a file without region keeps the stored region
    second = load(db, tmp_path, "customers", "customer_ref,vendor_category,country,acquisition_channel,signed_up_at", [
        "a1,photographer,GB,organic,2024-01-01T00:00:00Z",
        "a2,venue,IE,organic,2024-01-02T00:00:00Z",
    ])
    assert (second.loaded, second.updated, second.duplicates, second.rejected) == (0, 1, 1, 0)
    assert db.execute("SELECT customer_ref, country, region FROM ltv.customers ORDER BY 1").fetchall() == [
        ("a1", "GB", "London"), ("a2", "IE", None),
    ]


def test_subscriptions_are_validated_against_customers_and_plans(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    header = "subscription_ref,customer_ref,plan_code,billing_interval,started_at,cancelled_at"
    result = load(db, tmp_path, "subscriptions", header, [
        "s3,c3,basic_m,month,2024-01-01T00:00:00Z,",
        "s4,c3,basic_m,year,2024-01-01T00:00:00Z,",
        "s1,c3,basic_m,month,2024-01-01T00:00:00Z,",
        "s5,c3,gold,month,2024-01-01T00:00:00Z,",
        "s6,c3,basic_m,month,2024-01-01T00:00:00Z,2023-01-01T00:00:00Z",
        "s7,zz,basic_m,month,2024-01-01T00:00:00Z,",
    ])
    assert result.loaded == 1
    assert result.rejects_by_reason == {
        "billing_interval does not match the plan": 1, "subscription_ref belongs to another customer": 1,
        "unknown plan": 1, "cancelled_at before started_at": 1, "unknown customer": 1,
    }
    # cancelling later is an update; the identical row a duplicate
    again = load(db, tmp_path, "subscriptions", header, [
        "s1,c1,basic_m,month,2023-01-01T00:00:00Z,2024-06-01T00:00:00Z",
        "s2,c2,pro_y,year,2023-02-01T00:00:00Z,",
    ])
    assert (again.loaded, again.updated, again.duplicates) == (0, 1, 1)
    assert db.execute("SELECT cancelled_at FROM ltv.subscriptions WHERE subscription_ref = 's1'").fetchone()[0] == \
        datetime(2024, 6, 1, tzinfo=UTC)


def test_plans_fx_rates_and_spend_upsert_with_the_same_reject_machinery(
    db: psycopg.Connection, tmp_path: Path
) -> None:
    plans = load(db, tmp_path, "plans", "plan_code,tier,billing_interval,list_price,currency", [
        "p1,basic,month,29.00,GBP", "p2,basic,week,29.00,GBP", "p3,basic,month,29.001,GBP",
    ])
    assert (plans.loaded, plans.rejects_by_reason) == (1, {"invalid billing_interval": 1,
                                                             "list_price has more decimal places than the currency "
                                                             "allows": 1})
    fx = load(db, tmp_path, "fx_rates", "currency,day,rate", [
        "EUR,2024-01-01,0.8512345678", "EUR,2024-02-30,0.85", "GBP,2024-01-01,1.2", "GBP,2024-01-02,1",
        "USD,2024-01-01,0", "USD,2024-01-02,abc",
    ])
    assert fx.loaded == 2
    assert fx.rejects_by_reason == {"invalid day": 1, "base currency rate is not 1": 1, "invalid rate": 2}
    spend = load(db, tmp_path, "acquisition_spend", "acquisition_channel,month,amount,currency", [
        "organic,2024-01,100.00,GBP", "paid_search,2024-02-01,250.50,GBP", "paid_search,2024-02-15,1.00,GBP",
    ])
    assert (spend.loaded, spend.rejects_by_reason) == (2, {"invalid month": 1})
    assert db.execute("SELECT acquisition_channel, month, amount_minor FROM ltv.acquisition_spend ORDER BY 1"
                      ).fetchall() == [("organic", date(2024, 1, 1), 10000), ("paid_search", date(2024, 2, 1), 25050)]
    changed = load(db, tmp_path, "plans", "plan_code,tier,billing_interval,list_price,currency",
                   ["p1,basic,month,31.00,GBP"])
    assert (changed.updated, changed.exit_code) == (1, 0)


# -- single records ---------------------------------------------------------------------------------
def test_record_event_is_idempotent_and_validated_like_files(db: psycopg.Connection, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    at = datetime(2024, 3, 5, 10, 0, tzinfo=UTC)
    args = dict(source="stripe", external_id="ch_1", customer_ref="c1", occurred_at=at, kind="subscription",
                amount=Decimal("29.00"), currency="GBP", subscription_ref="s1")
    first = record_event(db, **args)
    assert first.status == "loaded" and first.event_id is not None and first.reason is None
    again = record_event(db, **args)
    assert (again.status, again.event_id) == ("duplicate", first.event_id)
    conflict = record_event(db, **{**args, "amount": "30.00"})
    assert conflict.status == "rejected" and conflict.reason.startswith("conflicts with an already-loaded event")
    negative = record_event(db, **{**args, "external_id": "ch_2", "amount": "-1"})
    assert (negative.status, negative.reason) == ("rejected", "amount is negative: '-1' GBP (2 decimal places)")
    naive = record_event(db, **{**args, "external_id": "ch_3", "occurred_at": datetime(2024, 3, 5, 10, 0)})
    assert naive.status == "rejected" and naive.reason.startswith("occurred_at has no UTC offset")
    offset = record_event(db, **{**args, "external_id": "ch_4",
                                 "occurred_at": datetime(2024, 3, 5, 12, 0, tzinfo=timezone(timedelta(hours=2)))})
    assert offset.status == "loaded"
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == 2
    assert count(db, "SELECT count(*) FROM ltv.ingest_rejects WHERE file_name = %s", (ingest.RECORD_FILE_NAME,)) == 3
    assert db.execute("SELECT occurred_at FROM ltv.revenue_events WHERE external_id = 'ch_4'").fetchone()[0] == at


# -- the timestamp parser ---------------------------------------------------------------------------
STRICT_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)"
)


def reference_parse(text: str) -> datetime | None:
    """An independent statement of what ltv.parse_timestamptz must accept (and what it means)."""
    m = STRICT_TIMESTAMP.fullmatch(text)
    if not m or len(text) > 40:
        return None
    year, month, day, hour, minute = (int(g) for g in m.groups()[:5])
    second = int(m.group(6) or 0)
    micro = round(int((m.group(7) or "0")[:7].ljust(7, "0")) / 10)
    offset = m.group(8)
    if offset in ("Z", "z"):
        off_minutes = 0
    else:
        digits = offset[1:].replace(":", "")
        off_h, off_m = int(digits[:2]), int(digits[2:] or 0)
        if off_h > 15 or off_m > 59:
            return None
        off_minutes = (off_h * 60 + off_m) * (1 if offset[0] == "+" else -1)
    if year < 1 or hour > 23 or minute > 59 or second > 59:
        return None
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=timezone(timedelta(minutes=off_minutes)))
    except ValueError:
        return None
    return (base + timedelta(microseconds=micro)).astimezone(UTC)


def mutations(rng: random.Random, n: int) -> list[str]:
    seeds = ["2024-02-29T23:59:59Z", "2023-12-31T00:00:00+05:30", "2024-06-30T12:30:45-03:00",
             "2024-01-31 08:15:00.123456+01", "2100-02-28T10:00+0200"]
    alphabet = "0123456789-:+TZz .x"
    out = []
    for _ in range(n):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            op, pos = rng.random(), rng.randrange(len(text))
            if op < 0.6:
                text[pos] = rng.choice(alphabet)
            elif op < 0.8:
                del text[pos]
            else:
                text.insert(pos, rng.choice(alphabet))
        out.append("".join(text))
    return out


def test_parse_timestamptz_never_raises_and_agrees_with_a_reference(db: psycopg.Connection) -> None:
    texts = [*mutations(random.Random(5), 20_000), "2024-13-01T00:00:00Z", "0000-01-01T00:00:00Z",
             "2024-02-29T24:00:00Z", "2024-02-29T23:60:00Z", "2023-02-29T00:00:00Z", "2024-04-31T00:00:00+01:00",
             "2024-01-01T00:00:00+16:00", "2024-01-01T00:00:00+01:60", "2024-01-01T00:00:60Z"]
    rows = db.execute(
        "SELECT t, ltv.parse_timestamptz(t) FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n", (texts,)
    ).fetchall()
    accepted = 0
    for text, parsed in rows:
        expected = reference_parse(text)
        assert (parsed is None) == (expected is None), text
        if parsed is not None:  # fractions beyond microseconds may round either way by 1 µs
            assert abs(parsed - expected) <= timedelta(microseconds=1), text
            accepted += 1
    assert 500 < accepted < len(texts) - 500  # the mutations exercise both outcomes
    # as a bound parameter the argument is a constant the planner folds: still no error
    for text in texts[:300]:
        assert db.execute("SELECT ltv.parse_timestamptz(%s)", (text,)).fetchone()[0] == \
            dict(rows).get(text), text


# -- the command line -------------------------------------------------------------------------------
def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_cli_exit_codes_summary_and_rejects(db: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    setup_marketplace(db, tmp_path)
    good = write(tmp_path, "good.csv", EVENT_HEADER, [event("g1"), event("g2")])
    mixed = write(tmp_path, "mixed.csv", EVENT_HEADER, [event("m1"), event("m2", customer="ghost")])
    bad = write(tmp_path, "bad.csv", EVENT_HEADER, [event("x1[bold]", currency="ZZZ")])
    no_kind = write(tmp_path, "no_kind.csv", "source,external_id,customer_ref,occurred_at,amount,currency,"
                    "subscription_ref", ["stripe,k,c1,2024-03-05T10:00:00Z,1.00,GBP,"])

    ok = run_cli(["ingest", "events", str(good)], db_url)
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"loaded\s+│?\s*2", ok.stdout)
    partial = run_cli(["ingest", "events", str(mixed)], db_url)
    assert partial.returncode == 3, partial.stderr
    assert "unknown customer" in partial.stdout
    nothing = run_cli(["ingest", "events", str(bad)], db_url)
    assert nothing.returncode == 4
    replay = run_cli(["ingest", "events", str(good)], db_url)
    assert replay.returncode == 0 and re.search(r"duplicates skipped\s+│?\s*2", replay.stdout)
    missing = run_cli(["ingest", "events", str(tmp_path / "nope.csv")], db_url)
    assert missing.returncode == 2 and "no such file" in flat(missing.stderr)
    refused = run_cli(["ingest", "events", str(no_kind)], db_url)
    assert refused.returncode == 2 and "lacks required column(s) kind" in flat(refused.stderr)
    unknown = run_cli(["ingest", "payments", str(good)], db_url)
    assert unknown.returncode == 2

    batch = db.execute("SELECT max(batch_id) FROM ltv.ingest_rejects").fetchone()[0]
    shown = run_cli(["rejects", "--batch", str(batch)], db_url, COLUMNS="200")
    assert shown.returncode == 0, shown.stderr
    assert "unknown currency" in shown.stdout and "x1[bold]" in shown.stdout  # shown verbatim, not as markup
    latest = run_cli(["rejects", "--limit", "1"], db_url, COLUMNS="200")
    assert "unknown currency" in latest.stdout and "ghost" not in latest.stdout
    helptext = run_cli(["ingest", "--help"], db_url, COLUMNS="200").stdout
    for needle in ("Exit codes", "Idempotent", "source, external_id, customer_ref", "signed_up_at"):
        assert needle in helptext


def test_cli_entity_choices_are_the_engines() -> None:
    assert tuple(e.value for e in IngestEntity) == ingest.ENTITY_NAMES


# -- scale ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_million_event_file_loads_whole_and_reloads_as_duplicates(db: psycopg.Connection, tmp_path: Path) -> None:
    n_customers, n_events = 1_000, 1_000_000
    customers = [f"cust{i},photographer,GB,organic,2022-01-01T00:00:00Z" for i in range(n_customers)]
    assert load(db, tmp_path, "customers", "customer_ref,vendor_category,country,acquisition_channel,signed_up_at",
                customers).loaded == n_customers
    start = datetime(2023, 1, 1, tzinfo=UTC)
    rates = [f"EUR,{(start.date() + timedelta(days=d)).isoformat()},0.85" for d in range(0, 800, 2)]
    assert load(db, tmp_path, "fx_rates", "currency,day,rate", rates).rejected == 0
    path = tmp_path / "million.csv"
    with path.open("w") as fh:
        fh.write(EVENT_HEADER + "\n")
        for chunk in range(0, n_events, 100_000):
            fh.write("".join(
                f"stripe,ch{i},cust{i % n_customers},"
                f"{(start + timedelta(seconds=i * 60)).strftime('%Y-%m-%dT%H:%M:%S')}+00:00,"
                f"{'one_off' if i % 3 else 'refund'},{i % 997}.{i % 100:02d},{'EUR' if i % 2 else 'GBP'},\n"
                for i in range(chunk, chunk + 100_000)
            ))
    first = ingest_file(db, "events", path)
    assert (first.rows_read, first.loaded, first.rejected) == (n_events, n_events, 0)
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == n_events
    again = ingest_file(db, "events", path)
    assert (again.loaded, again.duplicates, again.rejected) == (0, n_events, 0)
    assert count(db, "SELECT count(*) FROM ltv.revenue_events") == n_events


def test_line_blocks_normalise_crlf_and_drop_only_trailing_empty_lines() -> None:
    def expected(data: bytes) -> bytes:
        text = data.replace(b"\r\n", b"\n").removesuffix(b"\r")
        lines = text.split(b"\n")[: -1 if text.endswith(b"\n") else None]
        while lines and not lines[-1]:
            lines.pop()
        return b"".join(line + b"\n" for line in lines)

    rng = random.Random(3)
    cases = [b"h\r\na\r\n\r\nb", b"\n\nh\nx\n", b"h\nx\r", b"h\nx\n\r\n\r\n", b""]
    cases += [bytes(rng.choice(b"ab\r\n") for _ in range(rng.randint(0, 40))) for _ in range(300)]
    for data in cases:
        for size in (1, 2, 3, 7, 64):
            pieces = [data[i:i + size] for i in range(0, len(data), size)]
            blocks = list(ingest.whole_line_blocks(pieces, lambda _: None))
            assert all(block.endswith(b"\n") for block in blocks)
            assert b"".join(blocks) == expected(data), (data, size)
