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
       round(p.list_price_minor / power(10::numeric, cur.exponent), cur.exponent) AS list_price
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
    if isinstance(value, bool):
        return "yes" if value else "no"
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


# -- models ---------------------------------------------------------------------------------------
FITS = """
SELECT model, segment, n_customers AS n, converged, is_active AS active,
       round(log_likelihood::numeric, 2) AS log_lik,
       (SELECT string_agg(key || '=' || round(value::numeric, 4), ' ' ORDER BY key)
          FROM jsonb_each_text(params) WHERE value ~ '^[0-9.eE+-]+$') AS parameters,
       round(runtime_ms::numeric) AS ms, left(error, 60) AS error
FROM ltv.model_fits
WHERE fit_id = ANY(%(ids)s)
ORDER BY model, segment
"""

LTV_BY_CATEGORY_COUNTRY = """
SELECT vendor_category, country, count(*) AS customers,
       avg(total_ltv) AS mean_ltv,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY total_ltv) AS median_ltv,
       sum(realised_margin) AS realised, sum(predicted_recurring) AS recurring,
       sum(predicted_one_off) AS one_off, sum(total_ltv) AS total
FROM ltv.score_customers(%(as_of)s)
GROUP BY GROUPING SETS ((vendor_category, country), (vendor_category), ())
ORDER BY vendor_category NULLS LAST, country NULLS LAST
"""


def print_fits(conn: psycopg.Connection, console: Console, fit_ids: list[int]) -> None:
    render(console, "Model fits (ltv.model_fits)", *fetch(conn, FITS, {"ids": fit_ids}))


def print_ltv_by_category_country(conn: psycopg.Connection, console: Console, as_of: Any) -> None:
    """Mean LTV pivot (category × country) and a per-category breakdown, from ltv.score_customers."""
    base = conn.execute("SELECT base_currency FROM ltv.settings").fetchone()[0]
    _, rows = fetch(conn, LTV_BY_CATEGORY_COUNTRY, {"as_of": as_of})
    countries = sorted({r[1] for r in rows if r[1] is not None})
    mean_by = {(r[0], r[1]): r[3] for r in rows}
    categories = sorted({r[0] for r in rows if r[0] is not None})
    pivot = [(c, *(mean_by.get((c, k)) for k in countries), mean_by.get((c, None))) for c in categories]
    pivot.append(("all", *(None for _ in countries), mean_by.get((None, None))))
    render(console, f"Mean LTV per supplier by vendor category and country ({base}, gross margin)",
           ["category", *countries, "all"], pivot)
    breakdown = [
        (r[0] or "all", r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows if r[1] is None
    ]
    render(console, f"LTV by vendor category ({base}): realised + predicted recurring + predicted one-off",
           ["category", "suppliers", "mean", "median", "realised", "recurring", "one-off", "total"], breakdown)


def print_customer_ltv(console: Console, value: Any, base_currency: str) -> None:
    from dataclasses import asdict

    rows = [(k, v) for k, v in asdict(value).items()]
    render(console, f"LTV of {value.customer_ref} ({base_currency}, gross margin)", ["field", "value"], rows)


def print_backtest(console: Console, rows: list[dict[str, Any]], cutoff: str, horizon: int) -> None:
    columns = ["segment", "customers", "predicted", "actual", "accuracy", "mae", "rank_corr",
               "pred_tx", "actual_tx"]
    out = [
        (r["segment"], r["customers"], r["predicted"], r["actual"],
         None if r["accuracy"] is None else f"{r['accuracy']:.1%}", r["mae"], r["rank_correlation"],
         r["predicted_purchases"], r["actual_purchases"])
        for r in rows
    ]
    render(console, f"Backtest: fit before {cutoff}, predict net revenue for {horizon} months", columns, out)
