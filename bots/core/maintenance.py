"""Housekeeping every bot process runs beside its delivery loop.

- auto surge: step the free limit with the measured free-tier wait (quota.surge);
- reaper: a running job whose worker fell silent past the lease goes back to the queue with a
  fresh token (or fails as poison past its attempt cap, refunded);
- retention: results older than STYLEBOT_RESULT_TTL_HOURS are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

from bots.core.runtime import Runtime
from quota import surge
from quota.lifecycle import finish_failed
from storage.db import transaction
from storage.jobs import expired_running, requeue

log = logging.getLogger("stylebot.maintenance")

PURGE_EVERY_S = 600.0


class Maintenance:
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.last_purge = 0.0

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.rt.settings.task_time_limit + 60)

    def run_once(self) -> None:
        now = self.rt.clock()
        with transaction(self.rt.engine) as s:
            surge.tick(s, self.rt.tiers["free"], now, self.rt.settings)
        for job_id in self.reap():
            self.rt.enqueue(job_id)
        if time.monotonic() - self.last_purge > PURGE_EVERY_S:
            self.last_purge = time.monotonic()
            self.rt.store.purge_expired_results()

    def reap(self) -> list[str]:
        """Requeue (or fail) jobs whose worker died; returns the ids that need a new token."""
        requeued = []
        with transaction(self.rt.engine) as s:
            for job in expired_running(s, self.rt.clock(), self.lease):
                if job.attempts >= self.rt.settings.max_attempts:
                    finish_failed(s, job, "attempts")
                elif requeue(s, job.id):
                    requeued.append(job.id)
        if requeued:
            log.warning("reaped jobs=%d", len(requeued))
        return requeued

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("maintenance_pass_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
