"""The cached Python client against a real PostgreSQL (with the live-statistics and
change-notification triggers) and a real redis-server: tiers, invalidation across clients and
processes, Redis outages, stampedes, serialisation versions, bad input, PostgreSQL outages,
metrics and the CLI commands built on it."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from itertools import count
from multiprocessing.connection import Connection

import psycopg
import pytest
from typer.testing import CliRunner

from ltv_db.cache import Codec, DecodeError
from ltv_db.client import (
    CustomerLTV,
    CustomerNotFound,
    InvalidCustomerRef,
    InvalidQuery,
    Lookup,
    LTVClient,
    ServiceUnavailable,
)
from ltv_db.invalidation import Change, parse_payload
from ltv_db.redis_server import LocalRedis
from tests.conftest import TEMPLATE_DB, create_database, run_cli

_external_ids = count(1)
COMPUTATIONS = "ltv_client_computations_total"


# -- helpers --------------------------------------------------------------------------------------------
def add_customers(db: psycopg.Connection, n: int, prefix: str = "SUP") -> dict[str, int]:
    """``n`` photographers who signed up 400 days ago; ref → customer_id."""
    rows = db.execute(
        """
        INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
        SELECT %s || '-' || g, 'photographer', 'GB', 'organic', now() - interval '400 days'
        FROM generate_series(1, %s) g
        RETURNING customer_ref, customer_id
        """,
        (prefix, n),
    ).fetchall()
    return dict(rows)


def pay(db: psycopg.Connection, customer_id: int, pounds: int = 10) -> None:
    """Commit a one-off payment with a plain INSERT: the table's own triggers must notify."""
    db.execute(
        """
        INSERT INTO ltv.revenue_events
            (customer_id, occurred_at, kind, amount_minor, currency, fx_rate, amount_base, source, external_id)
        VALUES (%s, now() - interval '1 hour', 'one_off', %s, 'GBP', 1, %s, 'manual', %s)
        """,
        (customer_id, pounds * 100, pounds, f"test-{next(_external_ids)}"),
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.002) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


def computations(client: LTVClient, kind: str = "customer") -> float:
    return client.metrics.value(COMPUTATIONS, {"kind": kind})


