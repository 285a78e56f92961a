"""Tiers and credits, queue order, capacity controls, audit, rejections, worker heartbeats.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=80), nullable=True),
        sa.Column("before", sa.String(length=200), nullable=True),
        sa.Column("after", sa.String(length=200), nullable=True),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_created_at"), ["created_at"], unique=False)

    op.create_table(
        "controls",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=80), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rejections", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejections_created_at"), ["created_at"], unique=False)

    op.create_table(
        "worker_beats",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("worker_beats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_beats_last_seen"), ["last_seen"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tier", sa.String(length=16), nullable=False, server_default="free")
        )
        batch_op.add_column(sa.Column("sort_key", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("input_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claim_task", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("worker_id", sa.String(length=120), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_claim_task"), ["claim_task"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_input_digest"), ["input_digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_sort_key"), ["sort_key"], unique=False)
    # Jobs queued before this revision keep their arrival order.
    op.execute("UPDATE jobs SET sort_key = created_at")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("sort_key", existing_type=sa.DateTime(timezone=True), nullable=False)

    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=8), nullable=False, server_default="daily")
        )

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("extra_credits", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("daily_limit", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("daily_limit")
        batch_op.drop_column("extra_credits")

    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_column("source")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_sort_key"))
        batch_op.drop_index(batch_op.f("ix_jobs_input_digest"))
        batch_op.drop_index(batch_op.f("ix_jobs_claim_task"))
        batch_op.drop_column("worker_id")
        batch_op.drop_column("claim_task")
        batch_op.drop_column("input_digest")
        batch_op.drop_column("sort_key")
        batch_op.drop_column("tier")

    with op.batch_alter_table("worker_beats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_beats_last_seen"))

    op.drop_table("worker_beats")
    with op.batch_alter_table("rejections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejections_created_at"))

    op.drop_table("rejections")
    op.drop_table("controls")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_created_at"))

    op.drop_table("audit")
