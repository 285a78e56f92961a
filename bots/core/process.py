"""A bot process's life, the same for every platform: migrations on the embedded database, the
runtime built once, an optional local worker, the bot served until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from bots.core.runtime import Runtime, build_runtime
from bots.core.status_page import status_page
from bots.core.workers import spawn_local_worker
from quota.gauges import QueueGauges
from storage.metrics_endpoint import serve_metrics
from storage.migrate import upgrade
from storage.settings import Settings

Serve = Callable[[Runtime, asyncio.Event], Awaitable[None]]


def run_bot_process(settings: Settings, serve: Serve, with_worker: bool = False) -> None:
    """Run `serve(runtime, stop)` until a signal sets `stop`; exceptions pass through."""
    if settings.sqlalchemy_url.startswith("sqlite"):
        upgrade(settings.sqlalchemy_url)  # embedded default: a local try needs no migrate step
    runtime = build_runtime(settings)
    # STYLEBOT_METRICS_PORT: this process's metrics, and the queue's from SQL (quota.gauges).
    gauges = QueueGauges(runtime.engine, settings, runtime.tiers, runtime.clock)
    metrics = serve_metrics(settings, "bot", gauges)
    worker = spawn_local_worker(runtime) if with_worker else None
    try:
        asyncio.run(_until_signalled(runtime, serve))
    finally:
        if worker is not None:
            from tasks.worker import stop_worker

            stop_worker(worker)
        if metrics is not None:
            metrics.close()
        runtime.engine.dispose()


async def _until_signalled(runtime: Runtime, serve: Serve) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # graceful: finish in-flight sends, then exit
    async with status_page(runtime):  # STYLEBOT_STATUS_PORT unset: no page
        await serve(runtime, stop)
