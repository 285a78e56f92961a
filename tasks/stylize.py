"""The stylize task and the per-process worker context: engine, store, styles, backend, beat."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import Engine

from storage import metrics
from storage.db import make_engine, transaction
from storage.health import clear_alive, mark_alive
from storage.images import ImageStore
from storage.jobs import beat, forget_worker
from storage.metrics_endpoint import forget_dead_processes, process_stopping
from storage.models import utcnow
from storage.provenance import load_provenance
from storage.settings import Settings
from tasks.app import STYLIZE_TASK
from tasks.backends import Backend, PipelineOptions, Stages, WarmsUp, make_backend
from tasks.batch import record_gpu_memory, run_next
from tasks.buckets import parse_buckets
from tasks.styles import StylePreset, load_styles

log = logging.getLogger("stylebot.worker")

T = TypeVar("T")


@dataclass
class WorkerContext:
    """What one worker process needs; built lazily in the child, never before the fork."""

    settings: Settings
    engine: Engine
    store: ImageStore
    styles: dict[str, StylePreset]
    backend: Backend
    pid: int = field(default_factory=os.getpid)
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _threads: dict[str, ThreadPoolExecutor] = field(default_factory=dict, repr=False)
    last_call_end: float | None = None  # time.monotonic() when the last pipeline call ended

    @property
    def stages(self) -> Stages:
        """The backend's prepare / run / finish stages (the overlapping worker runs them)."""
        return Stages(self.backend)

    def thread(self, name: str) -> ThreadPoolExecutor:
        """A one-thread executor of this process, by stage name: its work runs in order."""
        pool = self._threads.get(name)
        if pool is None:
            pool = self._threads[name] = ThreadPoolExecutor(1, f"stylebot-{name}")
        return pool

    def on_gpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on this process's one GPU thread and wait for it. Warm-up and every
        pipeline call run there: CUDA graphs (STYLEBOT_COMPILE_MODE=reduce-overhead) are
        recorded per thread, so graphs warmed on one thread would be recorded again on another.
        """
        return self.thread("gpu").submit(fn, *args).result()

    def close(self) -> None:
        """Stop the stage threads and close the database pool (tests; a process's last act)."""
        for pool in self._threads.values():
            pool.shutdown(wait=True)
        self._threads.clear()
        self.engine.dispose()

    @classmethod
    def build(cls, settings: Settings, backend: Backend | None = None) -> WorkerContext:
        ttl = timedelta(hours=settings.result_ttl_hours)
        return cls(
            settings=settings,
            engine=make_engine(settings.sqlalchemy_url),
            store=ImageStore(
                settings.data_dir / "images", ttl, provenance=load_provenance(settings)
            ),
            styles=load_styles(settings.styles_file),
            backend=backend
            or make_backend(
                settings.backend,
                options=pipeline_options(settings),
                sleep_ms=settings.sleep_backend_ms,
            ),
        )

    def warm_up(self) -> None:
        """Let the backend load (and compile) its models, if it has start-up work to do."""
        if not (self.settings.warmup and isinstance(self.backend, WarmsUp)):
            return
        start = time.perf_counter()
        report = self.on_gpu(self.backend.warm_up, self.styles.values())
        metrics.warmup(time.perf_counter() - start)
        record_gpu_memory(self.backend)
        log.info("model_ready worker=%s %s", self.worker_id, report.fields())

    def heartbeat(self) -> None:
        with transaction(self.engine) as s:
            beat(s, self.worker_id, utcnow())


def pipeline_options(settings: Settings) -> PipelineOptions:
    """The diffusers backend's options from the settings."""
    return PipelineOptions(
        device=settings.device,
        dtype=settings.dtype,
        compile=settings.compile,
        compile_mode=settings.compile_mode,
        batch_sizes=settings.batch_sizes(),
        warmup_buckets=parse_buckets(settings.warmup_buckets),
        vae_slicing=settings.vae_slicing,
        quantize=settings.quantize,
    )


def start_heartbeat(ctx: WorkerContext, stop: threading.Event | None = None) -> threading.Thread:
    """Warm the backend up, then beat every `worker_heartbeat_s`, from a daemon thread
    (until `stop` is set, if given; a worker's runs as long as its process).

    Admission counts a worker by its heartbeat, so a worker still loading or compiling its
    model (minutes, for a compiled GPU pipeline) is not promised to anyone. Warm-up runs here
    rather than in worker_process_init, whose caller gives a child only seconds to report.
    """

    stopped = stop or threading.Event()

    def loop() -> None:
        mark_alive(f"warming-{ctx.pid}")  # `stylebot health worker`: a child re-warming
        try:
            ctx.warm_up()
        except Exception:  # jobs will load the model lazily; say why warm-up did not
            log.exception("warmup_failed worker=%s", ctx.worker_id)
        finally:
            clear_alive(f"warming-{ctx.pid}")
        while not stopped.is_set():
            try:
                ctx.heartbeat()
                mark_alive("worker")  # this container's workers have been ready
            except Exception as exc:  # the database may blip; the next beat will tell
                log.warning("heartbeat_failed error=%s", type(exc).__name__)
            stopped.wait(ctx.settings.worker_heartbeat_s)

    thread = threading.Thread(target=loop, name="stylebot-heartbeat", daemon=True)
    thread.start()
    return thread


class StylizeTask(Task):
    """Holds the per-process WorkerContext; created in the child, on start-up or first task."""

    _context: WorkerContext | None = None

    @property
    def context(self) -> WorkerContext:
        if self._context is None or self._context.pid != os.getpid():
            self._context = WorkerContext.build(self.app.conf.stylebot_settings)
            start_heartbeat(self._context)
        return self._context


def register_tasks(app: Celery) -> Any:
    @app.task(name=STYLIZE_TASK, bind=True, base=StylizeTask)
    def stylize(self: StylizeTask, job_id: str) -> str:
        outcome, claimed = run_next(self.context, self.request.id)
        log.debug("token job=%s outcome=%s jobs=%s", job_id, outcome, claimed)
        return outcome

    # Each pool child announces itself as soon as it starts (admission counts live workers),
    # and withdraws when it stops, so an estimate never counts a worker that is gone.
    @worker_process_init.connect(weak=False)
    def _child_started(**_: object) -> None:
        forget_dead_processes()  # a child that died unannounced left its gauges
        stylize.context  # noqa: B018 - builds the context and starts the heartbeat

    @worker_process_shutdown.connect(weak=False)
    def _child_stopping(**_: object) -> None:
        process_stopping()  # its gauges leave the endpoint; its counts stay
        ctx = stylize._context
        if ctx is not None and ctx.pid == os.getpid():
            with transaction(ctx.engine) as s:
                forget_worker(s, ctx.worker_id)

    return stylize
