"""The cache tiers behind :class:`ltv_db.client.LTVClient`: L1 in-process, L2 Redis.

* **L1** (:class:`L1Cache`) — a thread-safe ``cachetools.TTLCache`` (bounded entries, short
  TTL) plus a bounded ref → customer_id map and a bounded *last-known* store used only to serve
  a stale-but-flagged value while PostgreSQL is unreachable. It also keeps the invalidation
  log (:class:`InvalidationLog`) under the same lock, so "was this key invalidated while I was
  computing it?" and "store it" happen atomically — the guard that keeps a value read before a
  payment from being cached after the payment's eviction.
* **L2** (:class:`RedisTier`) — redis-py (hiredis parser) behind a ``pybreaker`` circuit
  breaker with 50 ms socket timeouts and no client-side retries: when Redis is down or slow,
  every call fails fast (or is refused by the open breaker) and the caller treats it as a miss.
  Values are stored with :class:`Codec`: a version tag derived from the dataclass's field names
  and types, then compact positional JSON. A tag mismatch or a corrupt entry decodes as a miss
  and is overwritten — never deserialised into the wrong shape.
* **Stampede protection**: :class:`SingleFlight` (one computation per key across the threads
  of a process) and :meth:`RedisTier.try_lock` (``SET NX PX``, across processes).

Key layout, under a namespace derived from the database (so clients of different databases can
share one Redis): ``{ns}:gen`` (the cache generation), ``{ns}:g{gen}:c:{customer_id}``,
``{ns}:g{gen}:r:{customer_ref}`` (→ customer_id), ``{ns}:g{gen}:s:{digest}`` (segments),
``{ns}:g{gen}:h:{digest}`` (cohorts), ``{ns}:stale:r:{customer_ref}`` (last known value, for
outages), ``{ns}:lock:…``, ``{ns}:stats`` (fleet hit counters), ``{ns}:segq`` (segment query
popularity, for warming), ``{ns}:db`` (which database incarnation the entries came from) and
the pub/sub channel ``{ns}:evict``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import threading
import time
import types
import typing
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar

import pybreaker
import redis
from cachetools import LRUCache, TTLCache
from psycopg.conninfo import conninfo_to_dict
from redis.backoff import NoBackoff
from redis.retry import Retry

from ltv_db.config import Settings, load_settings
from ltv_db.metrics import ClientMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Bump when the *encoding* changes; changes to a dataclass's fields change its tag by themselves.
SCHEMA_VERSION = 1


# -- configuration ---------------------------------------------------------------------------------
def resolve_redis_url(settings: Settings | None = None, *, start: bool = True) -> str | None:
    """LTV_REDIS_URL if set, else the private redis-server under LTV_HOME (started on demand).

    ``None`` when neither is available (no redis-server binary): the client then runs without L2.
    """
    from ltv_db.redis_server import LocalRedis, RedisServerError

    settings = settings or load_settings()
    if settings.redis_url:
        return settings.redis_url
    server = LocalRedis(settings.home)
    if start:
        try:
            server.start()
        except RedisServerError as exc:
            log.warning("no Redis (L2 cache disabled): %s", exc)
            return None
    return server.url()


def namespace_for(database_url: str) -> str:
    """A short, stable Redis key prefix for one database (host, port, dbname; never the password)."""
    params = conninfo_to_dict(database_url)
    identity = "|".join(str(params.get(k, "")) for k in ("host", "hostaddr", "port", "dbname"))
    return "ltv:" + hashlib.sha1(identity.encode()).hexdigest()[:10]


# -- serialisation -----------------------------------------------------------------------------------
class DecodeError(ValueError):
    """A cache entry of another schema version, or corrupt: to be treated as a miss."""


def _converters(tp: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(encode, decode) for one field type, for JSON."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp}")
        enc, dec = _converters(args[0])
        return (lambda v: None if v is None else enc(v)), (lambda v: None if v is None else dec(v))
    if origin is dict:
        return dict, lambda v: {str(k): str(x) for k, x in _expect(v, dict).items()}
    if tp is Decimal:
        return str, lambda v: Decimal(_expect(v, str))
    if tp is datetime:
        return datetime.isoformat, lambda v: datetime.fromisoformat(_expect(v, str))
    if tp is date:
        return date.isoformat, lambda v: date.fromisoformat(_expect(v, str))
    if tp is float:
        return float, lambda v: float(_expect(v, (int, float)))
    if tp is bool:
        return bool, lambda v: _expect(v, bool)
    if tp is int:
        return int, lambda v: _expect(v, int)
    if tp is str:
        return str, lambda v: _expect(v, str)
    raise TypeError(f"unsupported field type {tp}")


def _expect(value: Any, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecodeError(f"expected {kind}, got {type(value).__name__}")
    return value


class Codec(Generic[T]):
    """Versioned, compact serialisation of one dataclass (or a list of them).

    Format: ``<tag>|<json>``; the tag names the encoding version, the class and a hash of its
    field names and types, the JSON holds the field values by position (no names: compact).
    """

    def __init__(self, cls: type[T], *, many: bool = False) -> None:
        self.cls = cls
        self.many = many
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        self._names = [f.name for f in fields]
        self._conv = [_converters(hints[f.name]) for f in fields]
        shape = repr([(f.name, repr(hints[f.name])) for f in fields])
        digest = hashlib.sha1(shape.encode()).hexdigest()[:8]
        self.tag = f"v{SCHEMA_VERSION}:{cls.__name__}{'[]' if many else ''}:{digest}".encode()

    def _row(self, obj: Any) -> list[Any]:
        return [enc(getattr(obj, name)) for name, (enc, _) in zip(self._names, self._conv, strict=True)]

    def _obj(self, row: Any) -> T:
        if not isinstance(row, list) or len(row) != len(self._names):
            raise DecodeError("wrong number of fields")
        return self.cls(*(dec(v) for v, (_, dec) in zip(row, self._conv, strict=True)))

    def encode(self, value: Any) -> bytes:
        payload = [self._row(v) for v in value] if self.many else self._row(value)
        return self.tag + b"|" + json.dumps(payload, separators=(",", ":")).encode()

    def decode(self, blob: bytes) -> Any:
        """The value, or :class:`DecodeError` for another version's or a corrupt entry."""
        tag, sep, body = blob.partition(b"|")
        if not sep or tag != self.tag:
            raise DecodeError(f"cache entry tag {tag[:40]!r} is not {self.tag!r}")
        try:
            payload = json.loads(body)
            if self.many:
                return [self._obj(r) for r in _expect(payload, list)]
            return self._obj(payload)
        except (ValueError, TypeError, ArithmeticError) as exc:  # JSONDecodeError, bad Decimal/date, …
            raise DecodeError(f"corrupt cache entry: {exc}") from exc


