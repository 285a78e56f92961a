"""The overlapping worker's turn (STYLEBOT_OVERLAP, on by default): it keeps the GPU busy
while jobs wait. As the GPU thread styles batch N, a second thread claims and prepares batch
N+1 (SQL claim, load, fit to bucket, tensors) and a third finishes batch N-1 (decode to
images, JPEG, store, SQL), so the GPU does not wait for Python between batches.

Each batch after the first is claimed under its own id (`<token>/<k>`): a redelivered token
resumes only its own batch, and the others, if the process dies, go back to the queue through
the reaper like any orphaned job. The turn settles every job it claimed before its token is
acked, and stops claiming more once it has used half of the soft time limit; the next token
carries on.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery.exceptions import SoftTimeLimitExceeded
from PIL import Image

from storage.db import transaction
from storage.jobs import requeue, set_batch_size
from storage.models import Job, utcnow
from tasks.batch import (
    call_failed,
    claim_jobs,
    fail,
    finish_job,
    gather,
    load_input,
    log_batch,
    poisoned,
    settle,
    style_alone,
)

if TYPE_CHECKING:
    from tasks.stylize import WorkerContext

log = logging.getLogger("stylebot.worker")

TURN_SHARE = 0.5  # a turn claims more only within this share of the soft time limit


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
        batch = self._take(gather(self.ctx, self.task_id))
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
            jobs = claim_jobs(s, ctx, claim_id)  # within the style's own max_batch
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
            live = [job for job in jobs if not poisoned(ctx, job)]
            batch.loaded = [(job, img) for job in live if (img := load_input(ctx, job)) is not None]
        except Exception:  # claimed but not settled: back to the queue, never left "running"
            settle(ctx, lambda s: [requeue(s, job.id) for job in jobs])
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
                style_alone(ctx, [pair])
            return
        jobs = [job for job, _ in batch.loaded]
        began, start = utcnow(), time.perf_counter()
        try:
            raw = ctx.on_gpu(ctx.stages.run, batch.prepared)
        except Exception as exc:  # SoftTimeLimitExceeded is one too
            self.stop = isinstance(exc, SoftTimeLimitExceeded)  # out of time: claim no more
            call_failed(ctx, batch.loaded, exc)
            return
        log_batch(ctx, jobs, time.perf_counter() - start)
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
            settle(self.ctx, lambda s: [requeue(s, job_id) for job_id in ids])


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
        finish_job(ctx, job, styled, began)
