"""The worker's claim: queue order, the batch limit, and no job claimed twice under contention."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest

from bots.core import Runtime
from storage.db import transaction
from storage.jobs import claim_batch, claim_next
from storage.models import Job, JobStatus, User, utcnow

pytestmark = pytest.mark.sql

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def queue_jobs(rt: Runtime, n: int, style: str = "ghibli", offset_s: int = 0) -> list[str]:
    """n queued jobs whose sort keys run backwards from creation order; ids in queue order."""
    with transaction(rt.engine) as s:
        if s.get(User, "console:c") is None:
            s.add(User(id="console:c"))
            s.flush()
        jobs = [
            Job(
                id=uuid.uuid4().hex,
                idempotency_key=uuid.uuid4().hex,
                user_id="console:c",
                platform="console",
                style=style,
                sort_key=T0 - timedelta(seconds=offset_s + i),
                quota_day=date(2026, 11, 22),
                reply_target="{}",
            )
            for i in range(n)
        ]
        s.add_all(jobs)
    return [job.id for job in sorted(jobs, key=lambda j: j.sort_key)]


def test_a_batch_is_the_first_jobs_in_queue_order_of_one_style(runtime: Runtime) -> None:
    ghibli = queue_jobs(runtime, 5)
    arcane = queue_jobs(runtime, 3, style="arcane", offset_s=100)  # ahead in the queue

    def claim(task: str, limit: int) -> list[str]:
        with transaction(runtime.engine) as s:
            jobs = claim_batch(s, task_id=task, worker_id="w", now=utcnow(), limit=limit)
            assert all(j.status == JobStatus.RUNNING and j.claim_task == task for j in jobs)
            return [j.id for j in jobs]

    assert claim("t1", 1) == arcane[:1]
    assert claim("t2", 3) == arcane[1:]  # the rest of its style; ghibli can't join the batch
    assert claim("t3", 3) == ghibli[:3]  # no more than the limit
    assert claim("t3", 3) == ghibli[:3]  # the same task again resumes what it claimed
    assert claim("t4", 3) == ghibli[3:]
    assert claim("t5", 3) == []


def test_concurrent_claims_take_each_job_exactly_once(runtime: Runtime) -> None:
    ids = queue_jobs(runtime, 24)

    def drain(worker: int) -> list[str]:
        taken = []
        while True:
            with transaction(runtime.engine) as s:
                job = claim_next(s, task_id=uuid.uuid4().hex, worker_id=f"w{worker}", now=utcnow())
                if job is None:
                    return taken
                taken.append(job.id)

    with ThreadPoolExecutor(max_workers=6) as pool:
        per_worker = list(pool.map(drain, range(6)))
    taken = [job_id for ids_ in per_worker for job_id in ids_]
    assert sorted(taken) == sorted(ids)  # every job once, none twice
    for ids_ in per_worker:  # each worker got its jobs in queue order
        assert ids_ == sorted(ids_, key=ids.index)
