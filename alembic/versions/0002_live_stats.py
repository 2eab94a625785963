"""Live per-customer statistics kept by statement-level triggers; change notifications

Revision ID: 0002_live_stats
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from pathlib import Path

from ltv_db import migrations

revision = "0002_live_stats"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0002_live_stats/sql/).
FROZEN_SQL: list[str] = [
    # the one definition of per-customer facts, and the history derived from them
    "functions/customer_facts.sql",
    "functions/customer_history_via.sql",
    "functions/customer_history.sql",  # changed: reads the live statistics for now
    # keeping the live statistics
    "functions/lock_customer_stats.sql",
    "functions/one_off_purchases_on_day.sql",
    "functions/refresh_customer_stats.sql",
    "functions/verify_customer_stats.sql",
    "functions/notify_customers_changed.sql",
    "functions/live_stats_triggers.sql",
    "functions/change_notification_triggers.sql",
    "functions/refit_models.sql",  # changed: notifies {"all": true} after activating a fit
    "functions/score_customers.sql",  # changed: PL/pgSQL (plan reused per session), no JIT
]

# Files 0001 froze that this revision replaces: downgrade reinstalls 0001's copies.
REPLACED_FROM_0001 = [
    "functions/customer_history.sql",
    "functions/refit_models.sql",
    "functions/score_customers.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    # backfill: the statistics of whatever the database already holds
    migrations.run_statement("SELECT ltv.refresh_customer_stats()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    frozen_0001 = Path(__file__).with_name("0001_foundation") / "sql"
    for rel in REPLACED_FROM_0001:
        migrations.run_statement((frozen_0001 / rel).read_text())
