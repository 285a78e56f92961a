"""Job and user rows: the SQL the core, the worker and the delivery loop share."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from storage.db import upsert_insert
from storage.models import FINISHED, Job, JobStatus, Lane, User, WorkerBeat, utcnow


def ensure_user(session: Session, user_id: str, username: str | None, locale: str) -> User:
    """Fetch the user, creating them on first contact; keep username and locale fresh."""
    # Two first messages at once must not both try to create the user. A new user comes back
    # from the INSERT itself; one who exists already (no row returned) takes a SELECT.
    created = session.scalars(
        upsert_insert(session, User)
        .values(id=user_id, username=username, locale=locale, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(User),
        execution_options={"populate_existing": True},
    ).one_or_none()
    if created is not None:
        return created
    user = session.get(User, user_id, populate_existing=True)
    assert user is not None
    if (user.username, user.locale) != (username or user.username, locale):
        user.username = username or user.username
        user.locale = locale
        session.add(user)
    return user


def job_by_key(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.idempotency_key == key)).first()


def latest_queued(session: Session, user_id: str) -> Job | None:
    return session.exec(
        select(Job)
        .where(Job.user_id == user_id, Job.status == JobStatus.QUEUED)
        .order_by(col(Job.created_at).desc())
    ).first()


def claim_next(session: Session, *, task_id: str, worker_id: str, now: datetime) -> Job | None:
    """Take the queued job that the queue order serves first and mark it running.

    A Celery message is a token for one unit of work, not a promise of a particular job: SQL
    decides the order (sort_key), so paid tiers go first and aging protects the free tier. A
    redelivered message (its worker died) resumes the job(s) its first delivery claimed.
    """
    jobs = claim_batch(session, task_id=task_id, worker_id=worker_id, now=now, limit=1)
    return jobs[0] if jobs else None


def claim_batch(
    session: Session, *, task_id: str, worker_id: str, now: datetime, limit: int
) -> list[Job]:
    """The first job in queue order, plus up to limit-1 more of the same style and bucket."""
    resumed = _update_returning(
        session,
        update(Job)
        .where(col(Job.claim_task) == task_id, col(Job.status) == JobStatus.RUNNING)
        .values(attempts=Job.attempts + 1, started_at=now, worker_id=worker_id),
    )
    if resumed:
        return resumed
    first = _claim(session, [], 1, task_id=task_id, worker_id=worker_id, now=now)
    if not first or limit == 1:
        return first
    return first + claim_more(
        session, like=first[0], task_id=task_id, worker_id=worker_id, now=now, limit=limit - 1
    )


def any_queued(session: Session) -> bool:
    """Whether any job waits (rows locked by other transactions included)."""
    found = session.exec(select(Job.id).where(Job.status == JobStatus.QUEUED).limit(1)).first()
    return found is not None


def claim_more(
    session: Session, *, like: Job, task_id: str, worker_id: str, now: datetime, limit: int
) -> list[Job]:
    """Queued jobs that can share `like`'s pipeline call: same style, same size bucket.

    A normal job's batch takes normal jobs only: a relax job riding along would lengthen the
    call that normal jobs wait behind. A relax job was picked only because no normal job
    waited, so its batch may take both lanes (normal first)."""
    same = [Job.style == like.style, Job.bucket == like.bucket]
    if like.lane != Lane.RELAX:
        same.append(Job.lane == Lane.NORMAL)
    return _claim(session, same, limit, task_id=task_id, worker_id=worker_id, now=now)


def _claim(
    session: Session, where: list[Any], limit: int, *, task_id: str, worker_id: str, now: datetime
) -> list[Job]:
    """Pick and mark running in one statement: WITH picked AS (...) UPDATE ... RETURNING.

    Normal jobs first ('normal' sorts before 'relax'), then queue order: a relax job is taken
    only when no normal job waits, so relax work never makes a normal job wait longer."""
    pick = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED, *where)
        .order_by(col(Job.lane), col(Job.sort_key), col(Job.created_at), col(Job.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)  # concurrent workers take different jobs
    # MATERIALIZED: the pick (and its row locks) happens once; PostgreSQL could otherwise run a
    # LIMIT subquery once per outer row and claim more jobs than asked. SQLite needs no row
    # locks: its BEGIN IMMEDIATE lets one writer in at a time.
    picked = pick.cte("picked").prefix_with("MATERIALIZED")
    return _update_returning(
        session,
        update(Job)
        .where(col(Job.id).in_(select(picked.c.id)))
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            started_at=now,
            claim_task=task_id,
            worker_id=worker_id,
        ),
    )


def _update_returning(session: Session, stmt: Any) -> list[Job]:
    """Run an UPDATE of jobs; the updated rows as fresh Job objects, in queue order."""
    jobs = session.scalars(
        stmt.returning(Job),
        execution_options={"synchronize_session": False, "populate_existing": True},
    ).all()
    return sorted(jobs, key=lambda job: (job.lane, job.sort_key, job.created_at, job.id))


def set_batch_size(session: Session, job_ids: list[str]) -> None:
    session.execute(update(Job).where(col(Job.id).in_(job_ids)).values(batch_size=len(job_ids)))


def expired_running(session: Session, now: datetime, lease: timedelta) -> list[Job]:
    """Running jobs whose worker has been silent past the lease (it died; its message is lost)."""
    return list(
        session.exec(
            select(Job).where(Job.status == JobStatus.RUNNING, col(Job.started_at) < now - lease)
        ).all()
    )


def orphaned_running(session: Session, now: datetime, silent: timedelta) -> list[Job]:
    """Running jobs whose worker has not beaten for `silent`: it died with the job (a kill -9,
    a lost machine), so the job would otherwise wait for the whole lease."""
    live = select(WorkerBeat.id).where(col(WorkerBeat.last_seen) >= now - silent)
    return list(
        session.exec(
            select(Job).where(
                Job.status == JobStatus.RUNNING,
                col(Job.started_at) < now - silent,
                or_(col(Job.worker_id).is_(None), col(Job.worker_id).not_in(live)),
            )
        ).all()
    )


def requeue(session: Session, job_id: str) -> bool:
    result = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
        .values(status=JobStatus.QUEUED, claim_task=None, worker_id=None, token_at=utcnow())
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def overdue_tokens(
    session: Session, cutoff: datetime, now: datetime, limit: int = 200, *, relax: bool = True
) -> list[str]:
    """Queued jobs whose last token went out before `cutoff` (the broker lost it, or it never
    left): marked as re-tokened `now` in the same statement, so one bot process re-issues each.
    `relax` False: normal-lane jobs only."""
    stale = func.coalesce(col(Job.token_at), col(Job.created_at)) < cutoff
    lanes = [] if relax else [Job.lane == Lane.NORMAL]
    pick = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED, stale, *lanes)
        .order_by(col(Job.sort_key))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    picked = pick.cte("picked").prefix_with("MATERIALIZED")
    jobs = _update_returning(
        session,
        update(Job)
        .where(col(Job.id).in_(select(picked.c.id)), col(Job.status) == JobStatus.QUEUED)
        .values(token_at=now),
    )
    return [job.id for job in jobs]


def untoken(session: Session, job_ids: list[str]) -> None:
    """The tokens for these jobs could not be sent: due again at the next look."""
    session.execute(update(Job).where(col(Job.id).in_(job_ids)).values(token_at=None))


def beat(session: Session, worker_id: str, now: datetime) -> None:
    """Record that a worker process is alive (upsert of its heartbeat row)."""
    stmt = upsert_insert(session, WorkerBeat).values(id=worker_id, started_at=now, last_seen=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={"last_seen": now}))


def forget_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(WorkerBeat).where(col(WorkerBeat.id) == worker_id))


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


def earlier_result(session: Session, user_id: str, digest: str, day: date) -> Job | None:
    """A finished job of this user for the same photo and style on the same quota day."""
    # The latest is picked here, not by ORDER BY finished_at: SQLite would rather walk every
    # done job in finish order than use (user_id, input_digest) for the few that match.
    found = session.exec(
        select(Job).where(
            Job.user_id == user_id,
            Job.input_digest == digest,
            Job.quota_day == day,
            Job.status == JobStatus.DONE,
        )
    ).all()
    return max(found, key=lambda job: job.finished_at or job.created_at, default=None)


def waiting_jobs(session: Session, platform: str, limit: int = 500) -> list[Job]:
    """Queued and running normal-lane jobs of `platform`, oldest first: the ones whose queue
    status may change. A relax job has no place in the queue to show; its answer stands."""
    return list(
        session.exec(
            select(Job)
            .where(
                Job.platform == platform,
                Job.lane == Lane.NORMAL,
                col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]),
            )
            .order_by(col(Job.created_at))
            .limit(limit)
        ).all()
    )


def recent_done(session: Session, user_id: str, since: datetime, limit: int) -> list[Job]:
    """This user's done jobs with a stored result, finished after `since`, newest first."""
    return list(
        session.exec(
            select(Job)
            .where(
                Job.user_id == user_id,
                Job.status == JobStatus.DONE,
                col(Job.result_path).is_not(None),
                col(Job.finished_at) >= since,
            )
            .order_by(col(Job.finished_at).desc())
            .limit(limit)
        ).all()
    )


