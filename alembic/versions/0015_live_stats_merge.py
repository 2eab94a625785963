"""The live-statistics INSERT trigger as one UPDATE that locks and merges each customer's row

Revision ID: 0015_live_stats_merge
Revises: 0014_refresh_lookups
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0015_live_stats_merge"
down_revision = "0014_refresh_lookups"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # new, replacing ltv.one_off_purchases_on_day (upgrade.sql drops it): a customer's purchase
    # days over a range, VOLATILE — called after the trigger's UPDATE locked the row, it must
    # count with a snapshot of its own taken then, not the statement's
    "functions/one_off_purchase_days.sql",
    # changed: the comment only — the INSERT trigger calls it for customers without a row only
    "functions/lock_customer_stats.sql",
    # changed: live_stats_after_insert adds a statement's events in one pass over its rows and one
    # UPDATE computed from the row it locks (no lock statement, no second read of the stored
    # rows); charges of several subscriptions in a second UPDATE, customers without a row merged again
    "functions/live_stats_triggers.sql",
]

# dropped by upgrade.sql: nothing calls ltv.one_off_purchases_on_day any more
RETIRED_SQL: list[str] = ["functions/one_off_purchases_on_day.sql"]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    # the earlier texts, the retired function's included (one_off_purchase_days has none: dropped)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL + RETIRED_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
