"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from ltv_db import migrations

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None

# sql/ files this revision (re)installs, in dependency order. `ltv-db dev freeze-sql` copies
# them into this revision's directory; the frozen copies are what upgrade() runs.
FROZEN_SQL: list[str] = []


def upgrade() -> None:
    migrations.upgrade(__file__, FROZEN_SQL)


def downgrade() -> None:
    migrations.downgrade(__file__)
