"""`ltv-db segments | serve-metrics | cache stats | cache flush`: commands served through the
cached :class:`~ltv_db.client.LTVClient` (registered by ltv_db.cli; `ltv-db ltv` lives in
ltv_db.cli_models and uses the client too)."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err = Console(stderr=True)

cache_app = typer.Typer(help="The Redis result cache shared by every client process.", no_args_is_help=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _parse_filters(values: list[str]) -> dict[str, str]:
    filters = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise _fail(f"--filter takes DIMENSION=VALUE, got {item!r}", 2)
        filters[name.strip()] = value.strip()
    return filters


def segments(
    by: Annotated[
        str, typer.Option(help="dimensions, comma separated: category, country, plan, channel, cohort")
    ] = "category,country",
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", help="DIMENSION=VALUE (repeatable), e.g. category=photographer")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line instead of a table")] = False,
) -> None:
    """Segment LTV from ltv.segment_ltv (through the cache), the other dimensions rolled up."""
    from ltv_db.client import InvalidQuery, LTVClient, ServiceUnavailable

    dims = [d.strip() for d in by.split(",") if d.strip()]
    filters = _parse_filters(filter_ or [])
    with LTVClient(warm_top_n=0) as client:
        try:
            rows = client.segments(by=dims, filters=filters)
        except InvalidQuery as exc:
            raise _fail(str(exc), 2) from exc
        except ServiceUnavailable as exc:
            raise _fail(str(exc), 3) from exc
        base = client.base_currency()
        refreshed = client.views_refreshed_at
    if as_json:
        for row in rows:
            print(json.dumps(dataclasses.asdict(row), default=str))
        return
    from ltv_db.client import SEGMENT_COLUMNS

    shown = [c for c in SEGMENT_COLUMNS if any(getattr(r, c) != "all" for r in rows)]
    table = Table(title=f"LTV by {', '.join(dims) or 'everything'} ({base})")
    for column in shown:
        table.add_column(column)
    for column in ("customers", "mean", "median", "p90", "total", "LTV:CAC", "payback (months)"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            *(getattr(r, c) for c in shown), f"{r.customers:,}", _money(r.mean_ltv), _money(r.median_ltv),
            _money(r.p90_ltv), _money(r.total_ltv), _ratio(r.ltv_to_cac), _ratio(r.cac_payback_months),
        )
    console.print(table)
    if not rows:
        err.print("no segment matches")
    if refreshed is not None:
        err.print(f"figures as of {refreshed:%Y-%m-%d %H:%M %Z} (the last refresh of ltv.segment_ltv)")


def serve_metrics(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port of the /metrics endpoint")] = 9464,
    host: Annotated[str, typer.Option(help="address to bind (0.0.0.0 exposes it to the network)")] = "127.0.0.1",
) -> None:
    """Serve Prometheus metrics on http://HOST:PORT/metrics until interrupted.

    Runs a client (its invalidation listener and breaker metrics are live) and exports the
    fleet-wide counters every client process keeps in Redis: lookups per tier, key counts,
    the cache generation.
    """
    from ltv_db.client import LTVClient

    with LTVClient(warm_top_n=0) as client:
        server = client.serve_metrics(port, host)
        console.print(f"serving metrics on http://{host}:{server.server_port}/metrics (Ctrl-C to stop)")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()


def _tier_and_keys():  # type: ignore[no-untyped-def]
    from ltv_db.cache import Keys, RedisTier, namespace_for, resolve_redis_url
    from ltv_db.db import resolve_database_url
    from ltv_db.metrics import ClientMetrics

    url = resolve_redis_url()
    if url is None:
        raise _fail("no Redis: set LTV_REDIS_URL or install redis-server", 3)
    tier = RedisTier(url, metrics=ClientMetrics(), timeout=1.0)
    return tier, Keys(namespace_for(resolve_database_url(start=False)))


@cache_app.command("stats")
def cache_stats(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Fleet-wide cache figures from Redis: generation, entries by kind, hit ratio per tier.

    The hit counts are what every client process adds to Redis every 5 s and when it closes,
    so a process still running may not be counted for its last few seconds.
    """
    from ltv_db.cache import read_stats

    tier, keys = _tier_and_keys()
    try:
        stats = read_stats(tier, keys)
    finally:
        tier.close()
    if stats is None:
        raise _fail("Redis is unreachable", 3)
    kinds = sorted({k for k, _ in stats.lookups})
    if as_json:
        print(json.dumps({
            "namespace": stats.namespace, "generation": stats.generation, "keys": stats.keys,
            "lookups": {f"{k}|{t}": n for (k, t), n in sorted(stats.lookups.items())},
            "hit_ratio": {k: stats.hit_ratio(k) for k in kinds},
        }))
        return
    console.print(f"namespace {stats.namespace}, generation {stats.generation}")
    console.print("entries: " + ", ".join(f"{kind} {n:,}" for kind, n in stats.keys.items()))
    table = Table(title="lookups answered per tier (all client processes)")
    table.add_column("kind")
    for tier_name in ("l1", "l2", "l3", "stale"):
        table.add_column(tier_name, justify="right")
    table.add_column("total", justify="right")
    for kind in kinds:
        total = sum(n for (k, _), n in stats.lookups.items() if k == kind)
        cells = []
        for tier_name in ("l1", "l2", "l3", "stale"):
            n = stats.lookups.get((kind, tier_name), 0)
            cells.append(f"{n:,} ({n / total:.1%})" if total else "0")
        table.add_row(kind, *cells, f"{total:,}")
    console.print(table)
    if not kinds:
        console.print("no lookups recorded yet")


@cache_app.command("flush")
def cache_flush() -> None:
    """Bump the cache generation: every cached entry becomes unreachable at once (and expires)."""
    from ltv_db.cache import RedisUnavailable

    tier, keys = _tier_and_keys()
    try:
        gen = tier.bump_generation(keys.generation)
        tier.call(tier.client.publish, keys.channel, json.dumps({"o": "cli", "all": True, "gen": gen}))
    except RedisUnavailable as exc:
        raise _fail(f"Redis is unreachable: {exc}", 3) from exc
    finally:
        tier.close()
    console.print(f"cache generation is now {gen}")


def _money(value: object) -> str:
    return "–" if value is None else f"{value:,.2f}"


def _ratio(value: object) -> str:
    return "–" if value is None else f"{value:.2f}"


def register(app: typer.Typer) -> None:
    app.command("segments")(segments)
    app.command("serve-metrics")(serve_metrics)
    app.add_typer(cache_app, name="cache")
