"""Model refinements measured by the backtest: cancellation notice for subscriptions, wedding-season
index for one-off purchases

Revision ID: 0005_model_refinements
Revises: 0004_roles_audit
Create Date: 2026-11-28
"""

from ltv_db import migrations

revision = "0005_model_refinements"
down_revision = "0004_roles_audit"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0005_model_refinements/sql/).
FROZEN_SQL: list[str] = []

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
