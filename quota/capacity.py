"""How busy the GPUs are, measured from SQL: live workers, seconds per image, waits ahead.

Throughput is measured, not configured: seconds per image is the mean of recent jobs' service
times, and workers are those whose heartbeat is fresh. Until a worker has finished anything,
`assumed_seconds_per_image` stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from storage.models import Job, JobStatus, WorkerBeat

SERVICE_WINDOW = timedelta(minutes=15)
SERVICE_SAMPLE = 100


@dataclass(frozen=True)
class Load:
    workers: int
    seconds_per_image: float
    queued: int
    running: int

    @property
    def images_per_s(self) -> float:
        return self.workers / self.seconds_per_image

    def wait_for(self, ahead: int) -> float | None:
        """Seconds until a request with `ahead` queued jobs before it is done; None: no workers."""
        if self.workers == 0:
            return None
        # Running jobs are on average half done; then the request's own service time.
        return (ahead + 0.5 * self.running) / self.images_per_s + self.seconds_per_image


def live_workers(session: Session, now: datetime, heartbeat_s: float) -> int:
    fresh = now - timedelta(seconds=3 * heartbeat_s)
    n = session.exec(
        select(func.count()).select_from(WorkerBeat).where(col(WorkerBeat.last_seen) >= fresh)
    ).one()
    return int(n)


def seconds_per_image(session: Session, now: datetime, assumed: float) -> float:
    rows = session.exec(
        select(Job.started_at, Job.finished_at, Job.batch_size)
        .where(Job.status == JobStatus.DONE, col(Job.finished_at) >= now - SERVICE_WINDOW)
        .order_by(col(Job.finished_at).desc())
        .limit(SERVICE_SAMPLE)
    ).all()
    # A batch's jobs share one span: each image cost the span divided by the batch size.
    spans = [(f - s).total_seconds() / max(n, 1) for s, f, n in rows if s and f]
    return max(sum(spans) / len(spans), 0.001) if spans else assumed


def count_status(session: Session, status: str) -> int:
    n = session.exec(select(func.count()).select_from(Job).where(Job.status == status)).one()
    return int(n)


def measure(session: Session, now: datetime, heartbeat_s: float, assumed: float) -> Load:
    return Load(
        workers=live_workers(session, now, heartbeat_s),
        seconds_per_image=seconds_per_image(session, now, assumed),
        queued=count_status(session, JobStatus.QUEUED),
        running=count_status(session, JobStatus.RUNNING),
    )


def jobs_ahead(session: Session, sort_key: datetime) -> int:
    """Queued jobs served before a request arriving now with this sort key (ties go first)."""
    n = session.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.status == JobStatus.QUEUED, col(Job.sort_key) <= sort_key)
    ).one()
    return int(n)


def jobs_before(session: Session, job: Job) -> int:
    """Queued jobs the queue order (sort_key, created_at, id) serves before this one."""
    earlier = or_(
        col(Job.sort_key) < job.sort_key,
        and_(col(Job.sort_key) == job.sort_key, col(Job.created_at) < job.created_at),
        and_(
            col(Job.sort_key) == job.sort_key,
            col(Job.created_at) == job.created_at,
            col(Job.id) < job.id,
        ),
    )
    n = session.exec(
        select(func.count()).select_from(Job).where(Job.status == JobStatus.QUEUED, earlier)
    ).one()
    return int(n)


def recent_rate(session: Session, now: datetime, window_s: float = 300.0) -> float:
    """Images finished per second over the last `window_s` seconds."""
    n = session.exec(
        select(func.count())
        .select_from(Job)
        .where(
            Job.status == JobStatus.DONE,
            col(Job.finished_at) >= now - timedelta(seconds=window_s),
        )
    ).one()
    return int(n) / window_s
