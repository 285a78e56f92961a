"""The relax lane (jobs.lane, offers) and selling (payments, tier passes on users).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)  # aware UTC, as in 0001


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lane", sa.String(length=8), nullable=False, server_default="normal")
        )
        batch_op.create_index("ix_jobs_status_lane_sort_key", ["status", "lane", "sort_key"])
        batch_op.create_index("ix_jobs_lane_created_at", ["lane", "created_at"])
        batch_op.create_index("ix_jobs_user_id_input_digest", ["user_id", "input_digest"])
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tier_until", TIMESTAMP, nullable=True))
        batch_op.add_column(sa.Column("base_tier", sa.String(length=16), nullable=True))
    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=80), nullable=False),
        sa.Column("style", sa.String(length=40), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("reply_target", sa.String(), nullable=False),
        sa.Column("source_ref", sa.String(length=2000), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_offers_user_id", "offers", ["user_id"])
    op.create_index("ix_offers_created_at", "offers", ["created_at"])
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("charge_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=80), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "charge_id", "event", name="uq_payments_charge_event"),
    )
    op.create_index("ix_payments_user_id", "payments", ["user_id"])
    op.create_index("ix_payments_created_at", "payments", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_payments_created_at", table_name="payments")
    op.drop_index("ix_payments_user_id", table_name="payments")
    op.drop_table("payments")
    op.drop_index("ix_offers_created_at", table_name="offers")
    op.drop_index("ix_offers_user_id", table_name="offers")
    op.drop_table("offers")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("base_tier")
        batch_op.drop_column("tier_until")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_user_id_input_digest")
        batch_op.drop_index("ix_jobs_lane_created_at")
        batch_op.drop_index("ix_jobs_status_lane_sort_key")
        batch_op.drop_column("lane")
