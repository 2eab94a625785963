"""The snapshot's scoring in two parallel workers; the segment figures from one GROUPING SETS

Revision ID: 0013_parallel_refresh
Revises: 0012_view_rewrite
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0013_parallel_refresh"
down_revision = "0012_view_rewrite"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # new: the one rule for a customer whose facts as of a cutoff come from the raw tables, which
    # customer_history_via applies and the snapshot refresh checks before scoring in parallel
    "functions/facts_dated_from.sql",
    # changed: an optional range of customer ids (one customer, a range, or everyone); the plan
    # mode for many customers a SET clause, so a parallel worker may run it for a range
    "functions/customer_history_via.sql",
    "functions/customer_history.sql",
    # changed: the same range; the settings for many customers SET clauses (one customer still
    # sets its own per call)
    "functions/score_customers.sql",
    # new: ltv.score_customers for a range, labelled parallel safe for the snapshot refresh
    "functions/score_customer_range.sql",
    # changed: the customers scored in two halves side by side (Parallel Append) when none has
    # facts dated at or after the as-of; the formula's join hashed, not sorted
    "functions/refresh_customer_ltv_snapshot.sql",
    # changed: the full breakdown one more grouping set of the rollups' GROUP BY, its median and
    # p90 from percentile_cont instead of ranks by window functions (the same values)
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
        ["functions/customer_history_via.sql", "functions/customer_history.sql", "functions/score_customers.sql",
         "functions/refresh_customer_ltv_snapshot.sql", "functions/refresh_segment_ltv.sql"])
    migrations.run_statement("SELECT ltv.apply_grants()")
