"""Python entry points to the in-database models: refit, one customer's LTV, backtest.

Thin wrappers: every number is computed by the SQL functions in sql/functions/; Python only
passes arguments and names the result columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row


class CustomerNotFound(LookupError):
    """No customer has this reference (or it signed up after the as-of time)."""


@dataclass(frozen=True)
class CustomerLTV:
    """One customer's LTV (see sql/functions/score_customers.sql for each field's meaning)."""

    customer_ref: str
    customer_id: int
    vendor_category: str
    country: str
    acquisition_channel: str
    signed_up_at: datetime
    subscription_status: str
    billing_interval: str | None
    sbg_segment: str | None
    bgnbd_segment: str | None
    net_revenue: Decimal
    realised_margin: Decimal
    current_mrr: Decimal
    predicted_recurring: Decimal | None
    predicted_one_off: Decimal
    total_ltv: Decimal | None
    p_alive: float | None
    expected_purchases: float | None
    expected_remaining_months: float | None
    ltv_low: Decimal | None
    ltv_high: Decimal | None


def refit(conn: psycopg.Connection, cutoff: datetime | None = None, min_customers: int = 500) -> list[dict[str, Any]]:
    """Run ltv.refit_models (records every fit, activates converged ones) and return its rows."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM ltv.refit_models(coalesce(%s, now()), %s)",
            (cutoff, min_customers),
        )
        return cur.fetchall()


def customer_ltv(conn: psycopg.Connection, customer_ref: str, as_of: datetime | None = None) -> CustomerLTV:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            SELECT c.customer_ref, l.*
            FROM ltv.customers c
            CROSS JOIN LATERAL ltv.customer_ltv(c.customer_id, coalesce(%(as_of)s, now())) l
            WHERE c.customer_ref = %(ref)s
            """,
            {"ref": customer_ref, "as_of": as_of},
        )
        row = cur.fetchone()
    if row is None:
        raise CustomerNotFound(f"no customer {customer_ref!r}")
    return CustomerLTV(**row)


def backtest(
    conn: psycopg.Connection, cutoff: datetime, horizon_months: int, min_customers: int = 500
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM ltv.backtest(%s, %s, %s)", (cutoff, horizon_months, min_customers))
        return cur.fetchall()
