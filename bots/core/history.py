"""What a person has had made: their recent results (/results), and a job's photo and reply
target, so an adapter can style the same photo again or update a request's status later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bots.core.messages import t
from bots.core.requests import Reply, ReplyTarget, Sender
from bots.core.service import Core
from storage.db import transaction
from storage.jobs import ensure_user, recent_done
from storage.models import Job

RESULTS_SHOWN = 5


@dataclass(frozen=True)
class JobView:
    """The parts of a job an adapter may act on."""

    job_id: str
    user_id: str
    style: str
    status: str
    target: ReplyTarget | None
    source: str | None


def results_reply(core: Core, sender: Sender, limit: int = RESULTS_SHOWN) -> Reply:
    """The person's most recent results still kept, newest first (none: say how long we keep)."""
    rt, loc = core.rt, sender.locale
    hours = round(rt.settings.result_ttl_hours)
    since = rt.clock() - timedelta(hours=rt.settings.result_ttl_hours)
    with transaction(rt.engine) as s:
        ensure_user(s, sender.user_id, sender.username, loc)
        jobs = recent_done(s, sender.user_id, since, limit)
    paths = tuple(p for p in (rt.store.result_path(j.id) for j in jobs) if p.exists())
    if not paths:
        return Reply(t("results_none", loc, hours=hours))
    return Reply(t("results_list", loc, count=len(paths), hours=hours), images=paths)


def job_view(core: Core, job_id: str) -> JobView | None:
    with transaction(core.rt.engine) as s:
        job = s.get(Job, job_id)
        if job is None:
            return None
        target = ReplyTarget.from_json(job.reply_target) if job.reply_target != "{}" else None
        return JobView(job.id, job.user_id, job.style, job.status, target, job.source_ref)
