"""One worker turn: claim a batch from SQL, style it in one backend call, settle each job alone.

Why claim from SQL rather than batch Celery messages (celery-batches): the queue order (paid
first, free aged) already lives in SQL, and a claim can pick exactly the jobs that can share a
pipeline call — same style, same size bucket. The Celery message that triggered the turn is a
token; the messages of the other claimed jobs later find nothing to do and return at once.
Acks, attempts, refunds and delivery stay per job: a bad input fails only its own job.

Pipeline calls run on the worker process's one GPU thread (WorkerContext.on_gpu), the thread
that warmed the models up. Overlap (STYLEBOT_OVERLAP, on by default): a turn keeps the GPU busy
while jobs wait. As the GPU styles batch N, a second thread claims and prepares batch N+1 (SQL
claim, load, fit to bucket, tensors) and a third finishes batch N-1 (decode to images, JPEG,
store, SQL), so the GPU does not wait for Python between batches. Each batch after the first is
claimed under its own id (`<token>/<k>`): a redelivered token resumes only its own batch, and
the others, if the process dies, go back to the queue through the reaper like any orphaned
job. The turn settles every job it claimed before its token is acked, and stops claiming more
once it has used half of the soft time limit; the next token carries on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

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
TURN_SHARE = 0.5  # an overlapping turn claims more only within this share of the soft limit


def run_next(ctx: WorkerContext, task_id: str) -> tuple[str, list[str]]:
    """Claim and process one batch, or with overlap a turn of batches while jobs wait;
    returns (outcome, job ids). Job failures don't raise."""
    if ctx.settings.overlap:
        return Turn(ctx, task_id).run()
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


@dataclass
class Batch:
    """Jobs claimed together, their readable inputs, and the backend's prepared input."""

    jobs: list[Job]
    loaded: list[tuple[Job, Image.Image]] = field(default_factory=list)
    prepared: Any = None
    unprepared: Exception | None = None  # prepare raised: each job is then styled alone


class Turn:
    """One token's work with overlap: batches styled back to back on the GPU thread while a
    'prepare' thread claims the next and a 'finish' thread stores and settles the last."""

    def __init__(self, ctx: WorkerContext, task_id: str) -> None:
        self.ctx, self.task_id = ctx, task_id
        self.start = time.monotonic()
        self.claimed = 0  # batches claimed so far
        self.unstyled: Batch | None = None  # claimed, its pipeline call not yet done
        self.ahead: Future[Batch | None] | None = None
        self.finishing: list[Future[None]] = []
        self.stop = False  # the soft time limit struck: claim no more

    def run(self) -> tuple[str, list[str]]:
        batch = self._take(_gather(self.ctx, self.task_id))
        if batch is None:
            return "idle", []
        ids: list[str] = []
        try:
            while batch is not None:
                ids += [job.id for job in batch.jobs]
                self.unstyled = batch
                self.ahead = self._claim_ahead() if self._room() else None
                self._style(batch)
                self.unstyled = None
                if self.stop:  # out of time: what was claimed ahead goes back to the queue
                    self._give_back()
                    break
                batch = self._next()
            self._drain(raise_errors=True)
        except BaseException:
            self._drain(raise_errors=False)
            self._give_back()
            raise
        return "processed", ids

    # --- the prepare thread ---------------------------------------------------------------

    def _claim_ahead(self) -> Future[Batch | None]:
        self.claimed += 1
        claim_id = f"{self.task_id}/{self.claimed}"
        return self.ctx.thread("prepare").submit(self._claim, claim_id)

    def _claim(self, claim_id: str) -> Batch | None:
        ctx = self.ctx
        with transaction(ctx.engine) as s:
            jobs = claim_batch(
                s,
                task_id=claim_id,
                worker_id=ctx.worker_id,
                now=utcnow(),
                limit=ctx.settings.max_batch,
            )
            if len(jobs) > 1:
                set_batch_size(s, [job.id for job in jobs])
        return self._take(jobs)

    def _take(self, jobs: list[Job]) -> Batch | None:
        """Poison check, load the inputs, prepare the backend's input (CPU work)."""
        if not jobs:
            return None
        ctx = self.ctx
        batch = Batch(jobs)
        try:
            live = [job for job in jobs if not _poisoned(ctx, job)]
            batch.loaded = [(job, img) for job in live if (img := _load(ctx, job)) is not None]
        except Exception:  # claimed but not settled: back to the queue, never left "running"
            _settle(ctx, lambda s: [requeue(s, job.id) for job in jobs])
            raise
        if batch.loaded:
            style = ctx.styles.get(batch.loaded[0][0].style)
            try:
                if style is None:
                    raise KeyError(batch.loaded[0][0].style)
                batch.prepared = ctx.stages.prepare([img for _, img in batch.loaded], style)
            except Exception as exc:
                batch.unprepared = exc
        return batch

    def _room(self) -> bool:
        budget = TURN_SHARE * self.ctx.settings.task_soft_time_limit
        return not self.stop and time.monotonic() - self.start < budget

    def _next(self) -> Batch | None:
        if self.ahead is None:
            return None
        try:
            batch = self.ahead.result()
        except Exception as exc:  # what it claimed went back to the queue; their tokens wait
            log.warning("claim_ahead_failed error=%s", type(exc).__name__)
            batch = None
        self.ahead = None
        return batch

    # --- the GPU thread, this one waiting ---------------------------------------------------

    def _style(self, batch: Batch) -> None:
        ctx = self.ctx
        if not batch.loaded:
            return
        if batch.unprepared is not None:  # the sequential path finds the job that breaks it
            log.warning(
                "prepare_failed size=%d error=%s",
                len(batch.loaded),
                type(batch.unprepared).__name__,
            )
            for pair in batch.loaded:
                _style(ctx, [pair])
            return
        jobs = [job for job, _ in batch.loaded]
        began, start = utcnow(), time.perf_counter()
        try:
            raw = ctx.on_gpu(ctx.stages.run, batch.prepared)
        except SoftTimeLimitExceeded:
            self.stop = True
            for job in jobs:
                fail(ctx, job, "timeout")
            return
        except Exception as exc:
            if len(jobs) > 1:
                log.warning("batch_failed size=%d error=%s", len(jobs), type(exc).__name__)
                for pair in batch.loaded:
                    _style(ctx, [pair])
                return
            log.warning("job_failed job=%s error=%s", jobs[0].id, type(exc).__name__)
            fail(ctx, jobs[0], type(exc).__name__)
            return
        _log_batch(ctx, jobs, time.perf_counter() - start)
        self.finishing.append(ctx.thread("finish").submit(_complete, ctx, batch, raw, began))

    # --- endings ----------------------------------------------------------------------------

    def _drain(self, *, raise_errors: bool) -> None:
        """Wait until every styled batch is stored and settled; then raise the first error."""
        errors = []
        for done in self.finishing:
            try:
                done.result()
            except BaseException as exc:
                errors.append(exc)
        self.finishing.clear()
        if errors and raise_errors:
            raise errors[0]

    def _give_back(self) -> None:
        """The turn was cut short: jobs claimed but never styled go back to the queue."""
        batches = [self.unstyled] if self.unstyled is not None else []
        if self.ahead is not None:
            try:
                if (ahead := self.ahead.result(timeout=30)) is not None:
                    batches.append(ahead)
            except Exception as exc:
                log.warning("claim_ahead_failed error=%s", type(exc).__name__)
        self.unstyled = self.ahead = None
        ids = [job.id for batch in batches for job in batch.jobs]
        if ids:
            _settle(self.ctx, lambda s: [requeue(s, job_id) for job_id in ids])


