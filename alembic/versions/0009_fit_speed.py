"""BG/NBD fits on a million customers: warm start from a sample's optimum and curvature

Revision ID: 0009_fit_speed
Revises: 0008_scoring_speed
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0009_fit_speed"
down_revision = "0008_scoring_speed"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # changed: BFGS from a given inverse Hessian (ltv.bfgs_minimize_from); bfgs_minimize wraps it
    "functions/optimizer.sql",
    # changed: BG/NBD warm-started from a 1-in-k sample above 60,000 rows (c_j built by one helper)
    "functions/fit_bgnbd.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
