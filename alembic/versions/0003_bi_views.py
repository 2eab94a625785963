"""Materialized views for BI, refreshed concurrently by pg_cron

Revision ID: 0003_bi_views
Revises: 0002_live_stats
Create Date: 2026-11-28
"""

from ltv_db import migrations

revision = "0003_bi_views"
down_revision = "0002_live_stats"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0003_bi_views/sql/).
FROZEN_SQL: list[str] = []

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
