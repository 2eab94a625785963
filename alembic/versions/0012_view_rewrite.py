"""The LTV snapshot and segment LTV rewritten in place, not diffed: plain views over tables updated by MERGE

Revision ID: 0012_view_rewrite
Revises: 0011_sbg_quantiles
Create Date: 2026-11-29
"""

from ltv_db import migrations

revision = "0012_view_rewrite"
down_revision = "0011_sbg_quantiles"
branch_labels = None
depends_on = None

FROZEN_SQL: list[str] = [
    # changed: ltv.formula_ltv_from applies the formula to given per-channel MRR (the snapshot's
    # refresh passes its own); the trailing churn by bit masks and hash aggregates (same values)
    "functions/formula_ltv.sql",
    # new: rewrite the snapshot's table from ltv.score_customers in one transaction
    "functions/refresh_customer_ltv_snapshot.sql",
    # new: recompute the segments' table from the snapshot — the full breakdown's percentiles
    # from one ordered pass, not a sort per segment (same values)
    "functions/refresh_segment_ltv.sql",
    # changed: comments only (which views are kept by their own function)
    "functions/refresh_views.sql",
    # changed: the single-q sBG quantile is ltv.sbg_payments_quantiles with one element (one loop)
    "functions/sbg_predictive.sql",
    # changed: PL/pgSQL arithmetic instead of a SQL function planned on every call (the same
    # values, bit for bit) — ltv.customer_ltv makes three calls
    "functions/season_mean.sql",
    # changed: for one customer (ltv.customer_ltv), its own category's fits only, so the
    # seasonal weights of its own BG/NBD fit only — 0011 computed every fit's (ten) on every call
    "functions/score_customers.sql",
    # changed: a plain view over ltv.customer_ltv_snapshot_store (upgrade.sql dropped the
    # materialized one)
    "views/customer_ltv_snapshot.sql",
    # changed: a plain view over ltv.segment_ltv_store
    "views/segment_ltv.sql",
    # unchanged, re-created: the DROP … CASCADE in upgrade.sql took it
    "views/unit_economics.sql",
    # changed: column comments only
    "views/view_freshness.sql",
]

JOBS: list[migrations.CronJob] = []

EARLIER_VIEWS = ["views/customer_ltv_snapshot.sql", "views/unit_economics.sql", "views/segment_ltv.sql",
                 "views/view_freshness.sql"]


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.apply_grants()")
    # fill the new table and the re-created views (as 0003 filled them)
    migrations.run_statement(
        "SELECT count(*) FROM ltv.refresh_views(ARRAY['customer_ltv_snapshot', 'unit_economics', 'segment_ltv'])")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    migrations.reinstall_earlier_copies(
        revision,
        ["functions/formula_ltv.sql", "functions/refresh_views.sql", "functions/sbg_predictive.sql",
         "functions/season_mean.sql", "functions/score_customers.sql", *EARLIER_VIEWS])
    migrations.run_statement("SELECT ltv.apply_grants()")
