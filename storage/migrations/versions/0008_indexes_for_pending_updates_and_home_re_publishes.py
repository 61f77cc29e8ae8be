"""indexes for pending updates and Home re-publishes

Revision ID: 0008
Revises: 0007
Created: 2026-12-07 05:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATES_ONLY = "updates_key IS NOT NULL"
PENDING_HOMES_ONLY = "status = 'pending' AND kind = 'home'"


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_updates",
            ["updates_key", "status"],
            unique=False,
            sqlite_where=sa.text(UPDATES_ONLY),
            postgresql_where=sa.text(UPDATES_ONLY),
        )
        batch_op.create_index(
            "ix_outbox_pending_homes",
            ["person_id"],
            unique=False,
            sqlite_where=sa.text(PENDING_HOMES_ONLY),
            postgresql_where=sa.text(PENDING_HOMES_ONLY),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_pending_homes")
        batch_op.drop_index("ix_outbox_updates")
