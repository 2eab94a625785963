"""Scoring everyone: the sBG quantiles of every notice level in one pass; one-off values per customer

Revision ID: 0011_sbg_quantiles
Revises: 0010_mrr_incremental
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0011_sbg_quantiles"
down_revision = "0010_mrr_incremental"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # new: ltv.sbg_payments_quantiles (the file's other functions unchanged)
    "functions/sbg_predictive.sql",
    # new: ltv.bgnbd_expected_purchases_kernels, several horizons in one call (the same values),
    # replacing the one-horizon kernel (dropped in upgrade.sql); _multi calls it once, and the
    # single-horizon function is _multi with one element
    "functions/bgnbd_expected_purchases.sql",
    # changed: the window's three horizons through ltv.bgnbd_expected_purchases_multi, one call
    "functions/backtest_predictions.sql",
    # changed: a past cutoff decided by the pass over the live statistics that finds the customers
    # active since (live = NULL), not by a second pass (ltv.few_active_since, dropped in upgrade.sql)
    "functions/customer_history_via.sql",
    "functions/customer_history.sql",
    # changed: more than 2,500 customers (or everyone) in one pass over the events, not by
    # primary-key lookups in every partition — for the live-statistics triggers and for the
    # customers active since a past cutoff alike
    "functions/customer_facts.sql",
    # changed: the interval's sBG quantiles through ltv.sbg_payments_quantiles, the three horizons
    # of the BG/NBD kernel in one call, P(alive) and the expected purchases per customer instead of
    # per distinct input joined back, slimmer intermediate rows (same values)
    "functions/score_customers.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(revision, FROZEN_SQL)
    migrations.run_statement("SELECT ltv.apply_grants()")
