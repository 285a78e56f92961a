"""One worker turn: claim a batch from SQL, style it in one backend call, settle each job alone.

Why claim from SQL rather than batch Celery messages (celery-batches): the queue order (paid
first, free aged) already lives in SQL, and a claim can pick exactly the jobs that can share a
pipeline call — same style, same size bucket. The Celery message that triggered the turn is a
token; the messages of the other claimed jobs later find nothing to do and return at once.
Acks, attempts, refunds and delivery stay per job: a bad input fails only its own job.

Pipeline calls run on the worker process's one GPU thread (WorkerContext.on_gpu), the thread
that warmed the models up. With STYLEBOT_OVERLAP (the default) a token's work is a turn of
batches, CPU and GPU work overlapped (tasks/turn.py); this module is the one-batch path and the
steps both share.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlmodel import Session

from quota.lifecycle import finish_done, finish_failed
from storage import metrics
from storage.db import transaction
from storage.jobs import any_queued, claim_batch, claim_more, requeue, set_batch_size
from storage.models import Job, utcnow
from tasks.safety import Verdict, check, hold

if TYPE_CHECKING:
    from tasks.stylize import WorkerContext

log = logging.getLogger("stylebot.worker")

SETTLE_RETRY_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
LOCKED_RETRY_S = (0.02, 0.05, 0.1, 0.2)
T = TypeVar("T")


def run_next(ctx: WorkerContext, task_id: str) -> tuple[str, list[str]]:
    """Claim and process one batch, or with overlap a turn of batches while jobs wait;
    returns (outcome, job ids). Job failures don't raise."""
    if ctx.settings.overlap:
        from tasks.turn import Turn  # it builds on this module's helpers

        return Turn(ctx, task_id).run()
    jobs = gather(ctx, task_id)
    if not jobs:
        return "idle", []  # this token's job was cancelled or taken in another batch
    try:
        live = [job for job in jobs if not poisoned(ctx, job)]
        loaded = [(job, img) for job in live if (img := load_input(ctx, job)) is not None]
        if loaded:
            style_alone(ctx, loaded)
    except Exception:  # claimed but not settled: back to the queue, never left "running"
        settle(ctx, lambda s: [requeue(s, job.id) for job in jobs])
        raise
    return "processed", [job.id for job in jobs]


def gather(ctx: WorkerContext, task_id: str) -> list[Job]:
    """Up to max_batch jobs; if short, wait batch_wait_ms once for more of the same kind."""
    s_ = ctx.settings
    for pause in (*LOCKED_RETRY_S, None):
        with transaction(ctx.engine) as s:
            jobs = claim_jobs(s, ctx, task_id)
            wait = bool(jobs) and len(jobs) < batch_limit(ctx, jobs[0].style)
            wait = wait and s_.batch_wait_ms > 0
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


def claim_jobs(s: Session, ctx: WorkerContext, task_id: str) -> list[Job]:
    """claim_batch, taking at most batch_limit jobs of the first claimed job's style."""
    cap, now = ctx.settings.max_batch, utcnow()
    if all(style.batch_cap(cap) == cap for style in ctx.styles.values()):  # one statement
        return claim_batch(s, task_id=task_id, worker_id=ctx.worker_id, now=now, limit=cap)
    jobs = claim_batch(s, task_id=task_id, worker_id=ctx.worker_id, now=now, limit=1)
    if len(jobs) == 1 and (limit := batch_limit(ctx, jobs[0].style)) > 1:
        jobs += claim_more(
            s, like=jobs[0], task_id=task_id, worker_id=ctx.worker_id, now=now, limit=limit - 1
        )
    return jobs


def batch_limit(ctx: WorkerContext, style: str) -> int:
    """Jobs of `style` one call takes: STYLEBOT_MAX_BATCH, or the style's max_batch if lower
    (editing pipelines that take one photo per call)."""
    preset = ctx.styles.get(style)
    cap = ctx.settings.max_batch
    return cap if preset is None else preset.batch_cap(cap)


def _more(ctx: WorkerContext, jobs: list[Job], task_id: str) -> list[Job]:
    with transaction(ctx.engine) as s:
        more = claim_more(
            s,
            like=jobs[0],
            task_id=task_id,
            worker_id=ctx.worker_id,
            now=utcnow(),
            limit=batch_limit(ctx, jobs[0].style) - len(jobs),
        )
        if len(jobs) + len(more) > 1:
            set_batch_size(s, [job.id for job in [*jobs, *more]])
    return more


def poisoned(ctx: WorkerContext, job: Job) -> bool:
    if job.attempts > 1:  # every claimed job passes here once per claim
        metrics.redelivered()
    if job.attempts <= ctx.settings.max_attempts:
        return False
    fail(ctx, job, "attempts")
    return True


def load_input(ctx: WorkerContext, job: Job) -> Image.Image | None:
    try:
        image = ctx.store.load_input(job.id)
    except Exception as exc:  # a missing or damaged input fails this job only
        log.warning("input_unreadable job=%s error=%s", job.id, type(exc).__name__)
        fail(ctx, job, "input")
        return None
    return None if _photo_refused(ctx, job, image) else image


def _photo_refused(ctx: WorkerContext, job: Job, image: Image.Image) -> bool:
    """STYLEBOT_SAFETY_CHECK_INPUT: a flagged photo is refused before styling, refunded."""
    found = _screen(ctx, job, image, photo=True)
    if found is None:
        return False
    if isinstance(found, Verdict):
        log.info("input_held job=%s label=%s score=%.3f", job.id, found.label, found.score)
        fail(ctx, job, "input_held")
    return True


