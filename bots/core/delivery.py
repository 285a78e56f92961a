"""The delivery loop: claim finished, undelivered jobs of one platform, then send each once.

Workers never talk to a platform; they only mark jobs in SQL. A bot process claims a job
(a conditional UPDATE that one process wins), sends the reply, then marks it delivered. A
claim older than the lease (the process died mid-send) may be taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from bots.core.allowance import allowance
from bots.core.failures import report
from bots.core.messages import duration, t
from bots.core.requests import Reply, ReplyTarget
from bots.core.runtime import Runtime
from storage import metrics
from storage.db import transaction
from storage.health import mark_alive
from storage.jobs import claim_for_delivery, mark_delivered, release_claim
from storage.models import Job, JobStatus

log = logging.getLogger("stylebot.delivery")

CLAIM_LEASE = timedelta(minutes=5)


class Undeliverable(Exception):
    """The platform will never take this reply (the person blocked the bot, the chat is gone)."""


class ReplySender(Protocol):
    async def send(self, target: ReplyTarget, reply: Reply) -> None: ...


class Delivery:
    def __init__(self, runtime: Runtime, platform: str, sender: ReplySender) -> None:
        self.rt, self.platform, self.sender = runtime, platform, sender

    def claim(self, limit: int = 20) -> list[Job]:
        with transaction(self.rt.engine) as s:
            return claim_for_delivery(s, self.platform, CLAIM_LEASE, limit)

    def reply_for(self, job: Job) -> Reply:
        style = (
            self.rt.styles[job.style].display_name(job.locale)
            if job.style in self.rt.styles
            else job.style
        )
        if job.held_at is not None:  # the safety check's hold, or an admin's review of it
            return self._held_reply(job, style)
        if job.status != JobStatus.DONE or not job.result_path:
            if job.error_code == "expired":  # a relax-lane job that never found room
                ttl = duration(self.rt.settings.relax_ttl_hours * 3600, job.locale)
                text = t("failed_expired", job.locale, ttl=ttl)
            elif job.error_code == "input_held":  # the safety check refused the photo
                text = t("safety_input_refused", job.locale)
            else:
                text = t("failed", job.locale)
            return Reply(text, job_id=job.id, style=job.style, locale=job.locale)
        return Reply(
            t("result", job.locale, style=style, left=self._left_today(job)),
            image=Path(job.result_path),
            job_id=job.id,
            style=job.style,
            locale=job.locale,
        )

    def _held_reply(self, job: Job, style: str) -> Reply:
        """Held back (not charged, /appeal), released (the stored image, free) or confirmed."""
        image, key = None, "safety_held"
        if job.review == "released" and job.result_path:
            image, key = Path(job.result_path), "safety_released"
        elif job.review == "confirmed":
            key = "safety_confirmed"
        text = t(key, job.locale, style=style)
        unreviewed = job.id if job.review is None else None  # held: the review button under it
        return Reply(
            text, image=image, job_id=job.id, style=job.style, locale=job.locale,
            appeal_job=unreviewed,
        )  # fmt: skip

    def _left_today(self, job: Job) -> int:
        # The same figure /quota shows: custom limits, surge and extra credits included.
        return allowance(self.rt, job.user_id).left

    async def deliver_once(self) -> int:
        """Claim and send what is ready; returns how many replies went out."""
        jobs = await asyncio.to_thread(self.claim)
        sent = 0
        for job in jobs:
            sent += await self._deliver(job)
        return sent

    async def _deliver(self, job: Job) -> int:
        target = ReplyTarget.from_json(job.reply_target)
        try:
            await self.sender.send(target, self.reply_for(job))
            metrics.delivery(self.platform, "sent")
        except Undeliverable:
            log.info("delivery_abandoned job=%s", job.id)
            metrics.delivery(self.platform, "abandoned")
        except Exception as exc:  # transient: let a later pass (or another process) retry
            log.warning("delivery_failed job=%s error=%s", job.id, type(exc).__name__)
            metrics.delivery(self.platform, "failed")
            await asyncio.to_thread(self._with_session, release_claim, job.id)
            return 0
        await asyncio.to_thread(self._with_session, mark_delivered, job.id)
        return 1

    def _with_session(self, fn: object, job_id: str) -> None:
        with transaction(self.rt.engine) as s:
            fn(s, job_id)  # type: ignore[operator]

    async def run(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Deliver until `stop` is set."""
        while not stop.is_set():
            try:
                await self.deliver_once()
            except Exception as exc:
                report(log, "delivery_pass_failed", exc)
            mark_alive("delivery")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