@pytest.fixture
def make_client(db_url: str, redis_url: str) -> Iterator[Callable[..., LTVClient]]:
    clients: list[LTVClient] = []

    def make(**options: object) -> LTVClient:
        options.setdefault("warm_top_n", 0)
        client = LTVClient(db_url, redis_url, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# -- tiers ----------------------------------------------------------------------------------------------
def test_read_through_answers_from_l3_then_l1_then_l2_for_a_new_client(db, make_client) -> None:
    ids = add_customers(db, 1)
    pay(db, ids["SUP-1"], 25)
    first = make_client()
    assert first.listening and first.breaker_state == "closed"

    cold = first.lookup("SUP-1")
    warm = first.lookup("SUP-1")
    other = make_client().lookup("SUP-1")

    assert (cold.tier, warm.tier, other.tier) == ("l3", "l1", "l2")
    assert cold.value == warm.value == other.value
    assert not cold.stale
    assert cold.value.customer_id == ids["SUP-1"] and cold.value.net_revenue == Decimal("25")
    direct = db.execute("SELECT net_revenue FROM ltv.customer_ltv(%s)", (ids["SUP-1"],)).fetchone()[0]
    assert cold.value.net_revenue == direct
    assert computations(first) == 1
    assert first.metrics.value("ltv_client_lookups_total", {"kind": "customer", "tier": "l1"}) == 1
    assert first.metrics.value("ltv_client_lookup_seconds_count", {"kind": "customer", "tier": "l3"}) == 1


def test_get_many_reads_each_tier_once_and_omits_unknown_refs(db, make_client) -> None:
    add_customers(db, 4)
    a, b = make_client(), make_client()
    a.get_ltv("SUP-1")  # a: L1
    b.get_ltv("SUP-2")  # in L2
    before = computations(a)

    result = a.lookup_many(["SUP-1", "SUP-2", "SUP-3", "SUP-4", "SUP-1", "NOBODY-9"])

    assert list(result) == ["SUP-1", "SUP-2", "SUP-3", "SUP-4"]
    assert [r.tier for r in result.values()] == ["l1", "l2", "l3", "l3"]
    assert computations(a) - before == 1  # one query for both misses
    assert a.get_many(["SUP-3", "SUP-4"]) == {ref: result[ref].value for ref in ("SUP-3", "SUP-4")}


# -- invalidation ---------------------------------------------------------------------------------------
def test_a_payment_reaches_two_clients_within_the_staleness_bound(db, make_client) -> None:
    ids = add_customers(db, 1)
    a, b = make_client(), make_client()
    assert a.get_ltv("SUP-1").net_revenue == b.get_ltv("SUP-1").net_revenue == 0
    assert a.lookup("SUP-1").tier == b.lookup("SUP-1").tier == "l1"

    pay(db, ids["SUP-1"], 40)  # autocommit: committed here; the statement trigger notifies
    stale_for = max(
        wait_for(lambda c=c: c.get_ltv("SUP-1").net_revenue == Decimal("40"), timeout=5.0) for c in (a, b)
    )
    assert stale_for < 5.0  # the property: it becomes fresh (benchmarks/RESULTS.md has the p99)
    assert a.metrics.value("ltv_client_invalidations_total", {"reason": "ids"}) >= 1
    assert a.redis.get(a.customer_key(ids["SUP-1"])) is not None  # refilled after the eviction


def _watch_in_child(db_url: str, redis_url: str, ref: str, pipe: Connection) -> None:
    """Child process: its own client caches ``ref``, then polls until a payment shows."""
    with LTVClient(db_url, redis_url, warm_top_n=0) as client:
        before = client.get_ltv(ref).net_revenue
        pipe.send(("cached", client.lookup(ref).tier))
        committed_at = pipe.recv()  # time.monotonic() is system-wide on Linux
        while time.monotonic() - committed_at < 10:
            value = client.get_ltv(ref).net_revenue
            if value != before:
                pipe.send(("fresh", str(value), time.monotonic() - committed_at))
                return
            time.sleep(0.001)
        pipe.send(("stale", str(before), None))


def test_a_payment_reaches_another_process(db, db_url, redis_url, make_client) -> None:
    ids = add_customers(db, 1)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_watch_in_child, args=(db_url, redis_url, "SUP-1", child), daemon=True)
    process.start()
    try:
        assert parent.poll(30), "the child never cached the value"
        assert parent.recv() == ("cached", "l1")
        pay(db, ids["SUP-1"], 15)
        parent.send(time.monotonic())
        assert parent.poll(15)
        # "fresh" means the child saw the payment (it reports "stale" if it never does); how
        # fast is measured in benchmarks/bench_client.py, not asserted here
        state, value, _seconds = parent.recv()
        assert state == "fresh" and Decimal(value) == 15
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    assert process.exitcode == 0


def test_record_event_is_visible_at_once_to_its_own_client(db, make_client) -> None:
    ids = add_customers(db, 1)
    writer, reader = make_client(), make_client()
    assert writer.get_ltv("SUP-1").net_revenue == reader.get_ltv("SUP-1").net_revenue == 0
    from datetime import UTC, datetime, timedelta

    event = dict(
        source="stripe", external_id="ch_1", customer_ref="SUP-1", occurred_at=datetime.now(UTC) - timedelta(hours=2),
        kind="one_off", amount=Decimal("12.50"), currency="GBP",
    )
    writer.record_event(**event)
    assert writer.get_ltv("SUP-1").net_revenue == Decimal("12.5")  # read-your-writes, no waiting
    wait_for(lambda: reader.get_ltv("SUP-1").net_revenue == Decimal("12.5"))
    writer.record_event(**event)  # idempotent: a replay changes nothing
    assert writer.get_ltv("SUP-1").net_revenue == Decimal("12.5")
    events = db.execute("SELECT count(*) FROM ltv.revenue_events WHERE customer_id = %s", (ids["SUP-1"],))
    assert events.fetchone()[0] == 1


