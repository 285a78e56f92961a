"""For the status page tests: jobs in known states, what SQL says about them, a served page."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bots.core import Runtime
from bots.core.status_page import StatusPage
from storage.db import transaction
from storage.models import Control, Job, JobStatus, User, WorkerBeat

SPAN_S = 30.0  # every finished job took this long: the measured seconds per image


def add_job(s: Session, status: str, tier: str, *, age_s: float, now: datetime) -> str:
    """A job of `tier`, created `age_s` ago; finished `age_s` ago if done or failed."""
    at = now - timedelta(seconds=age_s)
    job_id = uuid.uuid4().hex
    s.add(
        Job(
            id=job_id,
            idempotency_key=job_id,
            user_id=f"console:status-{tier}",
            platform="console",
            style="ghibli",
            tier=tier,
            status=status,
            sort_key=at,  # long ago: no head start passes anyone, every tier waits alike
            quota_day=at.date(),
            reply_target="{}",
            created_at=at - timedelta(seconds=SPAN_S),
            started_at=None if status == JobStatus.QUEUED else at - timedelta(seconds=SPAN_S),
            finished_at=at if status in (JobStatus.DONE, JobStatus.FAILED) else None,
        )
    )
    return job_id


def seed(rt: Runtime) -> None:
    """Queued 3 free, 2 plus, 1 pro (20 min old); 1 running; done: 4 ten minutes ago, 2 forty
    minutes ago, 3 two hours ago; 1 failed five minutes ago."""
    now = rt.clock()
    with transaction(rt.engine) as s:
        for tier in ("free", "plus", "pro"):
            s.add(User(id=f"console:status-{tier}", tier=tier))
        s.flush()
        for tier, n in (("free", 3), ("plus", 2), ("pro", 1)):
            for _ in range(n):
                add_job(s, JobStatus.QUEUED, tier, age_s=1200, now=now)
        add_job(s, JobStatus.RUNNING, "free", age_s=10, now=now)
        for age_s, n in ((600, 4), (2400, 2), (7200, 3)):
            for _ in range(n):
                add_job(s, JobStatus.DONE, "plus", age_s=age_s, now=now)
        add_job(s, JobStatus.FAILED, "free", age_s=300, now=now)


def finish_queued(rt: Runtime, tier: str, n: int) -> None:
    """n queued jobs of `tier` finish now, each after SPAN_S seconds of work."""
    now = rt.clock()
    with transaction(rt.engine) as s:
        ids = s.exec(
            select(Job.id).where(Job.status == JobStatus.QUEUED, Job.tier == tier).limit(n)
        ).all()
        s.execute(
            update(Job)
            .where(col(Job.id).in_(ids))
            .values(
                status=JobStatus.DONE,
                started_at=now - timedelta(seconds=SPAN_S),
                finished_at=now,
            )
        )


@dataclass(frozen=True)
class Truth:
    """The figures, counted straight from the tables."""

    queued: dict[str, int]
    running: int
    done_last_hour: int
    workers: int
    mode: str | None  # the control row; None: never set (open)

    def wait_s(self) -> float:
        """Admission's estimate for any tier here: everything queued is ahead (no head start
        passes a job this old), running jobs half done, then its own image."""
        ahead = sum(self.queued.values()) + 0.5 * self.running
        return ahead * SPAN_S / self.workers + SPAN_S


def truth(rt: Runtime) -> Truth:
    now, beat_s = rt.clock(), rt.settings.worker_heartbeat_s
    with transaction(rt.engine) as s:

        def count(table: type, *where: Any) -> int:
            return int(s.exec(select(func.count()).select_from(table).where(*where)).one())

        queued = {
            tier: count(Job, Job.status == "queued", Job.tier == tier)
            for tier in ("free", "plus", "pro")
        }
        mode = s.get(Control, "capacity_mode")
        return Truth(
            queued=queued,
            running=count(Job, Job.status == "running"),
            done_last_hour=count(
                Job, Job.status == "done", col(Job.finished_at) >= now - timedelta(hours=1)
            ),
            workers=count(
                WorkerBeat, col(WorkerBeat.last_seen) >= now - timedelta(seconds=3 * beat_s)
            ),
            mode=None if mode is None else mode.value,
        )


@contextmanager
def serving(rt: Runtime, refresh_s: float = 15.0, cache_s: float = 2.0) -> Iterator[str]:
    """The real status server on 127.0.0.1 (a free port), on its own loop thread; its URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="status-loop", daemon=True)
    thread.start()
    page = StatusPage(rt, host="127.0.0.1", port=0, refresh_s=refresh_s, cache_s=cache_s)
    asyncio.run_coroutine_threadsafe(page.start(), loop).result(10)
    try:
        yield page.url
    finally:
        asyncio.run_coroutine_threadsafe(page.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
