"""Cache invalidation: PostgreSQL ``NOTIFY ltv_changed`` → Redis deletes + pub/sub → every L1.

The database sends, after each statement that changes customers' figures, ``NOTIFY
ltv_changed`` with ``{"ids": [customer_id, …]}`` (split below 8000 bytes) or ``{"all": true}``
(bulk changes, refits). Every :class:`~ltv_db.client.LTVClient` runs two daemon threads:

* :class:`ChangeListener` — ``LISTEN ltv_changed`` on its own autocommit connection. For ids it
  evicts its own L1, deletes ``{ns}:g{gen}:c:{id}`` in Redis and PUBLISHes the ids on
  ``{ns}:evict`` in the same round trip; for ``all`` it bumps the cache generation (a Redis key
  that is part of every cache key, so every old entry becomes unreachable at once) and clears L1.
* :class:`EvictionSubscriber` — SUBSCRIBEs to ``{ns}:evict`` and evicts L1 on messages from
  other processes; once a second it re-reads the generation (a lost pub/sub message then costs
  at most a second) and flushes the hit counters to Redis.

The BI views behind segments and cohorts change only when ``ltv.refresh_views()``
runs (pg_cron), which sends no notification: the listener reads
``max(ltv.view_refreshes.last_refreshed_at)`` every 2 s, and that stamp is part of every
segment / cohort cache key, so a refresh makes earlier entries unreachable in every process
within 2 s — and one process then warms the most-queried segment queries.

**Staleness bound.** After a payment commits, the NOTIFY reaches every listener within
milliseconds, so a client returns the old value for well under the 1 s target (measured:
``benchmarks/RESULTS.md``). Each process evicts its own L1 from its own listener, so this holds
for L1 even while Redis (and pub/sub) is down; L1's TTL (5 s by default) is the fallback bound
if both the listener and pub/sub of a process are broken. Nothing is stale forever:

* **Missed notifications** — when the listener reconnects, or the pub/sub connection
  reconnects, the process clears its L1 and bumps the generation (:meth:`Invalidator.resync`).
  While its listener is down a client serves but never *fills* a cache: it cannot guarantee
  it would hear about a change.
* **Redis unreachable** — when the circuit breaker opens, or an eviction's delete fails, L2 is
  marked untrusted (neither read nor written). Once a second :meth:`Invalidator.tick` checks
  whether it is back: the same server (run id) with the same generation and no eviction missed
  meanwhile is trusted again as it is; anything else (a restart, a missed delete) gets a new
  generation first.
* **A value computed before the payment, stored after its eviction** — the classic
  read-through race. Every store is guarded by the invalidation log: a key invalidated since
  its computation began is not stored (checked atomically with the L1 store); Redis stores are
  re-checked after the write and deleted if an invalidation slipped in between. The log is
  written both before and after the Redis delete, so no interleaving leaves a stale entry.
* **Redis restarted** (even from an old snapshot that still holds deleted entries) — its run id
  changed, so the generation is bumped; generations are ``max(old + 1, server ms clock)``, never
  reused, and one that goes backwards is bumped again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ltv_db.cache import ALL, Keys, L1Cache, RedisTier, RedisUnavailable, flush_stats
from ltv_db.metrics import ClientMetrics

log = logging.getLogger(__name__)

CHANNEL = "ltv_changed"


@dataclass(frozen=True)
class Change:
    """What changed: these customer ids, or (``ids is None``) everything."""

    ids: tuple[int, ...] | None


def parse_payload(payload: str) -> Change:
    """Decode a ``ltv_changed`` payload; anything unexpected invalidates everything (safe)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return Change(None)
    if isinstance(data, dict) and data.get("all") is not True:
        ids = data.get("ids")
        if isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return Change(tuple(ids))
    return Change(None)


