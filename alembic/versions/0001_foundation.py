"""Foundation: reference data, customers, subscriptions, partitioned revenue events, ingestion
bookkeeping, model fits; partition maintenance scheduled with pg_cron.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-28
"""

from ltv_db import migrations
from ltv_db.migrations import CronJob

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

# sql/ files this revision installs, in dependency order (frozen under 0001_foundation/sql/).
FROZEN_SQL = [
    "functions/revenue_partitions.sql",
]

JOBS = [
    CronJob("maintain-partitions", "7 * * * *", "SELECT ltv.maintain_revenue_partitions()"),
    CronJob(
        "purge-job-run-details",
        "23 3 * * *",
        "DELETE FROM cron.job_run_details WHERE end_time < now() - interval '14 days'",
        in_cron_database=True,
    ),
]


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.maintain_revenue_partitions()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