def _complete(ctx: WorkerContext, batch: Batch, raw: Any, began: datetime) -> None:
    """The finish thread: decode the outputs, store each result, settle each job alone."""
    jobs = [job for job, _ in batch.loaded]
    try:
        images = ctx.stages.finish(raw)
    except Exception as exc:
        log.warning("batch_failed size=%d error=%s", len(jobs), type(exc).__name__)
        for job in jobs:
            fail(ctx, job, type(exc).__name__)
        return
    for job, styled in zip(jobs, images, strict=True):
        _finish(ctx, job, styled, began)


def _style(ctx: WorkerContext, loaded: list[tuple[Job, Image.Image]]) -> None:
    jobs, images = [j for j, _ in loaded], [img for _, img in loaded]
    start = time.perf_counter()
    try:
        outputs = ctx.on_gpu(ctx.backend.stylize, images, ctx.styles[jobs[0].style])
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
    _log_batch(ctx, jobs, time.perf_counter() - start)
    for job, styled in zip(jobs, outputs, strict=True):
        _finish(ctx, job, styled)


def _log_batch(ctx: WorkerContext, jobs: list[Job], seconds: float) -> None:
    """The batch_done line: size, style, the call's seconds, and gap_ms, how long the GPU sat
    idle since this process's previous call ended (waiting for work, or for Python)."""
    now = time.monotonic()
    gap = (
        ""
        if ctx.last_call_end is None
        else f" gap_ms={(now - seconds - ctx.last_call_end) * 1000:.0f}"
    )
    ctx.last_call_end = now
    log.info(
        "batch_done size=%d style=%s seconds=%.3f%s%s",
        len(jobs),
        jobs[0].style,
        seconds,
        gap,
        _backend_fields(ctx),
    )


def _backend_fields(ctx: WorkerContext) -> str:
    """The backend's own figures for the batch log line (VRAM peak, new graphs), if any."""
    fields = getattr(ctx.backend, "log_fields", None)
    return f" {fields()}" if fields is not None and fields() else ""


def _finish(
    ctx: WorkerContext, job: Job, styled: Image.Image, began: datetime | None = None
) -> None:
    try:
        path = ctx.store.save_result(job.id, styled)
    except Exception as exc:
        log.warning("store_failed job=%s error=%s", job.id, type(exc).__name__)
        fail(ctx, job, "store")
        return
    _settle(ctx, lambda s: finish_done(s, job, str(path), styled_from=began))
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