class Invalidator:
    """Owns the cache generation and applies invalidations to L1, Redis and the other processes."""

    def __init__(self, l1: L1Cache, tier: RedisTier | None, keys: Keys, metrics: ClientMetrics) -> None:
        self._l1 = l1
        self._tier = tier
        self._keys = keys
        self._metrics = metrics
        self.origin = uuid.uuid4().hex[:12]  # so a process ignores its own pub/sub messages
        self._lock = threading.Lock()
        self._generation = 0
        self._l2_trusted = False
        self._missed_delete = False  # an eviction could not reach Redis: only a new generation helps
        self._redis_run_id: str | None = None  # to tell a Redis that came back from one that restarted
        self.on_bulk_change: Callable[[], None] | None = None  # e.g. warm the hot segments
        self.on_views_refreshed: Callable[[str | None], None] | None = None
        self.views_stamp: str | None = None  # when the BI views were last refreshed
        self._views_seen = False
        if tier is not None:
            tier.on_open = self.redis_lost

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def l2_trusted(self) -> bool:
        """L2 may be read and written: the generation is known and no delete was missed."""
        return self._l2_trusted

    # -- start-up and resynchronisation ------------------------------------------------------------
    def redis_lost(self) -> None:
        """Redis stopped answering (the breaker opened): do not read or write it again until
        :meth:`tick` (once a second) finds it back — the same server with the same generation
        and no eviction missed meanwhile, or else a new generation in place."""
        self._l2_trusted = False

    def initialise(self) -> None:
        """Adopt Redis's current generation (creating one if there is none)."""
        if self._tier is None:
            return
        try:
            run_id = self._tier.run_id()
            gen = self._tier.generation(self._keys.generation)
            if gen is None:
                gen = self._tier.bump_generation(self._keys.generation)
        except RedisUnavailable:
            self._l2_trusted = False
            return
        with self._lock:
            self._generation = gen
            self._redis_run_id = run_id
            self._l2_trusted = True

    def check_database(self, identity: str) -> None:
        """The namespace comes from host, port and database name; a database dropped and
        re-created (or restored) under the same name is another database. Its identity (cluster
        system id and database OID) is kept in Redis: a different one means every entry came
        from the old database, so bump the generation."""
        if self._tier is None:
            return
        try:
            known = self._tier.call(self._tier.client.get, self._keys.database)
        except RedisUnavailable:
            return  # checked again at the next (re)connect; until then nothing is cached
        if known is not None and known.decode() != identity:
            self.resync("the database was re-created or restored")
        if known is None or known.decode() != identity:
            with contextlib.suppress(RedisUnavailable):
                self._tier.call(self._tier.client.set, self._keys.database, identity)

    def resync(self, reason: str) -> None:
        """Notifications may have been missed: clear L1 and make every L2 entry unreachable."""
        log.info("cache resync: %s", reason)
        self._metrics.invalidation("resync")
        self._l1.invalidate(ALL)
        self._bump_and_publish()
        self._l1.invalidate(ALL)

    def _bump_and_publish(self) -> None:
        if self._tier is None:
            return
        try:
            run_id = self._tier.run_id()
            gen = self._tier.bump_generation(self._keys.generation)
        except RedisUnavailable:
            self._l2_trusted = False
            return
        with self._lock:
            self._generation = max(self._generation, gen)
            self._redis_run_id = run_id
            self._missed_delete = False
            self._l2_trusted = True
        self._publish({"all": True, "gen": gen})

    # -- invalidations -----------------------------------------------------------------------------
    def apply(self, change: Change, reason: str = "ids") -> None:
        """A change notified by PostgreSQL (or made by this client): evict it everywhere."""
        if change.ids is None:
            self._metrics.invalidation("all")
            self._l1.invalidate(ALL)
            self._bump_and_publish()
            self._l1.invalidate(ALL)
            if reason == "ids" and self.on_bulk_change is not None:
                self.on_bulk_change()
            return
        if not change.ids:
            return
        self._metrics.invalidation(reason)
        ids = change.ids
        self._l1.invalidate(ids)
        if self._tier is not None:
            gen = self._generation
            message = json.dumps({"o": self.origin, "ids": list(ids)}, separators=(",", ":"))

            def build(pipe: Any) -> None:
                pipe.delete(*(self._keys.customer(gen, i) for i in ids))
                pipe.publish(self._keys.channel, message)

            if self._tier.pipeline(build) is None:
                self._missed_delete = True  # the delete may not have happened: distrust L2 until a bump
                self._l2_trusted = False
        self._l1.invalidate(ids)

    def views_refreshed(self, stamp: str | None) -> None:
        """The BI views were (re)freshed at ``stamp`` (ltv.view_refreshes). Segment
        and cohort cache keys include the stamp, so earlier refreshes' entries are unreachable
        from now on — in every process within one poll interval, with no message needed."""
        if self._views_seen and stamp == self.views_stamp:
            return
        first, self._views_seen = not self._views_seen, True
        self.views_stamp = stamp
        if not first:
            self._metrics.invalidation("views")
            if self.on_views_refreshed is not None:
                self.on_views_refreshed(stamp)

    def on_message(self, raw: bytes | str) -> None:
        """An eviction published by another process."""
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if data.get("o") == self.origin:
            return
        self._metrics.invalidation("pubsub")
        ids = data.get("ids")
        if isinstance(ids, list) and data.get("all") is not True:
            self._l1.invalidate(i for i in ids if isinstance(i, int))
            return
        gen = data.get("gen")
        with self._lock:
            if isinstance(gen, int) and gen > self._generation:
                self._generation = gen
        self._l1.invalidate(ALL)

    def tick(self) -> None:
        """Once a second: catch a generation change whose message was lost; retry a missed bump."""
        if self._tier is None:
            return
        try:
            run_id = self._tier.run_id()
            gen = self._tier.generation(self._keys.generation)
        except RedisUnavailable:
            return
        if not self._l2_trusted:
            if not self._missed_delete and run_id == self._redis_run_id and gen == self._generation:
                self._l2_trusted = True  # Redis was only unreachable: its contents are as we left them
            else:
                # Only L2 is suspect — L1 was evicted locally — so a new generation is enough:
                # no L1 flush every second of an outage.
                self._bump_and_publish()
            return
        if run_id != self._redis_run_id:
            self.resync("Redis restarted")
            return
        if gen is None or gen < self._generation:
            self.resync("the generation went missing or backwards (Redis restarted)")
        elif gen != self._generation:
            with self._lock:
                self._generation = gen
            self._metrics.invalidation("all")
            self._l1.invalidate(ALL)

    def _publish(self, data: dict[str, Any]) -> None:
        if self._tier is None:
            return
        message = json.dumps({"o": self.origin, **data}, separators=(",", ":"))
        with contextlib.suppress(RedisUnavailable):  # else the others re-read the generation within 1 s
            self._tier.call(self._tier.client.publish, self._keys.channel, message)


