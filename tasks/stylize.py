"""The stylize task: load the job by id, style its image, store the result, settle the ledger."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine

from quota.lifecycle import finish_done, finish_failed
from storage.db import make_engine, transaction
from storage.images import ImageStore
from storage.jobs import start_attempt
from storage.models import Job, utcnow
from storage.settings import Settings
from tasks.app import STYLIZE_TASK
from tasks.backends import Backend, make_backend
from tasks.styles import StylePreset, load_styles

log = logging.getLogger("stylebot.worker")


@dataclass
class WorkerContext:
    """What one worker process needs; built lazily in the child, never before the fork."""

    settings: Settings
    engine: Engine
    store: ImageStore
    styles: dict[str, StylePreset]
    backend: Backend
    pid: int = field(default_factory=os.getpid)

    @classmethod
    def build(cls, settings: Settings, backend: Backend | None = None) -> WorkerContext:
        return cls(
            settings=settings,
            engine=make_engine(settings.sqlalchemy_url),
            store=ImageStore(
                settings.data_dir / "images", timedelta(hours=settings.result_ttl_hours)
            ),
            styles=load_styles(settings.styles_file),
            backend=backend
            or make_backend(
                settings.backend, device=settings.device, sleep_ms=settings.sleep_backend_ms
            ),
        )


def run_job(ctx: WorkerContext, job_id: str) -> str:
    """Process one job; returns its final status. Never raises for a job-level failure."""
    with transaction(ctx.engine) as s:
        job = start_attempt(s, job_id, utcnow())
    if job is None:
        return "skipped"  # cancelled, finished or unknown: nothing to do
    if job.attempts > ctx.settings.max_attempts:
        return _fail(ctx, job, "attempts")
    try:
        image = ctx.store.load_input(job.id)
        [styled] = ctx.backend.stylize([image], ctx.styles[job.style])
        path = ctx.store.save_result(job.id, styled)
    except SoftTimeLimitExceeded:
        return _fail(ctx, job, "timeout")
    except Exception as exc:
        log.warning("job_failed job=%s error=%s", job.id, type(exc).__name__)
        return _fail(ctx, job, type(exc).__name__)
    with transaction(ctx.engine) as s:
        finish_done(s, job, str(path))
    ctx.store.delete_input(job.id)
    log.info("job_done job=%s style=%s attempt=%d", job.id, job.style, job.attempts)
    return "done"


def _fail(ctx: WorkerContext, job: Job, code: str) -> str:
    with transaction(ctx.engine) as s:
        finish_failed(s, job, code)
    ctx.store.delete_input(job.id)
    return "failed"


class StylizeTask(Task):
    """Holds the per-process WorkerContext; created on the first task a child runs."""

    _context: WorkerContext | None = None

    @property
    def context(self) -> WorkerContext:
        if self._context is None or self._context.pid != os.getpid():
            self._context = WorkerContext.build(self.app.conf.stylebot_settings)
        return self._context


def register_tasks(app: Celery) -> Any:
    @app.task(name=STYLIZE_TASK, bind=True, base=StylizeTask)
    def stylize(self: StylizeTask, job_id: str) -> str:
        return run_job(self.context, job_id)

    return stylize
