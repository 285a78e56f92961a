"""Status messages that outlive a bot process: which requests still wait (with where they were
asked and their status message, if the platform has one), and the hand-over of a status
message to whoever removes it. SQL holds it all, so a restarted bot carries on."""

from __future__ import annotations

from dataclasses import dataclass

from bots.core.requests import ReplyTarget
from bots.core.service import Core
from storage.db import transaction
from storage.jobs import set_status_ref, take_status_ref, waiting_jobs


@dataclass(frozen=True)
class Waiting:
    job_id: str
    locale: str
    target: ReplyTarget
    status_ref: str | None  # the status message's platform id, where the platform keeps one


def waiting(core: Core, platform: str) -> list[Waiting]:
    """Queued and running jobs of `platform` that can still be answered."""
    with transaction(core.rt.engine) as s:
        jobs = waiting_jobs(s, platform)
        return [
            Waiting(job.id, job.locale, ReplyTarget.from_json(job.reply_target), job.status_ref)
            for job in jobs
            if job.reply_target != "{}"
        ]


def remember_status(core: Core, job_id: str, ref: str) -> None:
    with transaction(core.rt.engine) as s:
        set_status_ref(s, job_id, ref)


def take_status(core: Core, job_id: str) -> tuple[ReplyTarget, str] | None:
    """Where a job's status message is, for the one caller that will remove it."""
    with transaction(core.rt.engine) as s:
        taken = take_status_ref(s, job_id)
    if taken is None or taken[0] == "{}":
        return None
    return ReplyTarget.from_json(taken[0]), taken[1]
