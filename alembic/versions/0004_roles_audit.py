"""Roles (ltv_reader, ltv_writer, ltv_admin) and grants; tamper-evident, hash-chained audit log

Revision ID: 0004_roles_audit
Revises: 0003_bi_views
Create Date: 2026-11-28
"""

from ltv_db import migrations

revision = "0004_roles_audit"
down_revision = "0003_bi_views"
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order (frozen under 0004_roles_audit/sql/).
FROZEN_SQL: list[str] = [
    # SECURITY DEFINER now, so ltv_writer can create the month it loads
    "functions/revenue_partitions.sql",
    # audit log: hash chain, capture triggers, verification
    "functions/audit_hash.sql",
    "functions/audit_capture.sql",
    "functions/verify_audit_log.sql",
    # ownership and grants (called last by every revision from here on)
    "functions/grants.sql",
]

JOBS: list[migrations.CronJob] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL, JOBS)
    migrations.run_statement("SELECT ltv.install_audit_triggers()")
    migrations.run_statement("SELECT ltv.apply_grants()")


def downgrade() -> None:
    migrations.downgrade(__file__, JOBS)
    _reinstall_earlier_functions()


def _reinstall_earlier_functions() -> None:
    """Put every function back exactly as revision 0003 left it.

    This revision re-froze revenue_partitions.sql, and ltv.apply_grants() turned the LTV read
    functions and the trigger functions into SECURITY DEFINER. downgrade.sql has dropped our
    own objects; re-running the newest pre-0004 frozen copy of every sql/functions file (CREATE
    OR REPLACE resets SECURITY DEFINER and every other attribute) restores the rest.
    """
    migrations.reinstall_earlier_copies(revision)