# -- L1 ---------------------------------------------------------------------------------------------------
ALL = None  # an invalidation of everything (as opposed to a set of customer ids)


class InvalidationLog:
    """A sequence of recent invalidations, to tell whether a key changed since a mark.

    Not thread-safe by itself: :class:`L1Cache` calls it under its lock.
    """

    def __init__(self, keep: int = 4096) -> None:
        self.seq = 0
        self._events: deque[tuple[int, frozenset[int] | None]] = deque(maxlen=keep)

    def record(self, ids: Iterable[int] | None) -> None:
        self.seq += 1
        self._events.append((self.seq, None if ids is ALL else frozenset(ids)))

    def unchanged(self, since: int, customer_id: int | None) -> bool:
        """True when no invalidation since ``since`` touched ``customer_id`` (``None``: aggregates,
        which only an invalidation of everything touches)."""
        if self.seq == since:
            return True
        if not self._events or self._events[0][0] > since + 1:
            return False  # the events since the mark were trimmed: assume the worst
        for seq, ids in reversed(self._events):
            if seq <= since:
                break
            if ids is None or (customer_id is not None and customer_id in ids):
                return False
        return True


class L1Cache:
    """Thread-safe in-process tier: TTL + LRU values, ref → id map, last-known values."""

    def __init__(self, maxsize: int, ttl: float, last_known_maxsize: int | None = None) -> None:
        self._lock = threading.Lock()
        self._values: TTLCache[Hashable, Any] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._ids: LRUCache[str, int] = LRUCache(maxsize=maxsize)
        self._last: LRUCache[Hashable, tuple[Any, float]] = LRUCache(maxsize=last_known_maxsize or maxsize)
        self.log = InvalidationLog()

    # reads
    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            return self._values.get(key)

    def customer_id(self, ref: str) -> int | None:
        with self._lock:
            return self._ids.get(ref)

    def last_known(self, key: Hashable) -> tuple[Any, float] | None:
        with self._lock:
            return self._last.get(key)

    def mark(self) -> int:
        with self._lock:
            return self.log.seq

    def unchanged(self, since: int, customer_id: int | None) -> bool:
        with self._lock:
            return self.log.unchanged(since, customer_id)

    # writes
    def remember_ref(self, ref: str, customer_id: int) -> None:
        with self._lock:
            self._ids[ref] = customer_id

    def put(self, key: Hashable, value: Any, *, since: int, customer_id: int | None) -> bool:
        """Store unless an invalidation since ``since`` touched it (checked atomically)."""
        with self._lock:
            if not self.log.unchanged(since, customer_id):
                return False
            self._values[key] = value
            return True

    def remember_last(self, key: Hashable, value: Any, stored_at: float | None = None) -> None:
        """Keep ``value`` as the last known one (served, flagged stale, only if PostgreSQL is down)."""
        with self._lock:
            self._last[key] = (value, time.time() if stored_at is None else stored_at)

    def invalidate(self, ids: Iterable[int] | None) -> None:
        """Evict these customers (``None``: everything but the last-known store) and log it."""
        with self._lock:
            if ids is ALL:
                self.log.record(ALL)
                self._values.clear()
                self._ids.clear()
                return
            ids = list(ids)
            self.log.record(ids)
            for customer_id in ids:
                self._values.pop(("c", customer_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


# -- L2 ---------------------------------------------------------------------------------------------------
class Keys:
    """Redis key names under one namespace (see the module docstring)."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.generation = f"{namespace}:gen"
        self.channel = f"{namespace}:evict"
        self.stats = f"{namespace}:stats"
        self.segment_queries = f"{namespace}:segq"
        self.database = f"{namespace}:db"  # identity of the database the entries came from

    def customer(self, gen: int, customer_id: int) -> str:
        return f"{self.customer_prefix(gen)}{customer_id}"

    def customer_prefix(self, gen: int) -> str:
        return f"{self.ns}:g{gen}:c:"

    def ref(self, gen: int, customer_ref: str) -> str:
        return f"{self.ns}:g{gen}:r:{customer_ref}"

    def aggregate(self, gen: int, kind: str, digest: str) -> str:
        return f"{self.ns}:g{gen}:{kind}:{digest}"

    def stale(self, customer_ref: str) -> str:
        return f"{self.ns}:stale:r:{customer_ref}"

    def lock(self, what: str) -> str:
        return f"{self.ns}:lock:{what}"

    def warm_lock(self, gen: int) -> str:
        return f"{self.ns}:lock:warm:{gen}"

    def generation_pattern(self, gen: int) -> str:
        return f"{self.ns}:g{gen}:*"


class RedisUnavailable(Exception):
    """Internal: a Redis call failed or the breaker refused it (callers treat it as a miss)."""


# Release a lock only if we still hold it; bump the generation to a value never used before,
# even across a Redis restart from an old snapshot (max of old + 1 and the server's clock in ms).
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_BUMP = (
    "local t = redis.call('time') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local gen = math.max((tonumber(redis.call('get', KEYS[1])) or 0) + 1, now) "
    "redis.call('set', KEYS[1], gen) return gen"
)

# Read customers by reference in one round trip: ref key → customer_id → value key (prefix ..
# id). The value keys are computed inside the script, so this needs a single Redis (not Cluster).
_BY_REF = (
    "local out = {} "
    "for i, key in ipairs(KEYS) do "
    "  local id = redis.call('get', key) "
    "  if id then out[i] = {id, redis.call('get', ARGV[1] .. id) or false} else out[i] = false end "
    "end return out"
)

LOCK_UNAVAILABLE = "unavailable"  # try_lock: Redis could not be asked (compute without the lock)


class _BreakerListener(pybreaker.CircuitBreakerListener):
    def __init__(self, metrics: ClientMetrics, on_open: Callable[[], None]) -> None:
        self._metrics = metrics
        self._on_open = on_open

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        name = new_state.name if new_state is not None else "closed"
        self._metrics.breaker_state(name)
        if name == "open":
            log.warning("Redis circuit breaker open")
            self._on_open()
        else:
            log.info("Redis circuit breaker %s", name)


class RedisTier:
    """Redis behind a circuit breaker. Every method fails fast and never raises Redis errors:
    reads return ``None`` (a miss), writes return ``False``."""

    def __init__(
        self,
        url: str,
        *,
        metrics: ClientMetrics,
        timeout: float = 0.05,
        fail_max: int = 3,
        reset_timeout: float = 1.0,
    ) -> None:
        self.url = url
        self._metrics = metrics
        # Called when the breaker opens: whatever happened to Redis meanwhile (a restart from an
        # old snapshot, missed deletes) is unknown, so the owner stops trusting its contents.
        self.on_open: Callable[[], None] = lambda: None
        # No client-side retries: the breaker, not a retry loop, decides when to try again.
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            exclude=[redis.exceptions.ResponseError],  # the server answered: Redis is up
            listeners=[_BreakerListener(metrics, lambda: self.on_open())],
            name="redis",
        )
        metrics.breaker_state("closed")
        self.unlock_script = self.client.register_script(_UNLOCK)  # also usable on a pipeline
        self._bump = self.client.register_script(_BUMP)
        self._by_ref = self.client.register_script(_BY_REF)

    @property
    def state(self) -> str:
        return self.breaker.current_state

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args)`` through the breaker; :class:`RedisUnavailable` on any failure."""
        try:
            return self.breaker.call(fn, *args, **kwargs)
        except (redis.RedisError, pybreaker.CircuitBreakerError, OSError) as exc:
            self._metrics.redis_error()
            raise RedisUnavailable(str(exc)) from exc

    def pipeline(self, build: Callable[[Any], None]) -> list[Any] | None:
        """Run the commands ``build`` queues on a (non-transactional) pipeline in one round trip."""

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            build(pipe)
            return pipe.execute()

        try:
            return self.call(run)
        except RedisUnavailable:
            return None

    def get(self, key: str) -> bytes | None:
        try:
            return self.call(self.client.get, key)
        except RedisUnavailable:
            return None

    def mget(self, keys: Sequence[str]) -> list[bytes | None] | None:
        if not keys:
            return []
        try:
            return self.call(self.client.mget, list(keys))
        except RedisUnavailable:
            return None

    def get_by_ref(self, ref_keys: Sequence[str], value_prefix: str) -> list[tuple[int, bytes | None] | None] | None:
        """For each ref key: (customer_id, value blob or None), or None if the ref is unknown —
        one round trip; None altogether if Redis is out."""
        if not ref_keys:
            return []
        try:
            replies = self.call(self._by_ref, keys=list(ref_keys), args=[value_prefix])
        except RedisUnavailable:
            return None
        out: list[tuple[int, bytes | None] | None] = []
        for reply in replies:
            if isinstance(reply, list) and reply and isinstance(reply[0], bytes) and reply[0].isdigit():
                out.append((int(reply[0]), reply[1] if len(reply) > 1 else None))
            else:
                out.append(None)
        return out

    def delete(self, *keys: str) -> bool:
        try:
            self.call(self.client.delete, *keys)
            return True
        except RedisUnavailable:
            return False

    def try_lock(self, key: str, ttl_ms: int) -> str | None:
        """A token if we now hold ``key``; ``None`` if someone else does; LOCK_UNAVAILABLE if Redis is out."""
        token = uuid.uuid4().hex
        try:
            return token if self.call(self.client.set, key, token, nx=True, px=ttl_ms) else None
        except RedisUnavailable:
            return LOCK_UNAVAILABLE

    def unlock(self, key: str, token: str) -> None:
        if token == LOCK_UNAVAILABLE:
            return
        with contextlib.suppress(RedisUnavailable):  # else it expires by itself (PX)
            self.call(self.unlock_script, keys=[key], args=[token])

    def generation(self, key: str) -> int | None:
        """The current generation; ``None`` if unset; RedisUnavailable if Redis is out."""
        raw = self.call(self.client.get, key)
        return int(raw) if raw is not None else None

    def run_id(self) -> str:
        """The server's run id: it changes whenever Redis restarts (RedisUnavailable if it is out)."""
        return str(self.call(self.client.info, "server")["run_id"])

    def bump_generation(self, key: str) -> int:
        """A new generation (RedisUnavailable if Redis is out)."""
        return int(self.call(self._bump, keys=[key]))

    def close(self) -> None:
        self.client.close()


# -- stampede protection ----------------------------------------------------------------------------------
class SingleFlight:
    """At most one concurrent computation per key in this process; the others wait for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future[Any]] = {}

    def do(self, key: Hashable, fn: Callable[[], T], timeout: float | None = None) -> T:
        with self._lock:
            future = self._calls.get(key)
            leader = future is None
            if leader:
                future = self._calls[key] = Future()
        assert future is not None
        if not leader:
            return future.result(timeout=timeout)
        try:
            result = fn()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            with self._lock:
                del self._calls[key]


# -- fleet statistics -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheStats:
    """What `ltv-db cache stats` prints: read from Redis, so it covers every client process.

    ``lookups`` are the counts every client adds to ``{ns}:stats`` every few seconds and when
    it closes; ``keys`` counts entries of the current generation by kind.
    """

    namespace: str
    generation: int | None
    keys: dict[str, int]
    lookups: dict[tuple[str, str], int]

    def hit_ratio(self, kind: str) -> dict[str, float]:
        """Share of ``kind`` lookups answered by each tier."""
        total = sum(n for (k, _), n in self.lookups.items() if k == kind)
        return {t: n / total for (k, t), n in sorted(self.lookups.items()) if k == kind and total}


KEY_KINDS = {"c": "customers", "r": "refs", "s": "segments", "h": "cohorts"}


def flush_stats(tier: RedisTier, keys: Keys, pending: dict[tuple[str, str], int]) -> bool:
    """Add this process's lookup counts to the fleet hash; False (keep them) if Redis is out."""
    if not pending:
        return True

    def build(pipe: Any) -> None:
        for (kind, t), n in pending.items():
            pipe.hincrby(keys.stats, f"{kind}|{t}", n)

    return tier.pipeline(build) is not None


def read_stats(tier: RedisTier, keys: Keys) -> CacheStats | None:
    """Fleet statistics, or ``None`` when Redis is unreachable."""
    try:
        gen = tier.generation(keys.generation)
        counters = tier.call(tier.client.hgetall, keys.stats)
        counts = dict.fromkeys(KEY_KINDS.values(), 0)
        counts["stale"] = 0
        if gen is not None:
            for key in tier.call(lambda: list(tier.client.scan_iter(keys.generation_pattern(gen), count=1000))):
                kind = KEY_KINDS.get(key.decode().rsplit(":", 2)[-2])
                if kind:
                    counts[kind] += 1
        counts["stale"] = len(tier.call(lambda: list(tier.client.scan_iter(keys.stale("*"), count=1000))))
    except RedisUnavailable:
        return None
    lookups: dict[tuple[str, str], int] = {}
    for field, n in counters.items():
        kind, _, t = field.decode().partition("|")
        lookups[(kind, t)] = int(n)
    return CacheStats(namespace=keys.ns, generation=gen, keys=counts, lookups=lookups)
