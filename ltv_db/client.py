"""``LTVClient``: cached, resilient LTV lookups for application request paths.

::

    from ltv_db import LTVClient

    with LTVClient() as client:                       # LTV_DATABASE_URL / LTV_REDIS_URL, or the private servers
        ltv = client.get_ltv("SUP-000123")            # CustomerLTV; L1 → L2 (Redis) → L3 (ltv.customer_ltv)
        rows = client.segments(by=("vendor_category", "country"), filters={"vendor_category": "photographer"})

Read-through over three tiers (see :mod:`ltv_db.cache`): L1 in-process TTL/LRU, L2 Redis, L3
PostgreSQL — ``ltv.customer_ltv`` for customers (always current: it reads the live statistics),
the BI views ``ltv.segment_ltv`` / ``ltv.cohort_retention`` for aggregates. Changes
are pushed out by :mod:`ltv_db.invalidation` (staleness bound and its fallbacks documented
there). The tier that answered each lookup is counted in :mod:`ltv_db.metrics`.

Failure behaviour:

* **Redis down or slow** — every Redis call has a 50 ms socket timeout and goes through a
  circuit breaker; failures are misses, the breaker opens after 3 in a row and refuses calls
  (no waiting) for a second before trying again. Lookups are answered from L3 without errors.
  Caching resumes when Redis is back (after a generation bump: entries written before the
  outage are never trusted again).
* **PostgreSQL errors** — transient ones (a dropped connection, an admin shutdown) are retried
  with bounded exponential backoff (3 attempts within 2 s); the pool wait is bounded (1 s, or
  0.1 s once the listener has seen PostgreSQL unreachable) and every connection has a
  ``connect_timeout`` and a ``statement_timeout``, so nothing hangs.
* **PostgreSQL unreachable** — for ``l1_ttl`` (5 s) after the change listener lost its
  connection, cached entries are still served as fresh (a reconnect within that time resyncs).
  After that a client can no longer know whether it missed a change, so every lookup asks
  PostgreSQL first: :meth:`LTVClient.lookup` then serves the last value this process or any
  other stored (L1 last-known store, then the Redis ``stale`` copy) flagged ``stale=True``, and
  :meth:`LTVClient.get_ltv` raises :class:`ServiceUnavailable` with that lookup (if any) in
  ``exc.stale``. Never a hang: about a second at most per lookup.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import psycopg
from prometheus_client import CollectorRegistry
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from ltv_db.cache import (
    LOCK_UNAVAILABLE,
    Codec,
    DecodeError,
    Keys,
    L1Cache,
    RedisTier,
    RedisUnavailable,
    SingleFlight,
    namespace_for,
    resolve_redis_url,
)
from ltv_db.config import load_settings
from ltv_db.invalidation import Change, ChangeListener, EvictionSubscriber, Invalidator
from ltv_db.metrics import ClientMetrics, FleetStatsCollector, serve
from ltv_db.models import CustomerLTV, CustomerNotFound

if TYPE_CHECKING:
    from ltv_db.ingest import RecordResult

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "ClientOptions",
    "CohortRetention",
    "CustomerLTV",
    "CustomerNotFound",
    "InvalidCustomerRef",
    "InvalidQuery",
    "LTVClient",
    "Lookup",
    "SegmentLTV",
    "ServiceUnavailable",
]

# The same rule as the CHECK on ltv.customers.customer_ref: refuse garbage before any I/O.
CUSTOMER_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


# -- errors ----------------------------------------------------------------------------------------------
class InvalidCustomerRef(ValueError):
    """The reference cannot be a customer reference (wrong type, empty, bad characters, too long)."""


class InvalidQuery(ValueError):
    """An unknown segment dimension or filter."""


class ServiceUnavailable(RuntimeError):
    """PostgreSQL could not answer in time. ``stale`` holds a last-known value, if there was one."""

    def __init__(self, message: str, stale: Lookup[Any] | None = None) -> None:
        super().__init__(message)
        self.stale = stale


# -- results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lookup(Generic[T]):
    """A value and where it came from. ``stale`` values were served because PostgreSQL was
    unreachable; ``stored_at`` (epoch seconds) says how old they are."""

    value: T
    tier: str
    stale: bool = False
    stored_at: float | None = None


@dataclass(frozen=True)
class SegmentLTV:
    """One row of ``ltv.segment_ltv`` (see ``COMMENT ON`` the view for every column): a segment —
    ``'all'`` in each dimension it does not break down by, ``grouping_level`` naming those it
    does — and its LTV, CAC and payback. Money in base-currency major units. The figures are
    as of the last refresh of the views (:attr:`LTVClient.views_refreshed_at`)."""

    grouping_level: str
    vendor_category: str
    country: str
    plan_tier: str
    billing_interval: str
    acquisition_channel: str
    signup_cohort: str
    customers: int
    scored_customers: int
    active_subscribers: int
    total_ltv: Decimal | None
    mean_ltv: Decimal | None
    median_ltv: Decimal | None
    p90_ltv: Decimal | None
    mrr: Decimal | None
    arpa: Decimal | None
    mean_cac: Decimal | None
    ltv_to_cac: Decimal | None
    cac_payback_months: Decimal | None

    @property
    def dimensions(self) -> dict[str, str]:
        """The dimensions this row breaks down by, with their values."""
        return {c: getattr(self, c) for c in SEGMENT_COLUMNS if getattr(self, c) != "all"}


@dataclass(frozen=True)
class CohortRetention:
    """One row of ``ltv.cohort_retention`` (long format: a signup month × months since signup;
    see ``COMMENT ON`` the view). Ratios are 0–1 (net revenue retention can exceed 1)."""

    cohort_month: date
    months_since_signup: int
    month: date
    cohort_signups: int
    customers_at_start: int
    retained_customers: int
    customer_retention: Decimal | None
    starting_mrr: Decimal
    retained_mrr: Decimal
    gross_revenue_retention: Decimal | None
    net_revenue_retention: Decimal | None


# ltv.segment_ltv's dimensions in grouping_level order, and the columns each one spans.
SEGMENT_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "vendor_category": ("vendor_category",),
    "country": ("country",),
    "plan": ("plan_tier", "billing_interval"),
    "acquisition_channel": ("acquisition_channel",),
    "signup_cohort": ("signup_cohort",),
}
SEGMENT_COLUMNS = tuple(c for columns in SEGMENT_DIMENSIONS.values() for c in columns)
# What callers may say (CLI: --by category,country) → a dimension.
DIMENSION_ALIASES = {
    "vendor_category": "vendor_category", "category": "vendor_category",
    "country": "country",
    "plan": "plan",
    "acquisition_channel": "acquisition_channel", "channel": "acquisition_channel",
    "signup_cohort": "signup_cohort", "cohort": "signup_cohort",
}
# What callers may filter on (CLI: --filter category=photographer) → a column of the view.
FILTER_ALIASES = {
    **{alias: dim for alias, dim in DIMENSION_ALIASES.items() if dim != "plan"},
    "plan": "plan_tier", "plan_tier": "plan_tier", "tier": "plan_tier",
    "billing_interval": "billing_interval", "interval": "billing_interval",
}
_FILTER_DIMENSION = {column: dim for dim, columns in SEGMENT_DIMENSIONS.items() for column in columns}
_SEGMENT_FIELDS = tuple(f.name for f in dataclasses.fields(SegmentLTV))
_COHORT_FIELDS = tuple(f.name for f in dataclasses.fields(CohortRetention))

# One round trip for any number of customers. The signed_up_at filter keeps ltv.customer_ltv
# from raising for a customer who signs up in the future (it would abort the whole batch).
_CUSTOMERS_SQL = """
SELECT c.customer_ref, l.*
FROM ltv.customers c
CROSS JOIN LATERAL ltv.customer_ltv(c.customer_id) l
WHERE c.customer_ref = ANY(%s) AND c.signed_up_at <= now()
"""
_CUSTOMER_FIELDS = tuple(f.name for f in dataclasses.fields(CustomerLTV))


@dataclass(frozen=True)
class ClientOptions:
    """Tuning knobs; the defaults suit a request path. Times in seconds unless named ``_ms``."""

    l1_maxsize: int = 50_000  # entries (customers + aggregates); bounds memory
    last_known_maxsize: int = 10_000  # values kept for PostgreSQL outages (Redis keeps a copy of all)
    l1_ttl: float = 5.0  # fallback staleness bound if a process hears no invalidations at all
    l2_ttl: float = 3600.0  # Redis customer entries (deleted on change; the TTL only bounds memory)
    aggregate_ttl: float = 600.0  # segments / cohorts; keys change with every views refresh anyway
    views_poll: float = 2.0  # how often the listener reads when the BI views were last refreshed
    stale_ttl: float = 7 * 86400.0  # last-known copies kept for PostgreSQL outages
    redis_timeout: float = 0.05
    breaker_fail_max: int = 3
    breaker_reset: float = 1.0
    pool_min: int = 1
    pool_max: int = 8
    pool_timeout: float = 1.0
    connect_timeout: int = 2
    statement_timeout_ms: int = 5000
    batch_size: int = 100  # customers per L3 query of get_many (keeps each under statement_timeout)
    pg_attempts: int = 3
    pg_retry_budget: float = 2.0
    lock_ttl_ms: int = 2000  # cross-process stampede lock; expires if its holder dies
    lock_wait: float = 0.25  # how long to wait for another process's computation before doing it
    warm_top_n: int = 10  # hot segments recomputed after a bulk change (0: off)
    stats_interval: float = 5.0


def _validate_ref(ref: object) -> str:
    if not isinstance(ref, str) or not CUSTOMER_REF.fullmatch(ref):
        raise InvalidCustomerRef(f"not a customer reference: {ref!r}")
    return ref


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: a lost connection; not a pool timeout (it already waited) nor a
    statement timeout (retrying a slow query under load makes it worse)."""
    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, (PoolTimeout, psycopg.errors.QueryCanceled)
    )


