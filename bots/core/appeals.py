"""Held-back results: the person's /appeal, the admins' /appeals, /release and /confirm.

The worker's safety check (tasks/safety.py) keeps a flagged result stored, unsent and refunded.
A false positive must be cheap to fix: /release is one command, and delivers the stored result
through the delivery loop, still free; /confirm deletes it and tells the person the check stands.
Both reset the job's delivery, so the delivery loop sends the news once, like any reply.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, func, update
from sqlmodel import Session, col, select

from bots.core.messages import t
from bots.core.requests import Reply, Sender
from bots.core.service import Core
from quota.controls import audit
from storage.db import transaction
from storage.models import Job, JobStatus

USAGE = {
    "appeals": "/appeals",
    "release": "/release <job id>",
    "confirm": "/confirm <job id>",
}
RELEASED, CONFIRMED = "released", "confirmed"
APPEAL_PREFIX = "appeal:"  # callback data / custom id of the review button: appeal:<job id>
MAX_LISTED = 20
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class AppealRefused(Exception):
    """An admin's appeal command that can't be done; `key` names the catalog sentence."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key, self.params = key, params


def _awaiting() -> list[ColumnElement[bool]]:
    """Held results no admin has reviewed yet."""
    return [col(Job.held_at).is_not(None), col(Job.review).is_(None)]


def appeal(core: Core, sender: Sender, job_id: str | None = None) -> Reply:
    """/appeal: ask for a review of this person's latest held-back result (still stored); the
    button under a held-back explanation names its job, which must be this person's own."""
    loc, now = sender.locale, core.rt.clock()
    kept_since = now - timedelta(hours=core.rt.settings.result_ttl_hours)
    if job_id is not None and not _JOB_ID.fullmatch(job_id):
        return Reply(t("appeal_none", loc))
    which = [] if job_id is None else [Job.id == job_id]
    with transaction(core.rt.engine) as s:
        job = s.exec(
            select(Job)
            .where(
                Job.user_id == sender.user_id, col(Job.held_at) >= kept_since, *which,
                *_awaiting(),
            )
            .order_by(col(Job.held_at).desc())
        ).first()  # fmt: skip
        if job is None:
            return Reply(t("appeal_none", loc))
        if job.appealed_at is not None:
            return Reply(t("appeal_already", loc), job_id=job.id)
        job.appealed_at = now
        s.add(job)
        audit(s, actor=sender.user_id, action="appeal", now=now, target=job.id)
    return Reply(t("appeal_sent", loc), job_id=job.id)


def appeals_view(core: Core, s: Session, args: tuple[str, ...], loc: str) -> Reply:
    """/appeals: the held results awaiting review, appealed ones first, newest first."""
    if args:
        raise AppealRefused("usage", usage=USAGE["appeals"])
    jobs = s.exec(
        select(Job)
        .where(*_awaiting())
        .order_by(col(Job.appealed_at).is_(None), col(Job.held_at).desc())
        .limit(MAX_LISTED)
    ).all()
    if not jobs:
        return Reply(t("appeals_none", loc))
    items = [
        t(
            "appeals_item", loc, job=job.id, user=job.user_id, style=job.style,
            label=job.hold_label or "-", score=round(job.hold_score or 0.0, 2),
            appealed=t("appeals_not_appealed" if job.appealed_at is None else "appeals_appealed",
                       loc),
        )
        for job in jobs
    ]  # fmt: skip
    return Reply(t("appeals_list", loc, count=len(jobs), items="; ".join(items)))


def release(core: Core, s: Session, actor: str, args: tuple[str, ...], loc: str) -> Reply:
    """/release <job id>: the stored result goes to the person through the delivery loop, free:
    the job was refunded when held, and becomes done without a charge."""
    job = _held(s, "release", args)
    if not job.result_path or not Path(job.result_path).is_file():
        raise AppealRefused("appeal_gone", job=job.id)
    before = _before(job)
    _review(s, job, RELEASED, core.rt.clock(), status=JobStatus.DONE, error_code=None)
    audit(s, actor=actor, action="release", now=core.rt.clock(), target=job.id, before=before,
          after=RELEASED)  # fmt: skip
    return Reply(t("appeal_released", loc, job=job.id, user=job.user_id))


def confirm(core: Core, s: Session, actor: str, args: tuple[str, ...], loc: str) -> Reply:
    """/confirm <job id>: the hold stands; the stored result is deleted, the person told."""
    job = _held(s, "confirm", args)
    stored, before = job.result_path, _before(job)
    _review(s, job, CONFIRMED, core.rt.clock(), result_path=None)
    audit(s, actor=actor, action="confirm", now=core.rt.clock(), target=job.id, before=before,
          after=CONFIRMED)  # fmt: skip
    if stored:  # the row no longer points at it; retention would delete it in a day anyway
        Path(stored).unlink(missing_ok=True)
    return Reply(t("appeal_confirmed", loc, job=job.id, user=job.user_id))


def _held(s: Session, verb: str, args: tuple[str, ...]) -> Job:
    if len(args) != 1 or not _JOB_ID.fullmatch(args[0]):
        raise AppealRefused("usage", usage=USAGE[verb])
    job = s.exec(select(Job).where(Job.id == args[0], *_awaiting())).first()
    if job is None:
        raise AppealRefused("appeal_unknown", job=args[0])
    return job


def _review(s: Session, job: Job, review: str, now: datetime, **values: object) -> None:
    """Record the review and reset the job's delivery: the loop sends the outcome once."""
    won = s.execute(
        update(Job)
        .where(col(Job.id) == job.id, *_awaiting())
        .values(review=review, reviewed_at=now, delivered_at=None, delivery_claimed_at=None,
                **values)
    )  # fmt: skip
    if won.rowcount != 1:  # type: ignore[attr-defined]  # another admin reviewed it first
        raise AppealRefused("appeal_unknown", job=job.id)


def _before(job: Job) -> str:
    appealed = "appealed" if job.appealed_at is not None else "not appealed"
    return f"held {job.hold_label} {job.hold_score}, {appealed}"


def safety_counts(s: Session, since: datetime) -> dict[str, int]:
    """Held, appealed, released and confirmed since `since` (the day's start, for /stats)."""

    def count(*where: ColumnElement[bool]) -> int:
        return int(s.exec(select(func.count()).select_from(Job).where(*where)).one())

    return {
        "held": count(col(Job.held_at) >= since),
        "appealed": count(col(Job.appealed_at) >= since),
        "released": count(col(Job.reviewed_at) >= since, col(Job.review) == RELEASED),
        "confirmed": count(col(Job.reviewed_at) >= since, col(Job.review) == CONFIRMED),
    }