def set_status_ref(session: Session, job_id: str, ref: str) -> None:
    session.execute(update(Job).where(col(Job.id) == job_id).values(status_ref=ref))


def take_status_ref(session: Session, job_id: str) -> tuple[str, str] | None:
    """(reply target JSON, status ref) of a job's status message, then cleared: of two
    processes finishing it, the one whose conditional UPDATE wins removes the message."""
    row = session.execute(
        select(Job.reply_target, Job.status_ref).where(
            col(Job.id) == job_id, col(Job.status_ref).is_not(None)
        )
    ).first()
    if row is None:
        return None
    won = session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status_ref) == row[1])
        .values(status_ref=None)
    )
    return (row[0], row[1]) if won.rowcount == 1 else None  # type: ignore[attr-defined]


def relax_held(session: Session, user_id: str) -> int:
    """This person's relax-lane jobs still queued or running (bounded by the tier's relax cap)."""
    n = session.exec(
        select(func.count())
        .select_from(Job)
        .where(
            Job.user_id == user_id,
            Job.lane == Lane.RELAX,
            col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
    ).one()
    return int(n)


def stale_relax(session: Session, cutoff: datetime, limit: int = 200) -> list[Job]:
    """Relax-lane jobs still queued that were admitted before `cutoff` (their time is up)."""
    return list(
        session.exec(
            select(Job)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.lane == Lane.RELAX,
                col(Job.created_at) < cutoff,
            )
            .order_by(col(Job.created_at))
            .limit(limit)
        ).all()
    )
