"""Housekeeping every bot process runs beside its delivery loop.

- auto surge: step the free limit with the measured free-tier wait (quota.surge);
- reaper: a running job whose worker stopped beating (it died with the job) or fell silent past
  the lease goes back to the queue with a fresh token (or fails as poison past its attempt
  cap, refunded);
- lost tokens: a queued job whose Celery token is long overdue gets another (the broker lost
  it); SQL marks it first, so one bot process sends it, and a spare one is harmless;
- relax expiry: a relax-lane job still queued STYLEBOT_RELAX_TTL_HOURS after it was admitted
  fails as "expired" (refunded; the delivery loop tells the person);
- tier passes: a pass whose time is up ends, back to the tier before it (bots.core.shop);
- retention: results older than STYLEBOT_RESULT_TTL_HOURS are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime, timedelta

from bots.core.failures import report
from bots.core.runtime import Runtime
from bots.core.shop import expire_passes
from quota import surge
from quota.capacity import measure
from quota.lifecycle import finish_failed
from storage import metrics
from storage.db import transaction
from storage.health import mark_alive
from storage.jobs import (
    any_queued,
    expired_running,
    orphaned_running,
    overdue_tokens,
    requeue,
    stale_relax,
    untoken,
)

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
        self._send_tokens(self.reap())
        self._send_tokens(self.overdue(now))
        self.expire_relax(now)
        expire_passes(self.rt, now)
        if time.monotonic() - self.last_purge > PURGE_EVERY_S:
            self.last_purge = time.monotonic()
            self.rt.store.purge_expired_results()

    @property
    def silent(self) -> timedelta:
        """How long a worker may miss its heartbeat before its running jobs count as orphans."""
        return timedelta(seconds=3 * self.rt.settings.worker_heartbeat_s + 5)

    def reap(self) -> list[str]:
        """Requeue (or fail) jobs whose worker died; returns the ids that need a new token."""
        requeued, failed = [], 0  # failed: past the attempt cap
        now = self.rt.clock()
        with transaction(self.rt.engine) as s:
            dead = {j.id: j for j in orphaned_running(s, now, self.silent)}
            dead.update({j.id: j for j in expired_running(s, now, self.lease)})
            for job in dead.values():
                if job.attempts >= self.rt.settings.max_attempts:
                    failed += finish_failed(s, job, "attempts")
                elif requeue(s, job.id):
                    requeued.append(job.id)
        if requeued:
            log.warning("reaped jobs=%d", len(requeued))
        metrics.reaped("requeued", len(requeued))
        metrics.reaped("failed", failed)
        metrics.job_failed("attempts", failed)
        return requeued

    def expire_relax(self, now: datetime) -> int:
        """Fail (and refund) relax jobs that found no room within STYLEBOT_RELAX_TTL_HOURS."""
        cutoff = now - timedelta(hours=self.rt.settings.relax_ttl_hours)
        with transaction(self.rt.engine) as s:
            stale = stale_relax(s, cutoff)
            expired = [job.id for job in stale if finish_failed(s, job, "expired", now)]
        for job_id in expired:
            self.rt.store.delete_input(job_id)
        if expired:
            log.info("relax_expired jobs=%d", len(expired))
            metrics.job_failed("expired", len(expired))
        return len(expired)

    def overdue(self, now: datetime) -> list[str]:
        """Queued jobs whose token the broker seems to have lost; marked re-tokened in SQL."""
        settings = self.rt.settings
        with transaction(self.rt.engine) as s:
            load = measure(s, now, settings.worker_heartbeat_s, settings.assumed_seconds_per_image)
            drain = load.wait_for(load.queued)  # load.queued: the normal lane
            if drain is None or not any_queued(s):
                return []  # no live worker would take a token now; look again later
            grace = timedelta(seconds=max(settings.token_grace_s, 2 * drain))
            # A relax job can't run while a normal one waits: its token is due only once none does.
            ids = overdue_tokens(s, now - grace, now, relax=load.queued == 0)
        if ids:
            log.warning("tokens_reissued jobs=%d", len(ids))
            metrics.tokens_reissued(len(ids))
        return ids

    def _send_tokens(self, job_ids: list[str]) -> None:
        for i, job_id in enumerate(job_ids):
            try:
                self.rt.enqueue(job_id)
            except Exception as exc:  # the broker is down: these are due again next time
                log.warning("token_not_sent jobs=%d error=%s", len(job_ids) - i, type(exc).__name__)
                with transaction(self.rt.engine) as s:
                    untoken(s, job_ids[i:])
                return

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception as exc:
                report(log, "maintenance_pass_failed", exc)
            mark_alive("maintenance")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