class LTVClient:
    """Cached LTV lookups (thread-safe; one per process is enough). Use as a context manager or
    call :meth:`close` — it stops the listener and subscriber threads and the pool."""

    def __init__(
        self,
        database_url: str | None = None,
        redis_url: str | None = None,
        *,
        use_redis: bool = True,
        namespace: str | None = None,
        registry: CollectorRegistry | None = None,
        **options: Any,
    ) -> None:
        self.options = dataclasses.replace(ClientOptions(), **options)
        opts = self.options
        settings = load_settings()
        if database_url is None:
            from ltv_db.db import resolve_database_url

            database_url = resolve_database_url(settings)
        self.database_url = database_url
        params = conninfo_to_dict(database_url)
        conninfo = make_conninfo(
            database_url, connect_timeout=params.get("connect_timeout") or str(opts.connect_timeout)
        )
        self.metrics = ClientMetrics(registry)
        self.keys = Keys(namespace or namespace_for(database_url))
        self.l1 = L1Cache(opts.l1_maxsize, opts.l1_ttl, opts.last_known_maxsize)
        self._flight = SingleFlight()
        self._codec: Codec[CustomerLTV] = Codec(CustomerLTV)
        self._segment_codec: Codec[SegmentLTV] = Codec(SegmentLTV, many=True)
        self._cohort_codec: Codec[CohortRetention] = Codec(CohortRetention, many=True)
        self._segment_levels: tuple[str | None, frozenset[str]] | None = None  # (views stamp, levels)
        self._segment_counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._stop = threading.Event()

        self._pool = ConnectionPool(
            conninfo,
            min_size=opts.pool_min,
            max_size=opts.pool_max,
            timeout=opts.pool_timeout,
            kwargs={"autocommit": True, "application_name": "ltv-db client"},
            configure=self._configure,
            open=False,
            name="ltv-client",
        )
        self._pool.open(wait=False)

        if use_redis and redis_url is None:
            redis_url = resolve_redis_url(settings)
        self._tier = (
            RedisTier(
                redis_url,
                metrics=self.metrics,
                timeout=opts.redis_timeout,
                fail_max=opts.breaker_fail_max,
                reset_timeout=opts.breaker_reset,
            )
            if use_redis and redis_url
            else None
        )
        self._inv = Invalidator(self.l1, self._tier, self.keys, self.metrics)
        self._inv.on_bulk_change = lambda: self._schedule_warming(f"bulk change {time.time():.0f}")
        self._inv.on_views_refreshed = lambda stamp: self._schedule_warming(f"views refreshed {stamp}")
        self._warmer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ltv-cache-warm")

        self._listener = ChangeListener(conninfo, self._inv, self._stop, views_poll=opts.views_poll)
        self._listener.start()
        self._subscriber: EvictionSubscriber | None = None
        if self._tier is not None and redis_url:
            self._subscriber = EvictionSubscriber(
                redis_url, self._inv, self.keys, self._tier, self.metrics, self._stop,
                stats_interval=opts.stats_interval, on_tick=self._flush_segment_counts,
            )
            self._subscriber.connect()  # synchronously: the first lookup may already use L2
            self._subscriber.start()
        # Wait for the first LISTEN attempt: until it succeeds nothing is cached.
        self._listener.ready.wait(opts.connect_timeout + 1.0)

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> LTVClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background threads, flush the hit counters to Redis, close the pool."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._warmer.shutdown(wait=True, cancel_futures=True)
        self._listener.join(timeout=self.options.connect_timeout + 2.0)
        if self._subscriber is not None:
            self._subscriber.join(timeout=3.0)
            self._subscriber.flush_stats()
            self._flush_segment_counts()
        self._pool.close(timeout=2.0)
        if self._tier is not None:
            self._tier.close()

    def _configure(self, conn: psycopg.Connection) -> None:
        # jit off: the LTV functions carry high cost estimates, so PostgreSQL would JIT-compile a
        # one-customer lookup — seconds of compilation for a few milliseconds of work.
        conn.execute(f"SET statement_timeout = {int(self.options.statement_timeout_ms)}; SET jit = off")

    # -- state, for callers and tests --------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The cache generation this client uses (part of every Redis key)."""
        return self._inv.generation

    @property
    def breaker_state(self) -> str:
        """``closed`` / ``open`` / ``half-open``; ``disabled`` without Redis."""
        return self._tier.state if self._tier is not None else "disabled"

    @property
    def listening(self) -> bool:
        """The change listener is connected (only then does the client fill its caches)."""
        return self._listener.healthy.is_set()

    @property
    def redis(self) -> Any:
        """The raw redis-py client (None without Redis) — for diagnostics and tests."""
        return self._tier.client if self._tier is not None else None

    @property
    def views_refreshed_at(self) -> datetime | None:
        """When the segment and cohort views were last refreshed (what their figures are as of)."""
        stamp = self._inv.views_stamp
        return datetime.fromisoformat(stamp) if stamp else None

    def flush_cache(self) -> None:
        """Make every cached entry unreachable for every process (new generation) and clear L1."""
        self._inv.resync("flush requested")

    def customer_key(self, customer_id: int) -> str:
        """The Redis key of a customer's cached LTV in the current generation."""
        return self.keys.customer(self._inv.generation, customer_id)

    # -- customers ---------------------------------------------------------------------------------------
    def get_ltv(self, customer_ref: str) -> CustomerLTV:
        """The customer's current LTV. Raises :class:`InvalidCustomerRef`, :class:`CustomerNotFound`,
        or :class:`ServiceUnavailable` (with ``exc.stale`` set when a last-known value exists)."""
        result = self.lookup(customer_ref)
        if result.stale:
            raise ServiceUnavailable("PostgreSQL is unreachable; only a stale value is available", result)
        return result.value

    def lookup(self, customer_ref: str) -> Lookup[CustomerLTV]:
        """Like :meth:`get_ltv`, but says which tier answered and, when PostgreSQL is unreachable,
        returns a last-known value flagged ``stale=True`` instead of raising."""
        started = perf_counter()
        ref = _validate_ref(customer_ref)
        customer_id = self.l1.customer_id(ref)
        if customer_id is not None and self._caches_trusted():
            value = self.l1.get(("c", customer_id))
            if value is not None:
                self.metrics.lookup("customer", "l1", perf_counter() - started)
                return Lookup(value, "l1")
        result = self._flight.do(("c", ref), lambda: self._fetch_customer(ref, customer_id))
        self.metrics.lookup("customer", result.tier, perf_counter() - started)
        return result

    def get_many(self, customer_refs: Iterable[str]) -> dict[str, CustomerLTV]:
        """LTVs of many customers: L1, then one Redis round trip (two for references this process
        has not seen), then one query per ``batch_size`` misses. Unknown references are absent
        from the result. :class:`ServiceUnavailable` if PostgreSQL is needed and unreachable
        (:meth:`lookup_many` serves stale values instead)."""
        results = self.lookup_many(customer_refs)
        if any(r.stale for r in results.values()):
            raise ServiceUnavailable("PostgreSQL is unreachable; some values are only available stale")
        return {ref: r.value for ref, r in results.items()}

    def lookup_many(self, customer_refs: Iterable[str]) -> dict[str, Lookup[CustomerLTV]]:
        """Like :meth:`get_many`, with the tier of each value; stale values (flagged) when
        PostgreSQL is unreachable, ServiceUnavailable only if a needed one has none."""
        started = perf_counter()
        refs = list(dict.fromkeys(_validate_ref(r) for r in customer_refs))
        found: dict[str, Lookup[CustomerLTV]] = {}
        missing: list[str] = []
        trusted = self._caches_trusted()
        for ref in refs:
            customer_id = self.l1.customer_id(ref)
            value = self.l1.get(("c", customer_id)) if customer_id is not None and trusted else None
            if value is not None:
                found[ref] = Lookup(value, "l1")
            else:
                missing.append(ref)
        since, gen = self.l1.mark(), self._inv.generation
        if missing and trusted and self._l2_usable():
            for ref, value in self._l2_customers(gen, missing).items():
                found[ref] = Lookup(value, "l2")
                self._store_l1(ref, value, since)
            missing = [r for r in missing if r not in found]
        if missing:
            try:
                loaded = self._load_customers(missing)
            except ServiceUnavailable as exc:
                for ref in missing:
                    stale = self._stale_customer(ref)
                    if stale is None:
                        raise ServiceUnavailable(f"PostgreSQL is unreachable and {ref!r} is not cached") from exc
                    found[ref] = stale
                loaded = {}
            self._store_customers(loaded, since, gen)
            found.update((ref, Lookup(v, "l3")) for ref, v in loaded.items())
        tiers = Counter(r.tier for r in found.values())
        worst = next((t for t in ("stale", "l3", "l2", "l1") if tiers[t]), "l1")
        self.metrics.observe("customers", worst, perf_counter() - started)
        for tier, n in tiers.items():
            self.metrics.count("customers", tier, n)
        return {ref: found[ref] for ref in refs if ref in found}

    def record_event(
        self,
        *,
        source: str,
        external_id: str,
        customer_ref: str,
        occurred_at: datetime,
        kind: str,
        amount: Decimal | int | str,
        currency: str,
        subscription_ref: str | None = None,
    ) -> RecordResult:
        """Ingest one revenue event idempotently (``ltv_db.ingest.record_event``) in its own
        transaction, retried on transient errors (safe: a replay is a no-op). This client's own
        caches are evicted at once (read-your-writes); the NOTIFY does it for everyone else."""
        from ltv_db.ingest import record_event

        ref = _validate_ref(customer_ref)

        def run(conn: psycopg.Connection) -> tuple[RecordResult, int | None]:
            with conn.transaction():
                result = record_event(
                    conn, source=source, external_id=external_id, customer_ref=ref, occurred_at=occurred_at,
                    kind=kind, amount=amount, currency=currency, subscription_ref=subscription_ref,
                )
                row = conn.execute("SELECT customer_id FROM ltv.customers WHERE customer_ref = %s", (ref,)).fetchone()
            return result, (row[0] if row else None)

        result, customer_id = self._run(run)
        if customer_id is not None:
            self._inv.apply(Change((customer_id,)), reason="local")
        return result

    def base_currency(self) -> str:
        return self._run(lambda conn: conn.execute("SELECT base_currency FROM ltv.settings").fetchone()[0])

    # -- aggregates --------------------------------------------------------------------------------------
    def segments(
        self, by: Sequence[str] = ("vendor_category", "country"), filters: Mapping[str, str] | None = None
    ) -> list[SegmentLTV]:
        """Segment LTV from ``ltv.segment_ltv``: one row per segment of the breakdown ``by`` these
        dimensions (vendor_category/category, country, plan, acquisition_channel/channel,
        signup_cohort/cohort), restricted by ``filters`` (dimension → value; ``plan`` filters
        the plan tier, ``billing_interval`` the interval). A filtered dimension is part of the
        breakdown, so by=("country",), filters={"category": "photographer"} reads the
        vendor_category+country rows of photographers. :class:`InvalidQuery` for an unknown
        dimension or a breakdown the view does not hold (it lists those it does)."""
        spec = self._segment_spec(by, filters or {})
        with self._counts_lock:
            self._segment_counts[json.dumps(spec)] += 1
        return self._aggregate("segments", "s", spec, self._segment_codec, lambda conn: self._load_segments(conn, spec))

    def cohorts(
        self, cohort_from: date | None = None, cohort_to: date | None = None, max_months: int | None = None
    ) -> list[CohortRetention]:
        """Cohort retention from ``ltv.cohort_retention`` (long format), optionally restricted to
        cohort months in [cohort_from, cohort_to] and months since signup ≤ max_months."""
        if max_months is not None and max_months < 0:
            raise InvalidQuery("max_months must be ≥ 0")
        spec = {
            "from": cohort_from.isoformat() if cohort_from else None,
            "to": cohort_to.isoformat() if cohort_to else None,
            "max": max_months,
        }
        return self._aggregate("cohorts", "h", spec, self._cohort_codec, lambda conn: self._load_cohorts(conn, spec))

    def warm_segments(self, top_n: int = 10) -> int:
        """Recompute the ``top_n`` most-queried segment queries (counted across every process in
        Redis, or in this process without Redis) into L2 and L1. Returns how many were warmed."""
        self._flush_segment_counts()
        specs: list[str] = []
        tier = self._tier
        if tier is not None and self._l2_usable():
            with contextlib.suppress(RedisUnavailable):  # then fall back to this process's counts
                top = tier.call(tier.client.zrevrange, self.keys.segment_queries, 0, top_n - 1)
                specs = [s.decode() for s in top]
        if not specs:
            with self._counts_lock:
                specs = [s for s, _ in self._segment_counts.most_common(top_n)]
        warmed = 0
        for raw in specs:
            spec = json.loads(raw)
            try:
                self._fetch_aggregate(
                    "segments", "s", spec, self._segment_codec,
                    lambda conn, spec=spec: self._load_segments(conn, spec), force=True,
                )
                warmed += 1
            except (ServiceUnavailable, InvalidQuery, psycopg.Error) as exc:
                log.warning("could not warm segments %s: %s", raw, exc)
        return warmed

    # -- metrics -----------------------------------------------------------------------------------------
    def serve_metrics(self, port: int = 9464, addr: str = "127.0.0.1") -> Any:
        """Serve this client's metrics (plus fleet-wide figures from Redis) on ``/metrics``."""
        if self._tier is not None:
            self.metrics.registry.register(FleetStatsCollector(self.cache_stats))
        return serve(port, self.metrics.registry, addr)

    def cache_stats(self) -> Any:
        """Fleet-wide cache statistics from Redis (``ltv_db.cache.CacheStats``), or None."""
        from ltv_db.cache import read_stats

        if self._tier is None:
            return None
        if self._subscriber is not None:
            self._subscriber.flush_stats()
        return read_stats(self._tier, self.keys)

    # -- customer internals ------------------------------------------------------------------------------
    def _l2_usable(self) -> bool:
        return self._tier is not None and self._inv.l2_trusted

    def _caches_trusted(self) -> bool:
        """Cached values may be served as fresh: our listener is up, or was up until less than
        ``l1_ttl`` ago. Past that, a change could have gone unheard (PostgreSQL unreachable from
        here but not from the writers), so lookups go to PostgreSQL and fall back to the cached
        value only flagged stale — L1's TTL bounds staleness even then."""
        if self._listener.healthy.is_set():
            return True
        since = self._listener.unhealthy_since
        return since is not None and time.monotonic() - since < self.options.l1_ttl

    def _fetch_customer(self, ref: str, customer_id: int | None) -> Lookup[CustomerLTV]:
        since, gen = self.l1.mark(), self._inv.generation
        token: str | None = LOCK_UNAVAILABLE
        tier = self._tier
        if tier is not None and self._l2_usable() and self._caches_trusted():
            value = self._l2_customers(gen, [ref], {ref: customer_id} if customer_id else None).get(ref)
            if value is not None:
                self._store_l1(ref, value, since)
                return Lookup(value, "l2")
            lock_key = self.keys.lock(f"c:{ref}")
            token = tier.try_lock(lock_key, self.options.lock_ttl_ms)
            if token is None:  # another process is computing it: wait a little for its result
                value = self._await_l2(lambda: self._l2_customers(self._inv.generation, [ref]).get(ref))
                if value is not None:
                    self._store_l1(ref, value, since)
                    return Lookup(value, "l2")
                token = LOCK_UNAVAILABLE
        try:
            try:
                loaded = self._load_customers([ref])
            except ServiceUnavailable as exc:
                stale = self._stale_customer(ref)
                if stale is None:
                    raise
                log.warning("serving a stale LTV for %s: %s", ref, exc)
                return stale
            if ref not in loaded:
                raise CustomerNotFound(f"no customer {ref!r}")
            if token not in (None, LOCK_UNAVAILABLE) and self._store_customers(
                loaded, since, gen, unlock=(self.keys.lock(f"c:{ref}"), token)
            ):
                token = None  # released in the same round trip as the writes
            else:
                self._store_customers(loaded, since, gen)
            return Lookup(loaded[ref], "l3")
        finally:
            if tier is not None and token is not None and token != LOCK_UNAVAILABLE:
                tier.unlock(self.keys.lock(f"c:{ref}"), token)

    def _await_l2(self, poll: Callable[[], T | None]) -> T | None:
        deadline = time.monotonic() + self.options.lock_wait
        pause = 0.001
        while time.monotonic() < deadline:
            time.sleep(pause)
            value = poll()
            if value is not None:
                return value
            pause = min(pause * 2, 0.01)
        return None

    def _l2_customers(
        self, gen: int, refs: Sequence[str], known: Mapping[str, int | None] | None = None
    ) -> dict[str, CustomerLTV]:
        """L2 reads in one round trip: MGET by customer_id for the references whose id this
        process knows, a script (ref → id → value) for the others; two if there are both."""
        assert self._tier is not None
        ids = {ref: (known or {}).get(ref) or self.l1.customer_id(ref) for ref in refs}
        blobs: dict[str, bytes] = {}
        unknown = [ref for ref, i in ids.items() if i is None]
        if unknown:
            replies = self._tier.get_by_ref([self.keys.ref(gen, r) for r in unknown], self.keys.customer_prefix(gen))
            for ref, reply in zip(unknown, replies or [None] * len(unknown), strict=True):
                if reply is not None and reply[1] is not None:
                    blobs[ref] = reply[1]
        wanted = [(ref, i) for ref, i in ids.items() if i is not None]
        if wanted:
            values = self._tier.mget([self.keys.customer(gen, i) for _, i in wanted]) or [None] * len(wanted)
            blobs.update((ref, blob) for (ref, _), blob in zip(wanted, values, strict=True) if blob is not None)
        found: dict[str, CustomerLTV] = {}
        for ref, blob in blobs.items():
            try:
                value = self._codec.decode(blob)
            except DecodeError as exc:  # another schema version or corrupt: a miss, overwritten by the fill
                log.debug("ignoring L2 entry for %s: %s", ref, exc)
                continue
            if value.customer_ref == ref:
                found[ref] = value
        return found

    def _store_l1(self, ref: str, value: CustomerLTV, since: int) -> None:
        self.l1.remember_last(("ref", ref), value)
        if self._listener.healthy.is_set():
            self.l1.remember_ref(ref, value.customer_id)
            self.l1.put(("c", value.customer_id), value, since=since, customer_id=value.customer_id)

    def _store_customers(
        self,
        values: Mapping[str, CustomerLTV],
        since: int,
        gen: int,
        unlock: tuple[str, str] | None = None,
    ) -> bool:
        """Fill L1 and L2 with freshly computed values, unless an invalidation raced them.

        With ``unlock`` (lock key, token) the stampede lock is released in the same round trip;
        returns True if that happened.
        """
        if not values:
            return False
        for ref, value in values.items():
            self._store_l1(ref, value, since)
        if not self._listener.healthy.is_set() or not self._l2_usable():
            return False
        assert self._tier is not None
        tier = self._tier
        fresh = {ref: v for ref, v in values.items() if self.l1.unchanged(since, v.customer_id)}
        if not fresh:
            return False
        now = int(time.time())
        ttl_ms, stale_ms = int(self.options.l2_ttl * 1000), int(self.options.stale_ttl * 1000)

        def build(pipe: Any) -> None:
            for ref, value in fresh.items():
                blob = self._codec.encode(value)
                pipe.set(self.keys.customer(gen, value.customer_id), blob, px=ttl_ms)
                pipe.set(self.keys.ref(gen, ref), value.customer_id, px=ttl_ms)
                pipe.set(self.keys.stale(ref), b"%d|" % now + blob, px=stale_ms)
            if unlock is not None:
                tier.unlock_script(keys=[unlock[0]], args=[unlock[1]], client=pipe)

        if tier.pipeline(build) is None:
            return False
        # An invalidation between the check and the write would have deleted before we wrote.
        raced = [v.customer_id for v in fresh.values() if not self.l1.unchanged(since, v.customer_id)]
        if raced:
            tier.delete(*(self.keys.customer(gen, i) for i in raced))
        return unlock is not None

    def _stale_customer(self, ref: str) -> Lookup[CustomerLTV] | None:
        last = self.l1.last_known(("ref", ref))
        if last is not None:
            return Lookup(last[0], "stale", stale=True, stored_at=last[1])
        if self._tier is None:
            return None
        blob = self._tier.get(self.keys.stale(ref))
        if blob is None:
            return None
        stamp, _, body = blob.partition(b"|")
        try:
            value = self._codec.decode(body)
        except DecodeError:
            return None
        return Lookup(value, "stale", stale=True, stored_at=float(stamp) if stamp.isdigit() else None)

    def _load_customers(self, refs: Sequence[str]) -> dict[str, CustomerLTV]:
        """L3: one query per ``batch_size`` references (so a big batch stays under the
        statement timeout), on one pooled connection."""
        size = max(1, self.options.batch_size)
        chunks = [list(refs[i : i + size]) for i in range(0, len(refs), size)]

        def query(conn: psycopg.Connection) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            with conn.cursor(row_factory=dict_row) as cur:
                for chunk in chunks:
                    cur.execute(_CUSTOMERS_SQL, (chunk,))
                    rows.extend(cur.fetchall())
            return rows

        rows = self._run(query)
        self.metrics.computation("customer")
        return {row["customer_ref"]: CustomerLTV(**{f: row[f] for f in _CUSTOMER_FIELDS}) for row in rows}

    # -- PostgreSQL --------------------------------------------------------------------------------------
    def _run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn(conn)`` on a pooled connection, retrying transient errors; ServiceUnavailable when
        PostgreSQL cannot answer (bounded: pool wait × attempts within the retry budget)."""
        opts = self.options
        wait = 0.1 if self._listener.down.is_set() else opts.pool_timeout
        retrying = Retrying(
            retry=retry_if_exception(_transient),
            stop=stop_after_attempt(opts.pg_attempts) | stop_after_delay(opts.pg_retry_budget),
            wait=wait_exponential_jitter(multiplier=0.02, max=0.5),
            before_sleep=lambda _state: self.metrics.pg_retry(),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt, self._pool.connection(timeout=wait) as conn:
                    result = fn(conn)
        except psycopg.OperationalError as exc:
            raise ServiceUnavailable(f"PostgreSQL is unavailable: {exc}") from exc
        return result

    # -- aggregate internals -----------------------------------------------------------------------------
    def _aggregate(
        self,
        kind: str,
        letter: str,
        spec: Mapping[str, Any],
        codec: Codec[Any],
        load: Callable[[psycopg.Connection], list[Any]],
    ) -> list[Any]:
        started = perf_counter()
        digest = _digest({**spec, "views": self._inv.views_stamp})  # a refresh changes every key
        value = self.l1.get((letter, digest)) if self._caches_trusted() else None
        if value is not None:
            self.metrics.lookup(kind, "l1", perf_counter() - started)
            return value
        result = self._flight.do((letter, digest), lambda: self._fetch_aggregate(kind, letter, spec, codec, load))
        self.metrics.lookup(kind, result.tier, perf_counter() - started)
        if result.stale:
            raise ServiceUnavailable(f"PostgreSQL is unreachable; only a stale {kind} result is available", result)
        return result.value

    def _fetch_aggregate(
        self,
        kind: str,
        letter: str,
        spec: Mapping[str, Any],
        codec: Codec[Any],
        load: Callable[[psycopg.Connection], list[Any]],
        *,
        force: bool = False,
    ) -> Lookup[list[Any]]:
        digest = _digest({**spec, "views": self._inv.views_stamp})  # a refresh changes every key
        key = (letter, digest)
        since, gen = self.l1.mark(), self._inv.generation
        tier = self._tier
        token: str | None = LOCK_UNAVAILABLE
        lock_key = self.keys.lock(f"{letter}:{digest}")

        def from_l2() -> list[Any] | None:
            assert tier is not None
            blob = tier.get(self.keys.aggregate(self._inv.generation, letter, digest))
            try:
                return codec.decode(blob) if blob is not None else None
            except DecodeError:
                return None

        if tier is not None and self._l2_usable() and self._caches_trusted() and not force:
            value = from_l2()
            if value is not None:
                if self._listener.healthy.is_set():
                    self.l1.put(key, value, since=since, customer_id=None)
                return Lookup(value, "l2")
            token = tier.try_lock(lock_key, self.options.lock_ttl_ms)
            if token is None:
                value = self._await_l2(from_l2)
                if value is not None:
                    return Lookup(value, "l2")
                token = LOCK_UNAVAILABLE
        try:
            try:
                value = self._run(load)
            except ServiceUnavailable:
                last = self.l1.last_known(key)
                if last is None:
                    raise
                return Lookup(last[0], "stale", stale=True, stored_at=last[1])
            self.metrics.computation(kind)
            self.l1.remember_last(key, value)
            if self._listener.healthy.is_set():
                self.l1.put(key, value, since=since, customer_id=None)
                if tier is not None and self._l2_usable() and self.l1.unchanged(since, None):
                    rkey = self.keys.aggregate(gen, letter, digest)
                    ttl = int(self.options.aggregate_ttl * 1000)
                    if tier.pipeline(lambda pipe: pipe.set(rkey, codec.encode(value), px=ttl)) is not None and (
                        not self.l1.unchanged(since, None)
                    ):
                        tier.delete(rkey)
            return Lookup(value, "l3")
        finally:
            if tier is not None and token is not None and token != LOCK_UNAVAILABLE:
                tier.unlock(lock_key, token)

    def _segment_spec(self, by: Sequence[str] | str, filters: Mapping[str, str]) -> dict[str, Any]:
        """Validated, canonical form of a segment query (also its cache identity)."""
        names = [b for b in by.split(",") if b.strip()] if isinstance(by, str) else list(by)
        dims: list[str] = []
        for name in names:
            dim = DIMENSION_ALIASES.get(str(name).strip().lower())
            if dim is None:
                raise InvalidQuery(f"unknown segment dimension {name!r}; use {', '.join(DIMENSION_ALIASES)}")
            if dim not in dims:
                dims.append(dim)
        where: dict[str, str] = {}
        for name, value in filters.items():
            column = FILTER_ALIASES.get(str(name).strip().lower())
            if column is None:
                raise InvalidQuery(f"unknown filter {name!r}; use {', '.join(FILTER_ALIASES)}")
            if not isinstance(value, str) or not value.strip():
                raise InvalidQuery(f"filter {name!r} needs a non-empty text value")
            where[column] = value.strip()
        used = set(dims) | {_FILTER_DIMENSION[c] for c in where}
        level = "+".join(d for d in SEGMENT_DIMENSIONS if d in used) or "total"
        return {"level": level, "by": dims, "filters": sorted(where.items())}

    def _load_segments(self, conn: psycopg.Connection, spec: Mapping[str, Any]) -> list[SegmentLTV]:
        stamp = self._inv.views_stamp
        if self._segment_levels is None or self._segment_levels[0] != stamp:
            rows = conn.execute("SELECT DISTINCT grouping_level FROM ltv.segment_ltv").fetchall()
            self._segment_levels = (stamp, frozenset(r[0] for r in rows))
        levels = self._segment_levels[1]
        if levels and spec["level"] not in levels:
            raise InvalidQuery(
                f"ltv.segment_ltv has no breakdown by {spec['level'].replace('+', ', ')}; "
                f"it has: {'; '.join(sorted(lv.replace('+', ', ') for lv in levels))}"
            )
        conditions = [sql.SQL("grouping_level = %s")]
        params: list[Any] = [spec["level"]]
        for column, value in spec["filters"]:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
        order = [sql.Identifier(c) for d in spec["by"] for c in SEGMENT_DIMENSIONS[d]] or [sql.SQL("1")]
        query = sql.SQL("SELECT {} FROM ltv.segment_ltv WHERE {} ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, _SEGMENT_FIELDS)), sql.SQL(" AND ").join(conditions),
            sql.SQL(", ").join(order),
        )
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return [SegmentLTV(**row) for row in cur.fetchall()]

    def _load_cohorts(self, conn: psycopg.Connection, spec: Mapping[str, Any]) -> list[CohortRetention]:
        conditions: list[sql.Composable] = []
        params: list[Any] = []
        if spec["from"]:
            conditions.append(sql.SQL("cohort_month >= %s"))
            params.append(date.fromisoformat(spec["from"]))
        if spec["to"]:
            conditions.append(sql.SQL("cohort_month <= %s"))
            params.append(date.fromisoformat(spec["to"]))
        if spec["max"] is not None:
            conditions.append(sql.SQL("months_since_signup <= %s"))
            params.append(spec["max"])
        query = sql.SQL("SELECT {} FROM ltv.cohort_retention WHERE {} ORDER BY {}").format(
            sql.SQL(", ").join(map(sql.Identifier, _COHORT_FIELDS)),
            sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("true"),
            sql.SQL("cohort_month, months_since_signup"),
        )
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            return [CohortRetention(**row) for row in cur.fetchall()]

    # -- warming ---------------------------------------------------------------------------------------
    def _schedule_warming(self, reason: str) -> None:
        """After a bulk change or a views refresh: warm the hot segments, in one process only."""
        if self.options.warm_top_n > 0 and not self._stop.is_set():
            with contextlib.suppress(RuntimeError):  # shutting down
                self._warmer.submit(self._warm_once, reason)

    def _warm_once(self, reason: str) -> None:
        # Let the generation bumps of every process settle, then let one process do the work:
        # the lock is not released, it expires, so no other process repeats the same warming.
        if self._stop.wait(0.2) or self._tier is None:
            return
        key = self.keys.lock(f"warm:{hashlib.sha1(reason.encode()).hexdigest()[:12]}")
        if self._tier.try_lock(key, 30_000) is None:
            return
        warmed = self.warm_segments(self.options.warm_top_n)
        log.info("warmed %d segment queries after %s", warmed, reason)

    def _flush_segment_counts(self) -> None:
        with self._counts_lock:
            counts = dict(self._segment_counts)
            self._segment_counts.clear()
        if not counts or self._tier is None:
            return

        def build(pipe: Any) -> None:
            for spec, n in counts.items():
                pipe.zincrby(self.keys.segment_queries, n, spec)

        if self._tier.pipeline(build) is None:
            with self._counts_lock:
                self._segment_counts.update(counts)


def _digest(spec: Mapping[str, Any]) -> str:
    return hashlib.sha1(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
