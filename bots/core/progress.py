"""While waiting: where a job stands (position and ETA from the same measurements as admission),
and /forget: a person's photos, results and history deleted, the quota counters kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import col, select

from bots.core.messages import duration, t
from bots.core.requests import Reply, Sender
from bots.core.service import Core
from quota.capacity import jobs_before, measure
from quota.lifecycle import cancel
from storage.db import transaction
from storage.models import Job, JobStatus, User


@dataclass(frozen=True)
class Progress:
    status: str
    position: int | None = None  # queued jobs served before it, plus one
    eta_s: float | None = None


def progress(core: Core, job_id: str) -> Progress:
    return _progress_of(core, [job_id])[0][0]


def _progress_of(core: Core, job_ids: Sequence[str]) -> list[tuple[Progress, Job | None]]:
    """Where each job stands, read in one transaction against one measurement of the load."""
    rt, now = core.rt, core.rt.clock()
    settings, out = rt.settings, []
    with transaction(rt.engine) as s:
        load = measure(s, now, settings.worker_heartbeat_s, settings.assumed_seconds_per_image)
        for job_id in job_ids:
            job = s.get(Job, job_id)
            if job is None or job.status != JobStatus.QUEUED:
                out.append((Progress(job.status if job else "unknown"), job))
                continue
            ahead = jobs_before(s, job)
            out.append((Progress(job.status, ahead + 1, load.wait_for(ahead)), job))
    return out


def progress_texts(core: Core, items: Sequence[tuple[str, str]]) -> list[str | None]:
    """Status lines for (job_id, locale) pairs; None for a job that has finished."""
    states = _progress_of(core, [job_id for job_id, _ in items])
    return [_text(core, p, job, loc) for (p, job), (_, loc) in zip(states, items, strict=True)]


def progress_text(core: Core, job_id: str, locale: str) -> str | None:
    """The status line to show while a job waits or runs; None once it has finished."""
    return progress_texts(core, [(job_id, locale)])[0]


def _text(core: Core, p: Progress, job: Job | None, locale: str) -> str | None:
    if job is None:
        return None
    style = core.rt.styles[job.style].display_name(locale) if job.style in core.rt.styles else ""
    if p.status == JobStatus.RUNNING:
        return t("styling", locale, style=style)
    if p.status != JobStatus.QUEUED or p.position is None:
        return None
    eta = duration(p.eta_s or 0, locale)
    return t("queued_eta", locale, style=style, position=p.position, eta=eta)


def forget(core: Core, sender: Sender) -> Reply:
    """Delete the person's stored photos, results and job details; keep usage and ledger rows."""
    rt = core.rt
    with transaction(rt.engine) as s:
        jobs = list(s.exec(select(Job).where(Job.user_id == sender.user_id)).all())
        for job in jobs:
            if job.status == JobStatus.QUEUED:
                cancel(s, job, rt.clock())
        s.execute(
            update(Job)
            .where(col(Job.user_id) == sender.user_id, col(Job.status) != JobStatus.RUNNING)
            .values(
                reply_target="{}",
                source_ref=None,
                result_path=None,
                input_digest=None,
                delivered_at=rt.clock(),
            )
        )
        s.execute(update(User).where(col(User.id) == sender.user_id).values(username=None))
    for job in jobs:
        if job.status != JobStatus.RUNNING:
            rt.store.delete_input(job.id)
            rt.store.delete_result(job.id)
    return Reply(t("forgotten", sender.locale))