def test_a_value_read_before_a_payment_is_not_cached_after_its_eviction(db, make_client, monkeypatch) -> None:
    """The read-through race: L3 answers, the payment commits and is evicted, then the old
    answer would be stored. The invalidation log makes the store a no-op."""
    ids = add_customers(db, 1)
    client = make_client()
    read_from_postgres = client._load_customers
    evictions = lambda: client.metrics.value("ltv_client_invalidations_total", {"reason": "ids"})  # noqa: E731

    def slow_read(refs: list[str]) -> dict[str, CustomerLTV]:
        loaded = read_from_postgres(refs)  # before the payment
        seen = evictions()
        pay(db, ids["SUP-1"], 9)
        wait_for(lambda: evictions() > seen)  # its NOTIFY has been applied
        return loaded

    monkeypatch.setattr(client, "_load_customers", slow_read)
    assert client.lookup("SUP-1").value.net_revenue == 0  # answered, but not cached:
    monkeypatch.undo()
    assert client.redis.get(client.customer_key(ids["SUP-1"])) is None
    fresh = client.lookup("SUP-1")
    assert fresh.tier == "l3" and fresh.value.net_revenue == 9


def test_notification_payloads_are_parsed_defensively() -> None:
    assert parse_payload('{"ids":[3,17]}') == Change((3, 17))
    assert parse_payload('{"all":true}') == Change(None)
    for odd in ("", "not json", "[1,2]", '{"ids":"3"}', '{"ids":[1,"2"]}', '{"ids":[true]}', "{}"):
        assert parse_payload(odd) == Change(None), odd  # unknown: invalidate everything


def test_a_recreated_database_of_the_same_name_never_sees_the_old_cache(db_url, redis_url, pg_server_url) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        pay(conn, add_customers(conn, 1)["SUP-1"], 25)
    with LTVClient(db_url, redis_url, warm_top_n=0) as client:
        assert client.get_ltv("SUP-1").net_revenue == 25  # cached in Redis
    name = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    create_database(pg_server_url, name, TEMPLATE_DB)  # drop + create: same URL, same namespace
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_customers(conn, 1)
    with LTVClient(db_url, redis_url, warm_top_n=0) as client:
        fresh = client.lookup("SUP-1")
    assert fresh.tier == "l3" and fresh.value.net_revenue == 0


def test_a_bulk_change_bumps_the_generation_everywhere(db, make_client) -> None:
    add_customers(db, 2)
    a, b = make_client(), make_client()
    a.get_ltv("SUP-1"), b.get_ltv("SUP-1")
    gen = a.generation
    assert gen == b.generation

    db.execute("UPDATE ltv.settings SET horizon_months = horizon_months")  # trigger: {"all": true}

    wait_for(lambda: a.generation != gen and b.generation != gen)
    wait_for(lambda: a.generation == b.generation)
    assert a.lookup("SUP-1").tier in ("l2", "l3") and b.lookup("SUP-1").tier in ("l2", "l3")


def test_a_lost_listener_connection_resyncs_instead_of_staying_stale(db, make_client) -> None:
    ids = add_customers(db, 1)
    client = make_client()
    client.get_ltv("SUP-1")
    gen = client.generation
    db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'ltv-db cache listener' AND datname = current_database()"
    )
    # a payment while nobody listens: its NOTIFY is lost for this client
    pay(db, ids["SUP-1"], 7)
    wait_for(lambda: client.generation != gen and client.listening)
    assert client.metrics.value("ltv_client_invalidations_total", {"reason": "resync"}) >= 1
    assert client.get_ltv("SUP-1").net_revenue == Decimal("7")