def _screen(
    ctx: WorkerContext, job: Job, image: Image.Image, *, photo: bool = False
) -> Verdict | str | None:
    """The safety check's verdict; "failed" (and the job failed) when the check itself broke:
    nothing unchecked goes out."""
    try:
        return check(ctx.settings, image, photo=photo)
    except Exception as exc:
        log.warning("safety_failed job=%s error=%s", job.id, type(exc).__name__)
        fail(ctx, job, "safety")
        return "failed"


def style_alone(ctx: WorkerContext, loaded: list[tuple[Job, Image.Image]]) -> None:
    jobs, images = [j for j, _ in loaded], [img for _, img in loaded]
    start = time.perf_counter()
    try:
        outputs = ctx.on_gpu(ctx.backend.stylize, images, ctx.styles[jobs[0].style])
    except Exception as exc:  # SoftTimeLimitExceeded is one too
        call_failed(ctx, loaded, exc)
        return
    log_batch(ctx, jobs, time.perf_counter() - start)
    for job, styled in zip(jobs, outputs, strict=True):
        finish_job(ctx, job, styled)


def call_failed(
    ctx: WorkerContext, loaded: list[tuple[Job, Image.Image]], exc: BaseException
) -> None:
    """A pipeline call raised: out of time fails its jobs; otherwise a batch is retried one job
    at a time to find the one that breaks it, and a single job fails with the error's name."""
    jobs = [job for job, _ in loaded]
    if isinstance(exc, SoftTimeLimitExceeded):
        for job in jobs:
            fail(ctx, job, "timeout")
    elif len(loaded) > 1:
        log.warning("batch_failed size=%d error=%s", len(loaded), type(exc).__name__)
        for pair in loaded:
            style_alone(ctx, [pair])
    else:
        log.warning("job_failed job=%s error=%s", jobs[0].id, type(exc).__name__)
        fail(ctx, jobs[0], type(exc).__name__)


def log_batch(ctx: WorkerContext, jobs: list[Job], seconds: float) -> None:
    """The batch_done line: size, style, the call's seconds, and gap_ms, how long the GPU sat
    idle since this process's previous call ended (waiting for work, or for Python)."""
    now = time.monotonic()
    idle = None if ctx.last_call_end is None else now - seconds - ctx.last_call_end
    gap = "" if idle is None else f" gap_ms={idle * 1000:.0f}"
    ctx.last_call_end = now
    metrics.batch(len(jobs), seconds, idle)
    record_gpu_memory(ctx.backend)
    log.info(
        "batch_done size=%d style=%s seconds=%.3f%s%s",
        len(jobs),
        jobs[0].style,
        seconds,
        gap,
        _backend_fields(ctx),
    )


def record_gpu_memory(backend: object) -> None:
    """The backend's CUDA memory (in use, peak) as gauges, where it runs on CUDA."""
    memory = getattr(backend, "cuda_memory", None)
    figures = memory() if memory is not None else None
    if figures is not None:
        metrics.gpu_memory(*figures)


def _backend_fields(ctx: WorkerContext) -> str:
    """The backend's own figures for the batch log line (VRAM peak, new graphs), if any."""
    fields = getattr(ctx.backend, "log_fields", None)
    return f" {fields()}" if fields is not None and fields() else ""


def finish_job(
    ctx: WorkerContext, job: Job, styled: Image.Image, began: datetime | None = None
) -> None:
    found = _screen(ctx, job, styled)
    if found == "failed":
        return
    try:
        path = ctx.store.save_result(job.id, styled)
    except Exception as exc:
        log.warning("store_failed job=%s error=%s", job.id, type(exc).__name__)
        fail(ctx, job, "store")
        return
    if isinstance(found, Verdict):
        _hold(ctx, job, str(path), found)
        return
    if settle(ctx, lambda s: finish_done(s, job, str(path), styled_from=began)):
        _count_done(job, began)
    ctx.store.delete_input(job.id)
    log.info("job_done job=%s style=%s attempt=%d", job.id, job.style, job.attempts)


def _hold(ctx: WorkerContext, job: Job, path: str, found: Verdict) -> None:
    """Kept back for review: stored, not sent, refunded; the person is told and may /appeal."""
    if settle(ctx, lambda s: hold(s, job, path, found)):
        metrics.job_failed("held")
    ctx.store.delete_input(job.id)
    log.info("job_held job=%s label=%s score=%.3f", job.id, found.label, found.score)


def _count_done(job: Job, began: datetime | None) -> None:
    """Its wait (request to styling) and service (styling to stored) by tier; an image made."""
    start = _utc(began or job.started_at or job.created_at)
    wait = (start - _utc(job.created_at)).total_seconds()
    metrics.job_done(job.tier, job.style, wait, (utcnow() - start).total_seconds())


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def fail(ctx: WorkerContext, job: Job, code: str) -> None:
    if settle(ctx, lambda s: finish_failed(s, job, code)):
        metrics.job_failed(code)
    ctx.store.delete_input(job.id)


def settle(ctx: WorkerContext, settle: Callable[[Session], T]) -> T:
    """Record a job's ending. The database may be restarting: the GPU work is done and the
    result stored, so wait for it (about a minute) rather than leave the job running. Returns
    what `settle` returned in the transaction that committed."""
    for delay in SETTLE_RETRY_S:
        try:
            with transaction(ctx.engine) as s:
                result = settle(s)
            return result
        except (OperationalError, DisconnectionError) as exc:
            log.warning("settle_retry error=%s in_s=%s", type(exc).__name__, delay)
            time.sleep(delay)
    with transaction(ctx.engine) as s:  # the last try: its error is the task's
        return settle(s)
