"""Job and user rows: the SQL the core, the worker and the delivery loop share."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import Session, col, select

from storage.db import upsert_insert
from storage.models import FINISHED, Job, JobStatus, User, utcnow


def ensure_user(session: Session, user_id: str, username: str | None, locale: str) -> User:
    """Fetch the user, creating them on first contact; keep username and locale fresh."""
    # Two first messages at once must not both try to create the user.
    session.execute(
        upsert_insert(session, User)
        .values(id=user_id, username=username, locale=locale, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    user = session.get(User, user_id, populate_existing=True)
    assert user is not None
    if (user.username, user.locale) != (username or user.username, locale):
        user.username = username or user.username
        user.locale = locale
        session.add(user)
    return user


def job_by_key(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.idempotency_key == key)).first()


def queue_position(session: Session, job: Job) -> int:
    """1 + the number of queued jobs created before this one."""
    ahead = session.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.status == JobStatus.QUEUED, col(Job.created_at) < job.created_at)
    ).one()
    return int(ahead) + 1


def latest_queued(session: Session, user_id: str) -> Job | None:
    return session.exec(
        select(Job)
        .where(Job.user_id == user_id, Job.status == JobStatus.QUEUED)
        .order_by(col(Job.created_at).desc())
    ).first()


def start_attempt(session: Session, job_id: str, now: datetime) -> Job | None:
    """Mark a queued (or redelivered running) job running and count the attempt."""
    result = session.execute(
        update(Job)
        .where(
            col(Job.id) == job_id,
            col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .values(status=JobStatus.RUNNING, attempts=Job.attempts + 1, started_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(Job, job_id, populate_existing=True)


def claim_for_delivery(session: Session, platform: str, lease: timedelta, limit: int) -> list[Job]:
    """Claim finished, undelivered jobs of `platform`; a claim older than `lease` is reclaimable."""
    now = utcnow()
    stale = now - lease
    candidates = session.exec(
        select(Job.id)
        .where(
            Job.platform == platform,
            col(Job.status).in_(FINISHED),
            col(Job.delivered_at).is_(None),
            or_(col(Job.delivery_claimed_at).is_(None), col(Job.delivery_claimed_at) < stale),
        )
        .order_by(col(Job.finished_at))
        .limit(limit)
    ).all()
    claimed = []
    for job_id in candidates:
        won = session.execute(
            update(Job)
            .where(
                col(Job.id) == job_id,
                col(Job.delivered_at).is_(None),
                or_(col(Job.delivery_claimed_at).is_(None), col(Job.delivery_claimed_at) < stale),
            )
            .values(delivery_claimed_at=now)
        )
        if won.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(job_id)
    return [j for j in (session.get(Job, i, populate_existing=True) for i in claimed) if j]


def mark_delivered(session: Session, job_id: str) -> None:
    session.execute(update(Job).where(col(Job.id) == job_id).values(delivered_at=utcnow()))


def release_claim(session: Session, job_id: str) -> None:
    session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.delivered_at).is_(None))
        .values(delivery_claimed_at=None)
    )


def undelivered_count(session: Session, user_id: str) -> int:
    """Jobs of this user still owed a reply (queued, running, or finished but not yet sent)."""
    active = [JobStatus.QUEUED, JobStatus.RUNNING, *FINISHED]
    n = session.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user_id, col(Job.delivered_at).is_(None), col(Job.status).in_(active))
    ).one()
    return int(n)