# -- resilience -----------------------------------------------------------------------------------------
def test_redis_outage_costs_no_lookup_and_caching_resumes(db, make_client, redis_server: LocalRedis) -> None:
    ids = add_customers(db, 20)
    refs = sorted(ids)
    client = make_client(l1_ttl=0.05, breaker_reset=0.3)
    for ref in refs:
        client.get_ltv(ref)
    failures: list[BaseException] = []
    states = set()

    def sweep() -> None:
        for ref in refs:
            try:
                assert client.get_ltv(ref).customer_id == ids[ref]
            except BaseException as exc:  # noqa: BLE001 - every failure is counted
                failures.append(exc)
        states.add(client.breaker_state)

    generation = client.generation
    answered_by_postgres = client.metrics.value("ltv_client_lookups_total", {"kind": "customer", "tier": "l3"})
    redis_server.stop()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            sweep()
        assert "open" in states
        assert client.metrics.value("ltv_client_redis_breaker_state") in (1.0, 2.0)
        assert client.metrics.value("ltv_client_lookups_total", {"kind": "customer", "tier": "l3"}) > (
            answered_by_postgres + len(refs)
        )
    finally:
        redis_server.start()

    def cached_again() -> bool:
        sweep()
        return client.breaker_state == "closed" and client.redis.exists(client.customer_key(ids[refs[0]])) == 1

    wait_for(cached_again, timeout=10.0, interval=0.05)
    assert failures == []
    # no long waits while Redis is down: every Redis call is bounded by a short socket timeout with
    # no retries, and the open breaker skips even that (lookup latency is benchmarked, not timed here)
    connection = client.redis.connection_pool.connection_kwargs
    assert connection["socket_timeout"] <= 0.1 and connection["socket_connect_timeout"] <= 0.1
    assert client.metrics.value("ltv_client_redis_breaker_state") == 0
    assert client.generation != generation  # nothing written before the outage is trusted again


@pytest.mark.parametrize("clients", [1, 2], ids=["threads", "processes-sharing-redis"])
def test_a_stampede_on_an_expired_key_computes_once(db, make_client, clients: int) -> None:
    ids = add_customers(db, 1)
    # lock_wait: the waiters' patience for the lock holder, generous so a loaded CI machine
    # cannot make the holder look stuck (then a waiter computes too — by design)
    pool = [make_client(l1_ttl=0.2, lock_wait=3.0) for _ in range(clients)]
    pool[0].get_ltv("SUP-1")
    for client in pool[1:]:
        client.get_ltv("SUP-1")
    time.sleep(0.25)  # every L1 entry expired …
    pool[0].redis.delete(pool[0].customer_key(ids["SUP-1"]))  # … and the Redis entry too
    before = sum(computations(c) for c in pool)
    barrier = threading.Barrier(20)

    def hit(i: int) -> CustomerLTV:
        barrier.wait()
        return pool[i % clients].get_ltv("SUP-1")

    with ThreadPoolExecutor(20) as executor:
        values = list(executor.map(hit, range(20)))

    assert sum(computations(c) for c in pool) - before == 1
    assert all(v == values[0] for v in values)


def test_postgres_unreachable_gives_a_stale_flagged_value_or_service_unavailable(db, db_url, redis_url) -> None:
    add_customers(db, 1)
    namespace = f"ltv:test-outage-{time.time_ns()}"
    with LTVClient(db_url, redis_url, namespace=namespace, warm_top_n=0) as good:
        known = good.get_ltv("SUP-1")  # in Redis: the entry, and its last-known copy

    started = time.monotonic()
    bogus = "host=/nonexistent/ltv-socket-dir dbname=ltv user=nobody connect_timeout=1"
    with LTVClient(bogus, redis_url, namespace=namespace, warm_top_n=0, l1_ttl=3.0) as client:
        assert not client.listening
        # within l1_ttl of losing its listener a client still serves cached entries as fresh …
        assert client.lookup("SUP-1") == Lookup(known, "l2")
        time.sleep(3.1)
        # … after that it asks PostgreSQL first, and falls back to the value flagged stale
        result = client.lookup("SUP-1")
        assert result.stale and result.tier == "stale" and result.value == known
        assert result.stored_at is not None and result.stored_at <= time.time()
        with pytest.raises(ServiceUnavailable) as raised:
            client.get_ltv("SUP-1")
        assert raised.value.stale is not None and raised.value.stale.value == known
        with pytest.raises(ServiceUnavailable) as raised:
            client.get_ltv("SUP-2")
        assert raised.value.stale is None
        with pytest.raises(ServiceUnavailable):
            client.get_many(["SUP-1", "SUP-2"])
        assert client.lookup_many(["SUP-1"])["SUP-1"].stale
    assert time.monotonic() - started < 15


