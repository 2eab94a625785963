"""Live per-customer statistics kept by statement-level triggers; change notifications

Revision ID: 0002_live_stats
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from ltv_db import migrations

revision = "0002_live_stats"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0002_live_stats/sql/).
FROZEN_SQL: list[str] = []

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
