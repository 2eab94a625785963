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
FROZEN_SQL: list[str] = [
    # what prediction needs besides the parameters, stored with each fit
    "functions/one_off_season_index.sql",
    "functions/season_mean.sql",
    "functions/notice_cdf.sql",
    "functions/sbg_notice_norm.sql",
    "functions/billing_period_elapsed.sql",
    "functions/season_thirds.sql",
    "functions/segment_fits.sql",  # the one fit lookup of scoring and backtests
    "functions/sbg_derl_series.sql",  # DERL for every renewal count at the cost of one
    "functions/fit_models.sql",  # changed: sBG params carry notice_cdf, BG/NBD params season
    "functions/refit_models.sql",  # changed: arrays in params are prediction inputs, not parameters
    # changed: predictions given no cancellation notice so far, one-off purchases by season;
    # scoring evaluates each expensive quantity once (DERL series, the BG/NBD kernel per (x, T))
    "functions/score_customers.sql",
    "functions/backtest_predictions.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
