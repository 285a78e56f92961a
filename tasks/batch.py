"""One worker turn: claim a batch from SQL, style it in one backend call, settle each job alone.

Why claim from SQL rather than batch Celery messages (celery-batches): the queue order (paid
first, free aged) already lives in SQL, and a claim can pick exactly the jobs that can share a
pipeline call — same style, same size bucket. The Celery message that triggered the turn is a
token; the messages of the other claimed jobs later find nothing to do and return at once.
Acks, attempts, refunds and delivery stay per job: a bad input fails only its own job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlmodel import Session

from quota.lifecycle import finish_done, finish_failed
from storage.db import transaction
from storage.jobs import any_queued, claim_batch, claim_more, requeue, set_batch_size
from storage.models import Job, utcnow

if TYPE_CHECKING:
    from tasks.stylize import WorkerContext

log = logging.getLogger("stylebot.worker")

SETTLE_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
LOCKED_RETRY_S = (0.02, 0.05, 0.1, 0.2)


def run_next(ctx: WorkerContext, task_id: str) -> tuple[str, list[str]]:
    """Claim and process one batch; returns (outcome, job ids). Job failures don't raise."""
    jobs = _gather(ctx, task_id)
    if not jobs:
        return "idle", []  # this token's job was cancelled or taken in another batch
    try:
        live = [job for job in jobs if not _poisoned(ctx, job)]
        loaded = [(job, img) for job in live if (img := _load(ctx, job)) is not None]
        if loaded:
            _style(ctx, loaded)
    except Exception:  # claimed but not settled: back to the queue, never left "running"
        _settle(ctx, lambda s: [requeue(s, job.id) for job in jobs])
        raise
    return "processed", [job.id for job in jobs]


def _gather(ctx: WorkerContext, task_id: str) -> list[Job]:
    """Up to max_batch jobs; if short, wait batch_wait_ms once for more of the same kind."""
    s_ = ctx.settings
    for pause in (*LOCKED_RETRY_S, None):
        with transaction(ctx.engine) as s:
            jobs = claim_batch(
                s, task_id=task_id, worker_id=ctx.worker_id, now=utcnow(), limit=s_.max_batch
            )
            wait = bool(jobs) and len(jobs) < s_.max_batch and s_.batch_wait_ms > 0
            if len(jobs) > 1 and not wait:
                set_batch_size(s, [job.id for job in jobs])  # one transaction, the common case
            # Nothing claimed, yet something waits: another transaction held its row for a
            # moment (SKIP LOCKED passed it over). Look again rather than waste this token.
            if jobs or pause is None or not any_queued(s):
                break
        time.sleep(pause)
    if wait and jobs[0].attempts == 1:
        time.sleep(s_.batch_wait_ms / 1000)
        try:
            jobs += _more(ctx, jobs, task_id)
        except (OperationalError, DisconnectionError) as exc:  # style what is claimed already
            log.warning("claim_more_failed error=%s", type(exc).__name__)
    return jobs


def _more(ctx: WorkerContext, jobs: list[Job], task_id: str) -> list[Job]:
    with transaction(ctx.engine) as s:
        more = claim_more(
            s,
            like=jobs[0],
            task_id=task_id,
            worker_id=ctx.worker_id,
            now=utcnow(),
            limit=ctx.settings.max_batch - len(jobs),
        )
        if len(jobs) + len(more) > 1:
            set_batch_size(s, [job.id for job in [*jobs, *more]])
    return more


def _poisoned(ctx: WorkerContext, job: Job) -> bool:
    if job.attempts <= ctx.settings.max_attempts:
        return False
    fail(ctx, job, "attempts")
    return True


def _load(ctx: WorkerContext, job: Job) -> Image.Image | None:
    try:
        return ctx.store.load_input(job.id)
    except Exception as exc:  # a missing or damaged input fails this job only
        log.warning("input_unreadable job=%s error=%s", job.id, type(exc).__name__)
        fail(ctx, job, "input")
        return None


def _style(ctx: WorkerContext, loaded: list[tuple[Job, Image.Image]]) -> None:
    jobs, images = [j for j, _ in loaded], [img for _, img in loaded]
    start = time.perf_counter()
    try:
        outputs = ctx.backend.stylize(images, ctx.styles[jobs[0].style])
    except SoftTimeLimitExceeded:
        for job in jobs:
            fail(ctx, job, "timeout")
        return
    except Exception as exc:
        if len(loaded) > 1:  # find the one that breaks the batch: retry each on its own
            log.warning("batch_failed size=%d error=%s", len(loaded), type(exc).__name__)
            for pair in loaded:
                _style(ctx, [pair])
            return
        log.warning("job_failed job=%s error=%s", jobs[0].id, type(exc).__name__)
        fail(ctx, jobs[0], type(exc).__name__)
        return
    log.info(
        "batch_done size=%d style=%s seconds=%.3f%s",
        len(jobs),
        jobs[0].style,
        time.perf_counter() - start,
        _backend_fields(ctx),
    )
    for job, styled in zip(jobs, outputs, strict=True):
        _finish(ctx, job, styled)


def _backend_fields(ctx: WorkerContext) -> str:
    """The backend's own figures for the batch log line (VRAM peak, new graphs), if any."""
    fields = getattr(ctx.backend, "log_fields", None)
    return f" {fields()}" if fields is not None and fields() else ""


def _finish(ctx: WorkerContext, job: Job, styled: Image.Image) -> None:
    try:
        path = ctx.store.save_result(job.id, styled)
    except Exception as exc:
        log.warning("store_failed job=%s error=%s", job.id, type(exc).__name__)
        fail(ctx, job, "store")
        return
    _settle(ctx, lambda s: finish_done(s, job, str(path)))
    ctx.store.delete_input(job.id)
    log.info("job_done job=%s style=%s attempt=%d", job.id, job.style, job.attempts)


def fail(ctx: WorkerContext, job: Job, code: str) -> None:
    _settle(ctx, lambda s: finish_failed(s, job, code))
    ctx.store.delete_input(job.id)


def _settle(ctx: WorkerContext, settle: Callable[[Session], object]) -> None:
    """Record a job's ending. The database may be restarting: the GPU work is done and the
    result stored, so wait for it (about a minute) rather than leave the job running."""
    for delay in SETTLE_RETRY_S:
        try:
            with transaction(ctx.engine) as s:
                settle(s)
            return
        except (OperationalError, DisconnectionError) as exc:
            log.warning("settle_retry error=%s in_s=%s", type(exc).__name__, delay)
            time.sleep(delay)
    with transaction(ctx.engine) as s:  # the last try: its error is the task's
        settle(s)
