"""Read-only summaries for the CLI (`ltv-db demo`, `ltv-db report`), rendered with rich.

Each query only aggregates what the database already holds; LTV figures come from the SQL
functions and views, never from Python arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

SUPPLIERS_BY_CATEGORY_COUNTRY = """
SELECT vendor_category, country, count(*) AS suppliers
FROM ltv.customers
GROUP BY ROLLUP (vendor_category, country)
ORDER BY vendor_category NULLS LAST, country NULLS LAST
"""

REVENUE_BY_MONTH_KIND = """
SELECT to_char(date_trunc('month', occurred_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS month,
       sum(amount_base) FILTER (WHERE kind = 'subscription') AS subscription,
       sum(amount_base) FILTER (WHERE kind = 'one_off')      AS one_off,
       sum(amount_base) FILTER (WHERE kind = 'refund')       AS refund,
       sum(amount_base) FILTER (WHERE kind = 'chargeback')   AS chargeback,
       sum(amount_base) FILTER (WHERE kind = 'credit')       AS credit,
       sum(CASE WHEN kind IN ('subscription', 'one_off') THEN amount_base ELSE -amount_base END) AS net,
       count(*) AS events
FROM ltv.revenue_events
WHERE occurred_at >= %(since)s
GROUP BY 1
ORDER BY 1
"""

ACTIVE_SUBSCRIPTIONS_BY_PLAN = """
SELECT p.tier, p.billing_interval, p.currency, p.plan_code, count(*) AS active,
       round(p.list_price_minor::numeric / 10 ^ cur.exponent, cur.exponent) AS list_price
FROM ltv.subscriptions s
JOIN ltv.plans p USING (plan_code)
JOIN ltv.currencies cur ON cur.currency = p.currency
WHERE (s.ended_at IS NULL OR s.ended_at > now()) AND (s.cancelled_at IS NULL OR s.cancelled_at > now())
GROUP BY p.tier, p.billing_interval, p.currency, p.plan_code, p.list_price_minor, cur.exponent
ORDER BY p.tier, p.billing_interval, p.currency
"""


def fetch(conn: psycopg.Connection, query: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
    with conn.cursor() as cur:
        cur.execute(query, params or {})
        columns = [d.name for d in cur.description or []]
        return columns, cur.fetchall()


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(value)


def render(console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(r[i] is None or isinstance(r[i], int | float | Decimal) for r in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)


def suppliers_pivot(conn: psycopg.Connection) -> tuple[list[str], list[tuple]]:
    """Suppliers per vendor category (rows) and country (columns), with totals."""
    _, rows = fetch(conn, SUPPLIERS_BY_CATEGORY_COUNTRY)
    countries = sorted({c for _, c, _ in rows if c is not None})
    by_category: dict[str, dict[str | None, int]] = {}
    for category, country, n in rows:
        if category is None:
            continue
        by_category.setdefault(category, {})[country] = n
    columns = ["category", *countries, "total"]
    out = [
        (category, *(counts.get(c, 0) for c in countries), counts.get(None, 0))
        for category, counts in by_category.items()
    ]
    grand = next((n for cat, _, n in rows if cat is None), 0)
    totals = [sum(counts.get(c, 0) for counts in by_category.values()) for c in countries]
    out.append(("total", *totals, grand))
    return columns, out


def print_load_summary(conn: psycopg.Connection, console: Console) -> None:
    """What the database holds: suppliers, revenue by month and kind, active subscriptions."""
    base = conn.execute("SELECT base_currency FROM ltv.settings").fetchone()[0]
    render(console, "Suppliers by vendor category and country", *suppliers_pivot(conn))
    since = conn.execute(
        "SELECT coalesce(date_trunc('month', max(occurred_at)) - interval '11 months', now()) "
        "FROM ltv.revenue_events"
    ).fetchone()[0]
    revenue = fetch(conn, REVENUE_BY_MONTH_KIND, {"since": since})
    render(console, f"Revenue by month and kind (last 12 months, {base})", *revenue)
    render(console, "Active subscriptions by plan", *fetch(conn, ACTIVE_SUBSCRIPTIONS_BY_PLAN))
