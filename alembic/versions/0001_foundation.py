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
    # numerics and the optimiser
    "functions/float_helpers.sql",
    "functions/lgamma.sql",
    "functions/hyp2f1.sql",
    "functions/optimizer.sql",
    # model math
    "functions/bgnbd_expected_purchases.sql",
    "functions/bgnbd_p_alive.sql",
    "functions/gg_expected_spend.sql",
    "functions/sbg_survival.sql",
    "functions/sbg_derl.sql",
    "functions/model_time.sql",
    "functions/sbg_predictive.sql",
    "functions/poisson_quantile.sql",
    # maximum-likelihood fits
    "functions/fit_sbg.sql",
    "functions/fit_sbg_lifetimes.sql",
    "functions/fit_bgnbd.sql",
    "functions/fit_gamma_gamma.sql",
    # data plumbing
    "functions/fx_rate_at.sql",
    "functions/ingest_parsing.sql",
    "functions/revenue_partitions.sql",
    # pipeline
    "functions/customer_history.sql",
    "functions/subscription_lifetimes.sql",
    "functions/fit_models.sql",
    "functions/refit_models.sql",
    "functions/score_customers.sql",
    "functions/customer_ltv.sql",
    "functions/backtest_predictions.sql",
    "functions/backtest.sql",
    "functions/formula_ltv.sql",
    "functions/channel_economics.sql",
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
