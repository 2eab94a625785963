"""ltv.mrr_movements maintained incrementally: only the customers that changed are recomputed

Revision ID: 0010_mrr_incremental
Revises: 0009_fit_speed
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0010_mrr_incremental"
down_revision = "0009_fit_speed"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # new: the MRR bridge rows of any customers as of any moment (the view's old body)
    "functions/mrr_movement_rows.sql",
    # new: every row in which the maintained view differs from a derivation from scratch
    "functions/verify_mrr_movements.sql",
    # new: queue the customers a change touches
    "functions/mrr_stale_triggers.sql",
    # new: recompute the queued customers, those whose dates the clock passed, a new month
    "functions/refresh_mrr_movements.sql",
    # changed: a registered plain view is refreshed by ltv.refresh_<name>()
    "functions/refresh_views.sql",
    # changed: temp tables dropped without NOTICEs
    "functions/fit_models.sql",
    # changed: a plain view over ltv.mrr_movement_store (upgrade.sql dropped the materialized one)
    "views/mrr_movements.sql",
    # unchanged, re-created: the DROP … CASCADE in upgrade.sql took it
    "views/cohort_retention.sql",
    # changed: populated for a maintained view = refreshed at least once
    "views/view_freshness.sql",
]

JOBS: list[migrations.CronJob] = []

EARLIER_VIEWS = ["views/mrr_movements.sql", "views/cohort_retention.sql", "views/view_freshness.sql"]


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")
    # fill the new table and the re-created cohort_retention (as 0003 filled the views)
    migrations.run_statement("SELECT count(*) FROM ltv.refresh_views(ARRAY['mrr_movements', 'cohort_retention'])")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(
        revision,
        ["functions/refresh_views.sql", "functions/fit_models.sql", *EARLIER_VIEWS])
    migrations.run_statement("SELECT ltv.apply_grants()")
