"""Held results: the safety check's hold on a job, the person's appeal, an admin's review.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)  # aware UTC, as in 0001


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_at", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("hold_label", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("hold_score", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("appealed_at", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("review", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", TIMESTAMP, nullable=True))
        batch_op.create_index("ix_jobs_held_at", ["held_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_held_at")
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("review")
        batch_op.drop_column("appealed_at")
        batch_op.drop_column("hold_score")
        batch_op.drop_column("hold_label")
        batch_op.drop_column("held_at")
