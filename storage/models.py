"""SQLModel tables: users, jobs, the per-day usage counter and the usage ledger.

Timestamps are aware UTC datetimes (`utcnow()`); SQLModel stores them as UTC on both databases.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (JobStatus.DONE, JobStatus.FAILED)


class Lane(StrEnum):
    NORMAL = "normal"  # admitted against the tier's wait promise
    RELAX = "relax"  # "do it when there's room": runs only when no normal job waits


class LedgerKind(StrEnum):
    RESERVE = "reserve"
    COMMIT = "commit"
    REFUND = "refund"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=80)  # platform-qualified: telegram:123
    username: str | None = Field(default=None, max_length=80, index=True)
    tier: str = Field(default="free", max_length=16)
    banned: bool = False
    ban_reason: str | None = Field(default=None, max_length=200)
    locale: str = Field(default="en", max_length=8)
    in_flight: int = 0  # jobs queued or running; bounded by the tier's in-flight cap
    extra_credits: int = 0  # granted by an admin; used once the daily allowance is spent
    daily_limit: int | None = None  # a custom limit set by an admin, instead of the tier's
    # A bought tier pass: the tier lasts until tier_until, then the person returns to base_tier.
    tier_until: datetime | None = None
    base_tier: str | None = Field(default=None, max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    # Admission's measured speed reads the latest done jobs on every request: without this
    # index it scans every done job the table keeps.
    __table_args__ = (
        Index("ix_jobs_status_finished_at", "status", "finished_at"),
        # The worker's pick: queued jobs, normal lane first, then queue order.
        Index("ix_jobs_status_lane_sort_key", "status", "lane", "sort_key"),
        # The relax estimate reads the normal lane's arrivals by time, over days.
        Index("ix_jobs_lane_created_at", "lane", "created_at"),
        # Every admission looks for the same photo made earlier: without this SQLite walks
        # every done job by finish time.
        Index("ix_jobs_user_id_input_digest", "user_id", "input_digest"),
    )

    id: str = Field(primary_key=True, max_length=32)
    idempotency_key: str = Field(unique=True, max_length=200)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=80)
    platform: str = Field(index=True, max_length=16)
    style: str = Field(max_length=40)
    tier: str = Field(default="free", max_length=16)
    status: str = Field(default=JobStatus.QUEUED, index=True, max_length=16)
    lane: str = Field(default=Lane.NORMAL, max_length=8)
    # Queue order: created_at minus the tier's head start. Paid tiers go first, yet a request
    # is only ever passed by requests that arrived less than a head start after it.
    sort_key: datetime = Field(default_factory=utcnow, index=True)
    input_digest: str | None = Field(default=None, index=True, max_length=64)
    bucket: str = Field(default="512x512", max_length=16)  # working-size bucket, for batching
    batch_size: int = 1  # how many jobs shared this job's pipeline call
    attempts: int = 0
    claim_task: str | None = Field(default=None, index=True, max_length=64)  # Celery task id
    worker_id: str | None = Field(default=None, max_length=120)
    quota_day: date  # the day whose allowance this job used
    locale: str = Field(default="en", max_length=8)
    reply_target: str  # ReplyTarget as JSON
    # The message showing this request's place in the queue (a platform message id), so any bot
    # process, a restarted one too, edits it while the job waits and removes it after.
    status_ref: str | None = Field(default=None, max_length=64)
    # The platform's copy of the photo (ImageRequest.source), to style it again; /forget clears it.
    source_ref: str | None = Field(default=None, max_length=2000)
    result_path: str | None = Field(default=None, max_length=300)
    error_code: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    # When the last Celery token for this job was sent: a queued job whose token is long
    # overdue had it lost (a broker restarted empty), and housekeeping sends another.
    token_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    delivery_claimed_at: datetime | None = None
    delivered_at: datetime | None = None
    # The safety check held the result back (tasks/safety.py): it stays stored, unsent and
    # refunded, until an admin releases (sent, still free) or confirms it (deleted).
    held_at: datetime | None = Field(default=None, index=True)
    hold_label: str | None = Field(default=None, max_length=40)
    hold_score: float | None = None
    appealed_at: datetime | None = None  # the person asked for a review (/appeal)
    review: str | None = Field(default=None, max_length=16)  # released | confirmed
    reviewed_at: datetime | None = None


class Usage(SQLModel, table=True):
    """How many images a user has used on one day; the row the atomic reservation updates."""

    __tablename__ = "usage"

    user_id: str = Field(primary_key=True, foreign_key="users.id", max_length=80)
    day: date = Field(primary_key=True)
    used: int = 0


class LedgerEntry(SQLModel, table=True):
    """Reserve, commit and refund, at most one of each kind per job."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("job_id", "kind", name="uq_ledger_job_kind"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=80)
    day: date
    kind: str = Field(max_length=8)
    source: str = Field(default="daily", max_length=8)  # "daily" allowance or "credit"
    amount: int = 1
    created_at: datetime = Field(default_factory=utcnow)


class Control(SQLModel, table=True):
    """Runtime levers admins pull: capacity mode, surge level, tier limit overrides."""

    __tablename__ = "controls"

    key: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """Every admin change (and every refused attempt): who, what, before, after, when."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=80)  # telegram:1, shell:root, or "auto" for the surge control
    action: str = Field(max_length=40)
    target: str | None = Field(default=None, max_length=80)
    before: str | None = Field(default=None, max_length=200)
    after: str | None = Field(default=None, max_length=200)
    allowed: bool = True
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Rejection(SQLModel, table=True):
    """A request turned away at admission (busy, paused, closed, quota): counted in /stats."""

    __tablename__ = "rejections"

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=80)
    tier: str = Field(max_length=16)
    reason: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class WorkerBeat(SQLModel, table=True):
    """A worker process's heartbeat; live workers are those seen in the last few seconds."""

    __tablename__ = "worker_beats"

    id: str = Field(primary_key=True, max_length=120)  # hostname:pid
    started_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow, index=True)


class Offer(SQLModel, table=True):
    """A refused request offered a place in the relax lane: what accepting it needs, in SQL, so
    any bot process (a restarted one too) can take the person's "yes"."""

    __tablename__ = "offers"

    id: str = Field(primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=80)
    style: str = Field(max_length=40)
    locale: str = Field(default="en", max_length=8)
    reply_target: str  # ReplyTarget as JSON
    source_ref: str = Field(max_length=2000)  # where the platform keeps the photo
    idempotency_key: str = Field(max_length=200)  # the refused request's; the relax job's key
    reason: str = Field(max_length=20)  # busy | paused
    created_at: datetime = Field(default_factory=utcnow, index=True)
    job_id: str | None = Field(default=None, max_length=32)  # set once accepted


class Payment(SQLModel, table=True):
    """Every purchase, refund, grant end and expiry, with the platform's charge or entitlement
    id; (platform, charge_id, event) is unique, so the same update twice is one credit."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("platform", "charge_id", "event", name="uq_payments_charge_event"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    charge_id: str = Field(max_length=200)
    event: str = Field(max_length=16)  # purchase | refund | revoke | expiry
    user_id: str = Field(foreign_key="users.id", index=True, max_length=80)
    product: str = Field(max_length=40)
    amount: int = 0  # in the currency's smallest unit (Telegram Stars: whole stars)
    currency: str = Field(default="XTR", max_length=8)
    detail: str | None = Field(default=None, max_length=200)  # what was granted or taken back
    created_at: datetime = Field(default_factory=utcnow, index=True)