# -- serialisation and input ----------------------------------------------------------------------------
def test_another_schema_version_or_a_corrupt_entry_is_a_miss_and_is_overwritten(db, make_client) -> None:
    ids = add_customers(db, 1)
    client = make_client()
    value = client.get_ltv("SUP-1")
    codec = Codec(CustomerLTV)
    key = client.customer_key(ids["SUP-1"])
    assert client.redis.get(key).startswith(codec.tag + b"|")
    old_version = codec.tag.replace(b"v1:", b"v0:")
    for entry in (
        old_version + codec.encode(value)[len(codec.tag):],  # same fields, older encoding version
        codec.encode(value).replace(b"CustomerLTV:", b"CustomerLTV:0ld5hape", 1),  # other fields
        codec.tag + b"|{not json",
        codec.tag + b'|[1,"two"]',
        b"garbage",
    ):
        client.redis.set(key, entry)
        client.l1.invalidate(None)
        assert client.lookup("SUP-1").tier == "l3"
        assert codec.decode(client.redis.get(key)) == value
        assert client.lookup("SUP-1").tier == "l1"


def test_codec_round_trips_and_refuses_wrong_shapes() -> None:
    from datetime import UTC, datetime

    value = CustomerLTV(
        customer_ref="A-1", customer_id=7, vendor_category="venue", country="FR", acquisition_channel="referral",
        signed_up_at=datetime(2025, 3, 1, 12, tzinfo=UTC), subscription_status="active", billing_interval=None,
        sbg_segment=None, bgnbd_segment="all", net_revenue=Decimal("1234.5600"), realised_margin=Decimal("-0.01"),
        current_mrr=Decimal("0"), predicted_recurring=None, predicted_one_off=Decimal("1E+2"), total_ltv=None,
        p_alive=0.1 + 0.2, expected_purchases=None, expected_remaining_months=float("inf"), ltv_low=None,
        ltv_high=Decimal("3.3333333333333333333333"),
    )
    codec = Codec(CustomerLTV)
    decoded = codec.decode(codec.encode(value))
    assert decoded == value and decoded.signed_up_at.tzinfo is not None
    many = Codec(CustomerLTV, many=True)
    assert many.decode(many.encode([value, value])) == [value, value]
    with pytest.raises(DecodeError):
        many.decode(codec.encode(value))  # a single value is not a list entry
    with pytest.raises(DecodeError):
        codec.decode(codec.tag + b'|["A-1","seven"' + b",null" * 19 + b"]")


MALFORMED_REFS = ["", " SUP-1", "SUP 1", "SUP-1;DROP", "-SUP", "x" * 101, None, 17, b"SUP-1"]


def test_malformed_refs_are_refused_before_any_io(make_client) -> None:
    client = make_client()
    for ref in MALFORMED_REFS:
        with pytest.raises(InvalidCustomerRef) as raised:
            client.get_ltv(ref)  # type: ignore[arg-type]
        assert isinstance(raised.value, ValueError)
        with pytest.raises(InvalidCustomerRef):
            client.get_many(["SUP-1", ref])  # type: ignore[list-item]
        with pytest.raises(InvalidCustomerRef):
            client.lookup(ref)  # type: ignore[arg-type]
    assert computations(client) == 0


def test_unknown_customers_and_segment_dimensions_raise_typed_errors(db, make_client) -> None:
    add_customers(db, 1)
    client = make_client()
    with pytest.raises(CustomerNotFound) as raised:
        client.get_ltv("NOBODY-1")
    assert isinstance(raised.value, LookupError) and "NOBODY-1" in str(raised.value)
    with pytest.raises(InvalidQuery):
        client.segments(by=("shoe_size",))
    with pytest.raises(InvalidQuery):
        client.segments(filters={"category": ""})
    with pytest.raises(InvalidQuery):
        client.cohorts(max_months=-1)


