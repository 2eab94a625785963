"""Materialized views for BI, refreshed concurrently by pg_cron

Revision ID: 0003_bi_views
Revises: 0002_live_stats
Create Date: 2026-11-28
"""

from ltv_db import migrations
from ltv_db.migrations import CronJob

revision = "0003_bi_views"
down_revision = "0002_live_stats"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0003_bi_views/sql/).
# upgrade.sql creates ltv.view_refreshes first; each view file registers its view there.
FROZEN_SQL: list[str] = [
    "views/customer_ltv_snapshot.sql",
    "views/unit_economics.sql",
    "views/segment_ltv.sql",
    "views/mrr_movements.sql",
    "views/cohort_retention.sql",
    "views/view_freshness.sql",
    "functions/refresh_views.sql",
]

JOBS: list[migrations.CronJob] = [
    # The LTV views every 15 minutes; the month-grained MRR and cohort views (whole-history
    # scans of subscription charges) hourly. A run that outlasts its interval is not started
    # twice (pg_cron waits); the two jobs lock disjoint registry rows, so they never deadlock.
    CronJob(
        "refresh-views",
        "*/15 * * * *",
        "SELECT count(*) FROM ltv.refresh_views(ARRAY['customer_ltv_snapshot', 'unit_economics', 'segment_ltv'])",
    ),
    CronJob(
        "refresh-history-views",
        "40 * * * *",
        "SELECT count(*) FROM ltv.refresh_views(ARRAY['mrr_movements', 'cohort_retention'])",
    ),
    # Nightly refit on everything up to now; a non-converged fit never replaces the active one.
    CronJob("refit-models", "30 2 * * *", "SELECT count(*) FROM ltv.refit_models()"),
    # Autovacuum analyzes partitions but never the partitioned parent, whose statistics plan
    # every whole-history scan (customer_history, the views): keep them current before the refit.
    CronJob("analyze-revenue-events", "5 2 * * *", "ANALYZE ltv.revenue_events"),
]


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    # Populate the views once (created WITH NO DATA): BI tools can read them from the start,
    # and later refreshes can run CONCURRENTLY. On a large database this scores every customer.
    migrations.run_statement("SELECT count(*) FROM ltv.refresh_views()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
