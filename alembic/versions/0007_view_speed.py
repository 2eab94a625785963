"""BI view refresh at 1,000,000 suppliers: ltv.refresh_views plans without nested loops

Revision ID: 0007_view_speed
Revises: 0006_ingest_speed
Create Date: 2026-11-28
"""

from ltv_db import migrations

revision = "0007_view_speed"
down_revision = "0006_ingest_speed"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # changed: SET enable_nestloop = off for the refresh (misestimated CTE / function-scan joins
    # inside ltv.score_customers turned quadratic at 1,000,000 suppliers)
    "functions/refresh_views.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
