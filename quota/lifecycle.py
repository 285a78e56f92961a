"""Job endings that settle the ledger in the same transaction as the status change."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from quota.ledger import commit, refund
from storage.models import Job, JobStatus, Lane, utcnow


def _lane(job: Job) -> dict[str, bool]:
    """A relax-lane job never counted as in flight: settling it releases nothing."""
    return {"in_flight": job.lane != Lane.RELAX}


def _transition(session: Session, job: Job, allowed: tuple[str, ...], **values: object) -> bool:
    result = session.execute(
        update(Job).where(col(Job.id) == job.id, col(Job.status).in_(allowed)).values(**values)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def finish_done(
    session: Session,
    job: Job,
    result_path: str,
    now: datetime | None = None,
    styled_from: datetime | None = None,
) -> bool:
    """running → done; the reservation is committed. `styled_from`: when its pipeline call
    began, if later than the claim (an overlapping worker claims a batch ahead), so the
    measured seconds per image count the styling, not the wait for the GPU."""
    extra = {} if styled_from is None else {"started_at": styled_from}
    if not _transition(
        session,
        job,
        (JobStatus.RUNNING,),
        status=JobStatus.DONE,
        result_path=result_path,
        finished_at=now or utcnow(),
        **extra,
    ):
        return False
    commit(session, job_id=job.id, user_id=job.user_id, day=job.quota_day, **_lane(job))
    return True


def finish_failed(session: Session, job: Job, error_code: str, now: datetime | None = None) -> bool:
    """queued/running → failed; the reservation is refunded."""
    if not _transition(
        session,
        job,
        (JobStatus.QUEUED, JobStatus.RUNNING),
        status=JobStatus.FAILED,
        error_code=error_code[:40],
        finished_at=now or utcnow(),
    ):
        return False
    refund(session, job_id=job.id, user_id=job.user_id, day=job.quota_day, **_lane(job))
    return True


def cancel(session: Session, job: Job, now: datetime | None = None) -> bool:
    """queued → cancelled; refunded. A running job can't be cancelled (its GPU work is spent)."""
    if not _transition(
        session, job, (JobStatus.QUEUED,), status=JobStatus.CANCELLED, finished_at=now or utcnow()
    ):
        return False
    refund(session, job_id=job.id, user_id=job.user_id, day=job.quota_day, **_lane(job))
    return True