def _backoff(previous: float) -> float:
    return min(previous * 2, 1.0)


# The BI views are refreshed by ltv.refresh_views() (pg_cron), which sends no NOTIFY:
# their refresh time is polled instead — one indexed read of a handful of rows.
VIEWS_STAMP_SQL = "SELECT max(last_refreshed_at)::text FROM ltv.view_refreshes"
# What makes this database this one: the cluster's system identifier and the database's OID.
DATABASE_IDENTITY_SQL = """
SELECT (SELECT system_identifier FROM pg_control_system())::text || ':' || d.oid::text
FROM pg_database d WHERE d.datname = current_database()
"""


class ChangeListener(threading.Thread):
    """``LISTEN ltv_changed`` on a dedicated autocommit connection; reconnects with backoff.
    Every ``views_poll`` seconds it also reads when the BI views were last refreshed.

    ``healthy`` is set while the LISTEN is established — the client fills caches only then;
    ``unhealthy_since`` (monotonic) says since when it is not.
    ``down`` is set after a failed connection attempt (PostgreSQL looks unreachable).
    ``ready`` is set once the first attempt finished, either way.
    """

    def __init__(
        self, conninfo: str, invalidator: Invalidator, stop: threading.Event, *, views_poll: float = 2.0
    ) -> None:
        super().__init__(name="ltv-cache-listener", daemon=True)
        self._conninfo = conninfo
        self._invalidator = invalidator
        self._halt = stop
        self._views_poll = views_poll
        self._views_table = True  # until we learn the database has no ltv.view_refreshes
        self.healthy = threading.Event()
        self.unhealthy_since: float | None = time.monotonic()
        self.down = threading.Event()
        self.ready = threading.Event()
        self._connected_before = False

    def _poll_views(self, conn: psycopg.Connection) -> None:
        if not self._views_table:
            return
        try:
            row = conn.execute(VIEWS_STAMP_SQL).fetchone()
        except psycopg.errors.UndefinedTable:
            self._views_table = False
            return
        self._invalidator.views_refreshed(row[0] if row else None)

    def run(self) -> None:
        delay = 0.05
        while not self._halt.is_set():
            try:
                # TCP keepalives: a silently dead peer (no RST) is noticed in ~20 s, then resync.
                with psycopg.connect(
                    self._conninfo, autocommit=True, application_name="ltv-db cache listener",
                    keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=2,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.down.clear()
                    if self._connected_before:
                        self._invalidator.resync("the change listener reconnected")
                    self._connected_before = True
                    self._invalidator.check_database(conn.execute(DATABASE_IDENTITY_SQL).fetchone()[0])
                    self._poll_views(conn)
                    polled = time.monotonic()
                    self.unhealthy_since = None
                    self.healthy.set()
                    self.ready.set()
                    delay = 0.05
                    while not self._halt.is_set():
                        for notify in conn.notifies(timeout=0.1):
                            self._handle(notify.payload)
                        if time.monotonic() - polled >= self._views_poll:
                            polled = time.monotonic()
                            self._poll_views(conn)
            except psycopg.Error as exc:
                if not self._halt.is_set():
                    log.warning("cache listener: %s; reconnecting in %.2f s", exc, delay)
                    self.down.set()
            finally:
                if self.healthy.is_set():
                    self.unhealthy_since = time.monotonic()
                self.healthy.clear()
                self.ready.set()
            self._halt.wait(delay)
            delay = _backoff(delay)

    def _handle(self, payload: str) -> None:
        try:
            self._invalidator.apply(parse_payload(payload))
        except Exception:  # never let a bug kill the thread; fall back to a full resync
            log.exception("cache listener failed to apply %r", payload[:200])
            self._invalidator.resync("an invalidation failed")


class EvictionSubscriber(threading.Thread):
    """SUBSCRIBE to the eviction channel; evict L1; tick once a second; flush stats periodically."""

    def __init__(
        self,
        url: str,
        invalidator: Invalidator,
        keys: Keys,
        tier: RedisTier,
        metrics: ClientMetrics,
        stop: threading.Event,
        *,
        stats_interval: float = 5.0,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="ltv-cache-subscriber", daemon=True)
        # A connection of its own: reads block up to the poll interval, never behind the breaker.
        self._client = redis.Redis.from_url(
            url, socket_timeout=2.0, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
        )
        self._invalidator = invalidator
        self._keys = keys
        self._tier = tier
        self._metrics = metrics
        self._halt = stop
        self._stats_interval = stats_interval
        self._on_tick = on_tick
        self._pubsub: Any = None
        self._connected_before = False

    def connect(self) -> bool:
        """Subscribe (then adopt or resync the generation); False if Redis is unreachable."""
        try:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self._keys.channel)
        except (redis.RedisError, OSError) as exc:
            log.debug("eviction subscriber: %s", exc)
            return False
        self._pubsub = pubsub
        if self._connected_before:
            self._invalidator.resync("the pub/sub connection reconnected")
        else:
            self._invalidator.initialise()
        self._connected_before = True
        return True

    def _disconnect(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
        self._pubsub = None

    def run(self) -> None:
        delay = 0.05
        last_tick = last_flush = time.monotonic()
        try:
            while not self._halt.is_set():
                if self._pubsub is None and not self.connect():
                    self._halt.wait(delay)
                    delay = _backoff(delay)
                else:
                    delay = 0.05
                    try:
                        message = self._pubsub.get_message(timeout=0.1)
                        if message is not None and message.get("type") == "message":
                            self._invalidator.on_message(message["data"])
                    except (redis.RedisError, OSError, ValueError) as exc:
                        log.warning("eviction subscriber lost Redis: %s", exc)
                        self._disconnect()
                now = time.monotonic()
                if now - last_tick >= 1.0:
                    last_tick = now
                    self._invalidator.tick()
                    if self._on_tick is not None:
                        self._on_tick()
                if now - last_flush >= self._stats_interval:
                    last_flush = now
                    self.flush_stats()
        finally:
            self._disconnect()
            self._client.close()

    def flush_stats(self) -> None:
        pending = self._metrics.drain_pending()
        if not flush_stats(self._tier, self._keys, pending):
            self._metrics.restore_pending(pending)
