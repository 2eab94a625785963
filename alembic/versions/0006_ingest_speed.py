"""Ingestion speed: cheap CHECK constraints (unbounded regex + length() instead of {0,N}),
faster event loading

Revision ID: 0006_ingest_speed
Revises: 0005_model_refinements
Create Date: 2026-11-28
"""

from ltv_db import migrations

revision = "0006_ingest_speed"
down_revision = "0005_model_refinements"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0006_ingest_speed/sql/).
FROZEN_SQL: list[str] = []

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