# -- segments and cohorts -------------------------------------------------------------------------------
def refresh_views(db: psycopg.Connection) -> None:
    """What the refresh-views pg_cron job runs: ltv.segment_ltv and ltv.cohort_retention with it.
    JIT off, as the client's own connections have it: compiling these plans takes seconds."""
    db.execute("SET jit = off")
    db.execute("SELECT count(*) FROM ltv.refresh_views()")


def mixed_customers(db: psycopg.Connection) -> None:
    db.execute(
        """
        INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at)
        SELECT 'MIX-' || g, (ARRAY['photographer', 'venue', 'florist'])[1 + g % 3], (ARRAY['GB', 'FR'])[1 + g % 2],
               'organic', now() - make_interval(days => 40 + g)
        FROM generate_series(1, 30) g
        """
    )
    for customer_id in [r[0] for r in db.execute("SELECT customer_id FROM ltv.customers").fetchall()][::3]:
        pay(db, customer_id, 20)


def test_segments_read_through_filters_and_warming(db, make_client) -> None:
    mixed_customers(db)
    refresh_views(db)
    client = make_client()

    rows = client.segments(by=("category", "country"))
    assert rows and {r.grouping_level for r in rows} == {"vendor_category+country"}
    assert all(r.plan_tier == r.acquisition_channel == r.signup_cohort == "all" for r in rows)
    expected = dict(
        ((c, k), n) for c, k, n in db.execute(
            "SELECT vendor_category, country, count(*) FROM ltv.customers GROUP BY 1, 2"
        ).fetchall()
    )
    assert {(r.vendor_category, r.country): r.customers for r in rows} == expected
    assert rows[0].dimensions == {"vendor_category": rows[0].vendor_category, "country": rows[0].country}
    assert client.segments(by=("vendor_category", "country")) == rows  # same query, other spelling: L1
    assert client.metrics.value("ltv_client_lookups_total", {"kind": "segments", "tier": "l1"}) == 1
    assert make_client().segments(by=["category", "country"]) == rows  # another client: L2

    photographers = client.segments(by=("country",), filters={"category": "photographer"})
    assert {r.country for r in photographers} == {"GB", "FR"}
    assert all(r.vendor_category == "photographer" for r in photographers)
    assert sum(r.customers for r in photographers) == 10
    everyone = client.segments(by=())
    assert len(everyone) == 1 and everyone[0].customers == 30 and everyone[0].grouping_level == "total"
    with pytest.raises(InvalidQuery, match="no breakdown by country, plan"):
        client.segments(by=("country", "plan"))

    before = computations(client, "segments")
    client.flush_cache()
    assert client.warm_segments(top_n=2) == 2  # the two most-queried segment queries
    assert computations(client, "segments") - before == 2
    assert client.segments(by=("category", "country")) == rows
    assert computations(client, "segments") - before == 2  # warmed: no further computation


def test_a_views_refresh_reaches_cached_segments_and_warms_them(db, make_client) -> None:
    mixed_customers(db)
    refresh_views(db)
    client = make_client(views_poll=0.1, warm_top_n=5)
    first = client.segments(by=())
    assert first[0].customers == 30
    db.execute(
        "INSERT INTO ltv.customers (customer_ref, vendor_category, country, acquisition_channel, signed_up_at) "
        "VALUES ('LATE-1', 'baker', 'GB', 'organic', now() - interval '3 days')"
    )
    assert client.segments(by=())[0].customers == 30  # the view has not been refreshed yet
    computed = computations(client, "segments")
    refresh_views(db)
    wait_for(lambda: computations(client, "segments") > computed)  # warmed after the refresh …
    assert client.segments(by=())[0].customers == 31  # … so this is an L1 hit of the new figures
    assert client.metrics.value("ltv_client_invalidations_total", {"reason": "views"}) >= 1
    refreshed = db.execute("SELECT max(last_refreshed_at) FROM ltv.view_refreshes").fetchone()[0]
    assert client.views_refreshed_at == refreshed


