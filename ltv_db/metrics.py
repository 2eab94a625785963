"""Prometheus metrics of the Python client: hits per tier, lookup latency, breaker, invalidations.

Each :class:`~ltv_db.client.LTVClient` owns a :class:`ClientMetrics` with its own
``CollectorRegistry`` (so two clients in one process — as in the tests — never mix their
counts); pass a shared registry to aggregate. :func:`serve` exposes a registry over HTTP.

Besides the Prometheus counters, lookup counts are also kept as *pending deltas* that the
client adds to a Redis hash every few seconds (:meth:`ClientMetrics.drain_pending`). That
hash is the fleet-wide view `ltv-db cache stats` prints: every process's hits per tier,
without scraping each one.
"""

from __future__ import annotations

import threading
from collections import Counter as _Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# What a lookup can be for, and which tier answered it. "stale" = PostgreSQL was unreachable
# and a last-known value was served, flagged stale.
KINDS = ("customer", "customers", "segments", "cohorts")
TIERS = ("l1", "l2", "l3", "stale")
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}

# From 5 µs (an L1 hit) to 2.5 s (a retried database call): L1 ≤ 0.1 ms, L2 ≤ 1 ms and
# L3 ≤ 10 ms targets each fall on a bucket edge so p99s can be read off the histogram.
LATENCY_BUCKETS = (
    5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25,
    0.5, 1.0, 2.5,
)


class ClientMetrics:
    """The client's instruments, pre-bound to their label values (an L1 hit pays ~1 µs here)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        lookups = Counter(
            "ltv_client_lookups", "Lookups answered, by what was looked up and the tier that answered",
            ["kind", "tier"], registry=reg,
        )
        latency = Histogram(
            "ltv_client_lookup_seconds", "Lookup latency, by kind and the tier that answered",
            ["kind", "tier"], buckets=LATENCY_BUCKETS, registry=reg,
        )
        self._computations = Counter(
            "ltv_client_computations", "Database (L3) computations that filled the cache, by kind",
            ["kind"], registry=reg,
        )
        self._invalidations = Counter(
            "ltv_client_invalidations",
            "Invalidation events applied: ids (NOTIFY with customer ids), all (NOTIFY all / generation "
            "bump), pubsub (eviction message from another process), resync (missed notifications), "
            "local (this client's own write)",
            ["reason"], registry=reg,
        )
        self._breaker = Gauge(
            "ltv_client_redis_breaker_state", "Redis circuit breaker: 0 closed, 1 half-open, 2 open", registry=reg
        )
        self._redis_errors = Counter(
            "ltv_client_redis_errors", "Redis calls that failed or were refused by the open breaker", registry=reg
        )
        self._pg_retries = Counter(
            "ltv_client_pg_retries", "PostgreSQL calls retried after a transient error", registry=reg
        )
        self._bound = {
            (kind, tier): (lookups.labels(kind, tier), latency.labels(kind, tier)) for kind in KINDS for tier in TIERS
        }
        self._pending: _Tally[tuple[str, str]] = _Tally()
        self._pending_lock = threading.Lock()

    # -- recording ---------------------------------------------------------------------------------
    def lookup(self, kind: str, tier: str, seconds: float) -> None:
        """One lookup of ``kind`` answered by ``tier`` in ``seconds``."""
        counter, histogram = self._bound[(kind, tier)]
        counter.inc()
        histogram.observe(seconds)
        with self._pending_lock:
            self._pending[(kind, tier)] += 1

    def count(self, kind: str, tier: str, n: int) -> None:
        """``n`` items of a batch lookup answered by ``tier`` (its latency is observed once)."""
        self._bound[(kind, tier)][0].inc(n)
        with self._pending_lock:
            self._pending[(kind, tier)] += n

    def observe(self, kind: str, tier: str, seconds: float) -> None:
        self._bound[(kind, tier)][1].observe(seconds)

    def computation(self, kind: str) -> None:
        self._computations.labels(kind).inc()

    def invalidation(self, reason: str, count: int = 1) -> None:
        self._invalidations.labels(reason).inc(count)

    def breaker_state(self, state: str) -> None:
        self._breaker.set(BREAKER_STATES.get(state, 2))

    def redis_error(self) -> None:
        self._redis_errors.inc()

    def pg_retry(self) -> None:
        self._pg_retries.inc()

    # -- reading -----------------------------------------------------------------------------------
    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """Current value of a sample (e.g. ``value("ltv_client_computations_total", {"kind": "customer"})``)."""
        return self.registry.get_sample_value(name, dict(labels or {})) or 0.0

    def drain_pending(self) -> dict[tuple[str, str], int]:
        """Lookup counts since the last drain (the client adds them to the Redis stats hash)."""
        with self._pending_lock:
            pending = dict(self._pending)
            self._pending.clear()
        return pending

    def restore_pending(self, pending: Mapping[tuple[str, str], int]) -> None:
        """Put drained counts back after a failed flush, so none are lost."""
        with self._pending_lock:
            self._pending.update(pending)


class FleetStatsCollector(Collector):
    """Exposes the fleet-wide figures kept in Redis (see ``ltv_db.cache.CacheStats``).

    ``read`` returns the stats or ``None`` when Redis is unreachable (then nothing is exported
    rather than zeros that would look like real counts).
    """

    def __init__(self, read: Callable[[], Any]) -> None:
        self._read = read

    def collect(self) -> Iterable[Any]:
        stats = self._read()
        if stats is None:
            return []
        lookups = CounterMetricFamily(
            "ltv_cache_fleet_lookups", "Lookups by every client process sharing this cache", labels=["kind", "tier"]
        )
        for (kind, tier), n in sorted(stats.lookups.items()):
            lookups.add_metric([kind, tier], n)
        keys = GaugeMetricFamily("ltv_cache_keys", "Redis cache entries of the current generation", labels=["kind"])
        for kind, n in sorted(stats.keys.items()):
            keys.add_metric([kind], n)
        generation = GaugeMetricFamily("ltv_cache_generation", "Current cache generation (bumped on bulk changes)")
        generation.add_metric([], stats.generation or 0)
        return [lookups, keys, generation]


def serve(port: int, registry: CollectorRegistry, addr: str = "127.0.0.1") -> Any:
    """Start the /metrics HTTP endpoint in a daemon thread; returns the server (call ``shutdown()``)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
