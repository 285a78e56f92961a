"""How busy the GPUs are, measured from SQL: live workers, seconds per image, waits ahead.

Relax-lane jobs ("do it when there's room") run only when no normal job waits, so queued ones
are never ahead of a normal request: the queue figures count the normal lane only. Running
ones, of either lane, occupy workers and count.

Throughput is measured, not configured: seconds per image is the mean of recent jobs' service
times, and workers are those whose heartbeat is fresh. Until a worker has finished anything,
`assumed_seconds_per_image` stands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_
from sqlmodel import Session, col, select

from storage.models import Job, JobStatus, Lane, WorkerBeat

SERVICE_WINDOW = timedelta(minutes=15)
SERVICE_SAMPLE = 100


@dataclass(frozen=True)
class Load:
    workers: int
    seconds_per_image: float
    queued: int
    running: int
    # Queued jobs at or before one sort key, counted in the same statement: (key, count).
    counted_ahead: tuple[datetime, int] | None = None
    # One style's own measured seconds per image (a few-step preset is faster than a 30-step
    # one): the request's own service time. None: not asked, or nothing of it done lately.
    own_seconds: float | None = None

    def ahead_of(self, sort_key: datetime) -> int | None:
        """jobs_ahead(sort_key) as measured, if this measurement counted it for that key."""
        if self.counted_ahead is None or self.counted_ahead[0] != sort_key:
            return None
        return self.counted_ahead[1]

    @property
    def images_per_s(self) -> float:
        return self.workers / self.seconds_per_image

    def wait_for(self, ahead: int) -> float | None:
        """Seconds until a request with `ahead` queued jobs before it is done; None: no workers."""
        if self.workers == 0:
            return None
        # Running jobs are on average half done; then the request's own service time.
        return (ahead + 0.5 * self.running) / self.images_per_s + self.service_s

    @property
    def service_s(self) -> float:
        """Seconds to make one image of the style asked about (the mean where unmeasured)."""
        return self.seconds_per_image if self.own_seconds is None else self.own_seconds

    def wait_from_cold(self, ahead: int, cold_start_s: float | None) -> float | None:
        """wait_for, or where no worker is live but one starts on demand (an autoscaler that
        scales to zero, STYLEBOT_COLD_START_S): the start, then one worker's pace."""
        wait = self.wait_for(ahead)
        if wait is not None or cold_start_s is None:
            return wait
        return cold_start_s + (ahead + 0.5 * self.running) * self.seconds_per_image + self.service_s


def live_workers(session: Session, now: datetime, heartbeat_s: float) -> int:
    fresh = now - timedelta(seconds=3 * heartbeat_s)
    n = session.exec(
        select(func.count()).select_from(WorkerBeat).where(col(WorkerBeat.last_seen) >= fresh)
    ).one()
    return int(n)


def _span_seconds(dialect: str, start: Any, end: Any) -> Any:
    """end - start in seconds, in SQL (SQLite keeps timestamps as text: julianday, to 1 ms)."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _mean_image_seconds(dialect: str, of_style: bool = False) -> Any:
    """The mean of the last SERVICE_SAMPLE done jobs' seconds per image (of one style, the
    `style` parameter, when asked), NULL if none."""
    where: list[Any] = [
        Job.status == JobStatus.DONE,
        col(Job.finished_at) >= bindparam("done_since"),
    ]
    if of_style:
        where.append(col(Job.style) == bindparam("style"))
    recent = (
        select(Job.started_at, Job.finished_at, Job.batch_size)
        .where(*where)
        .order_by(col(Job.finished_at).desc())
        .limit(SERVICE_SAMPLE)
        .subquery()
    )
    # A batch's jobs share one span: each image cost the span divided by the batch size.
    per_image = _span_seconds(dialect, recent.c.started_at, recent.c.finished_at) / case(
        (recent.c.batch_size > 1, recent.c.batch_size), else_=1
    )
    return select(func.avg(per_image)).where(recent.c.started_at.is_not(None)).scalar_subquery()


def count_status(session: Session, status: str) -> int:
    n = session.exec(select(func.count()).select_from(Job).where(Job.status == status)).one()
    return int(n)


def _count_sq(status: str) -> Any:
    where = [Job.status == status]
    if status == JobStatus.QUEUED:
        where.append(Job.lane == Lane.NORMAL)  # queued relax jobs are behind every request
    return select(func.count()).select_from(Job).where(*where).scalar_subquery()


@cache
def _measure_statement(dialect: str, count_ahead: bool, of_style: bool = False) -> Any:
    """Built once per dialect: the statement is large enough that building it costs ~0.5 ms."""
    workers = select(func.count()).select_from(WorkerBeat)
    figures = [
        workers.where(col(WorkerBeat.last_seen) >= bindparam("beat_since")).scalar_subquery(),
        _mean_image_seconds(dialect),
        _count_sq(JobStatus.QUEUED),
        _count_sq(JobStatus.RUNNING),
    ]
    if count_ahead:
        figures.append(_ahead_statement(bindparam("ahead_of")).scalar_subquery())
    if of_style:
        figures.append(_mean_image_seconds(dialect, of_style=True))
    return select(*figures)


def measure(
    session: Session,
    now: datetime,
    heartbeat_s: float,
    assumed: float,
    *,
    ahead_of: datetime | None = None,
    style: str | None = None,
) -> Load:
    """Workers, seconds per image, queued and running in one statement (admission runs it
    often); with `ahead_of`, also jobs_ahead(ahead_of), which admission asks for next; with
    `style`, that style's own seconds per image."""
    dialect = session.get_bind().dialect.name
    stmt = _measure_statement(dialect, ahead_of is not None, style is not None)
    since = {"beat_since": now - timedelta(seconds=3 * heartbeat_s)}
    params = {**since, "done_since": now - SERVICE_WINDOW, "ahead_of": ahead_of, "style": style}
    n_workers, mean, queued, running, *more = session.execute(stmt, params).one()
    ahead = more.pop(0) if ahead_of is not None else None
    own = more.pop(0) if style is not None else None
    return Load(
        workers=int(n_workers),
        seconds_per_image=assumed if mean is None else max(float(mean), 0.001),
        queued=int(queued),
        running=int(running),
        counted_ahead=None if ahead_of is None or ahead is None else (ahead_of, int(ahead)),
        own_seconds=None if own is None else max(float(own), 0.001),
    )


def _ahead_statement(sort_key: Any) -> Any:
    return (
        select(func.count())
        .select_from(Job)
        .where(
            Job.status == JobStatus.QUEUED, Job.lane == Lane.NORMAL, col(Job.sort_key) <= sort_key
        )
    )


def jobs_ahead(session: Session, sort_key: datetime) -> int:
    """Queued jobs served before a request arriving now with this sort key (ties go first)."""
    return int(session.exec(_ahead_statement(sort_key)).one())


def jobs_before(session: Session, job: Job) -> int:
    """Queued jobs the queue order (lane, sort_key, created_at, id) serves before this one."""
    earlier = or_(
        col(Job.sort_key) < job.sort_key,
        and_(col(Job.sort_key) == job.sort_key, col(Job.created_at) < job.created_at),
        and_(
            col(Job.sort_key) == job.sort_key,
            col(Job.created_at) == job.created_at,
            col(Job.id) < job.id,
        ),
    )
    if job.lane == Lane.RELAX:  # every queued normal job, then the relax jobs before it
        earlier = or_(col(Job.lane) == Lane.NORMAL, and_(col(Job.lane) == Lane.RELAX, earlier))
    else:
        earlier = and_(col(Job.lane) == Lane.NORMAL, earlier)
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