def test_cohorts_are_long_format_and_filtered(db, make_client) -> None:
    mixed_customers(db)
    refresh_views(db)
    client = make_client()
    rows = client.cohorts()
    assert rows == sorted(rows, key=lambda r: (r.cohort_month, r.months_since_signup))
    assert all(0 <= r.retained_customers <= r.customers_at_start <= r.cohort_signups for r in rows)
    assert sum(r.cohort_signups for r in rows if r.months_since_signup == 0) == 30
    first = rows[0].cohort_month
    limited = client.cohorts(cohort_from=first, cohort_to=first, max_months=1)
    assert limited and {r.cohort_month for r in limited} == {first}
    assert [r.months_since_signup for r in limited] == [0, 1]
    assert client.cohorts(cohort_from=first, cohort_to=first, max_months=1) == limited
    assert client.metrics.value("ltv_client_lookups_total", {"kind": "cohorts", "tier": "l1"}) == 1


def test_segments_command(db, db_url, redis_url, monkeypatch) -> None:
    from ltv_db.cli import app

    mixed_customers(db)
    refresh_views(db)
    monkeypatch.setenv("LTV_DATABASE_URL", db_url)
    monkeypatch.setenv("LTV_REDIS_URL", redis_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    done = runner.invoke(app, ["segments", "--by", "category,country", "--filter", "category=photographer"])
    assert done.exit_code == 0, done.output
    assert "photographer" in done.output and "GB" in done.output and "FR" in done.output
    as_json = runner.invoke(app, ["segments", "--by", "country", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert sum(json.loads(line)["customers"] for line in as_json.output.splitlines()) == 30
    bad = runner.invoke(app, ["segments", "--by", "shoe_size"])
    assert bad.exit_code == 2 and "shoe_size" in bad.output


# -- metrics and CLI ------------------------------------------------------------------------------------
def test_metrics_endpoint_and_cache_stats(db, db_url, redis_url, make_client) -> None:
    add_customers(db, 2)
    client = make_client()
    client.get_ltv("SUP-1"), client.get_ltv("SUP-1"), client.get_ltv("SUP-2")
    server = client.serve_metrics(port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    assert 'ltv_client_lookups_total{kind="customer",tier="l1"} 1.0' in text
    assert 'ltv_client_lookups_total{kind="customer",tier="l3"} 2.0' in text
    assert "ltv_client_lookup_seconds_bucket" in text and "ltv_client_redis_breaker_state 0.0" in text
    assert 'ltv_cache_fleet_lookups_total{kind="customer",tier="l3"}' in text

    stats = client.cache_stats()
    assert stats.generation == client.generation and stats.keys["customers"] == 2
    done = run_cli(["cache", "stats", "--json"], db_url, LTV_REDIS_URL=redis_url)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["generation"] == client.generation
    assert printed["lookups"]["customer|l3"] >= 2 and printed["hit_ratio"]["customer"]["l1"] > 0


def test_ltv_command_uses_the_client(db, db_url, redis_url, monkeypatch) -> None:
    ids = add_customers(db, 1)
    pay(db, ids["SUP-1"], 30)
    from ltv_db.cli import app

    monkeypatch.setenv("LTV_DATABASE_URL", db_url)
    monkeypatch.setenv("LTV_REDIS_URL", redis_url)
    runner = CliRunner()
    shown = runner.invoke(app, ["ltv", "SUP-1"])
    assert shown.exit_code == 0, shown.output
    assert "SUP-1" in shown.output
    with LTVClient(db_url, redis_url, warm_top_n=0) as client:
        assert client.lookup("SUP-1").tier == "l2"  # the command filled the shared cache
    assert runner.invoke(app, ["ltv", "NOBODY-1"]).exit_code == 4
    assert runner.invoke(app, ["ltv", "bad ref"]).exit_code == 2
