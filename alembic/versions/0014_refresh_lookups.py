"""The snapshot's lookups in its parallel workers; segment_ltv's figures in two parallel parts

Revision ID: 0014_refresh_lookups
Revises: 0013_parallel_refresh
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0014_refresh_lookups"
down_revision = "0013_parallel_refresh"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # changed: ROWS 1000000 — everyone is the call whose estimate shapes the plans around it
    "functions/score_customers.sql",
    # changed: with the customer's reference and region and the scored plan's code and tier, read
    # in the parallel workers (a new result type, so upgrade.sql drops the old function first)
    "functions/score_customer_range.sql",
    # changed: those columns from the scored rows instead of two joins in the leader
    "functions/refresh_customer_ltv_snapshot.sql",
    # changed: each trailing month's churn check time computed once, not per subscription
    "functions/formula_ltv.sql",
    # new: segment_ltv's sums, counts and percentiles for one part of its grouping sets, grouped
    # by integer codes of the dimensions, money summed as integers
    "functions/segment_figures.sql",
    # changed: the two parts of ltv.segment_figures side by side in parallel workers
    "functions/refresh_segment_ltv.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(
        revision,
        ["functions/score_customers.sql", "functions/score_customer_range.sql",
         "functions/refresh_customer_ltv_snapshot.sql", "functions/formula_ltv.sql",
         "functions/refresh_segment_ltv.sql"])
    migrations.run_statement("SELECT ltv.apply_grants()")
