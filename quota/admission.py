"""Admission: is there room for this request, and how long would it honestly wait?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from quota.capacity import Load, jobs_ahead, measure
from quota.controls import capacity_mode
from quota.tiers import Tier, tiers_from_settings
from storage import metrics
from storage.models import Job, JobStatus, Lane, Rejection
from storage.settings import Settings


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    reason: str | None = None  # closed | paused | no_workers | busy
    wait_s: float | None = None  # estimated time to the result, if admitted now
    retry_after_s: float | None = None  # for busy: when the wait should be acceptable again
    load: Load | None = None  # the measurement behind the verdict, reused when admitting


def sort_key(tier: Tier, now: datetime) -> datetime:
    """Queue order: arrival time minus the tier's head start (earliest goes first)."""
    return now - timedelta(seconds=tier.head_start_s)


def fair_sort_key(
    session: Session, tier: Tier, now: datetime, load: Load, tiers: Mapping[str, Tier]
) -> datetime:
    """The tier's head start, as far as it keeps the promise of every job it would pass.

    A head start passes queued jobs that arrived less than it before; each of them moves back
    one place. If that would make one finish later than its own tier's longest wait (at the
    measured rate), the newcomer queues behind that job instead. So a free request admitted
    within its bound stays within it, however much paid load arrives after it.
    """
    key = sort_key(tier, now)
    if tier.head_start_s == 0:
        return key  # passes nobody
    passed = session.exec(
        select(Job.sort_key, Job.created_at, Job.tier)
        .where(Job.status == JobStatus.QUEUED, Job.lane == Lane.NORMAL, col(Job.sort_key) > key)
        .order_by(col(Job.sort_key), col(Job.created_at), col(Job.id))
    ).all()
    start = jobs_ahead(session, key)
    for position, (their_key, created, their_tier) in enumerate(passed, start=start):
        finish = load.wait_for(position + 1)  # with the newcomer ahead of it
        promised = created + timedelta(seconds=tiers[their_tier].max_wait_s)
        if finish is not None and now + timedelta(seconds=finish) > promised:
            key = their_key  # behind it: equal keys go by arrival
    return key


def current_load(
    session: Session,
    now: datetime,
    settings: Settings,
    ahead_of: datetime | None = None,
    style: str | None = None,
) -> Load:
    return measure(
        session,
        now,
        settings.worker_heartbeat_s,
        settings.assumed_seconds_per_image,
        ahead_of=ahead_of,
        style=style,
    )


def assess(
    session: Session,
    tier: Tier,
    now: datetime,
    settings: Settings,
    tiers: Mapping[str, Tier] | None = None,
    style: str | None = None,
) -> Verdict:
    """Whether a request of `tier` (and `style`, whose own measured speed is its service
    time) is admitted now, and its honest wait."""
    mode = capacity_mode(session)
    if mode == "closed":
        return Verdict(False, "closed")
    if mode == "paused-free" and tier.name == "free":
        return Verdict(False, "paused")
    # The load statement also counts the jobs ahead of the tier's own key, which is the key
    # unless the fairness rule moves it back (then one more count).
    load = current_load(session, now, settings, ahead_of=sort_key(tier, now), style=style)
    key = fair_sort_key(session, tier, now, load, tiers or tiers_from_settings(settings))
    ahead = load.ahead_of(key)
    wait = load.wait_from_cold(
        jobs_ahead(session, key) if ahead is None else ahead, settings.cold_start_s
    )
    if wait is None:
        return Verdict(False, "no_workers", load=load)
    if wait > tier.max_wait_s:
        # The queue ahead drains at the measured rate; once the excess has drained, it fits.
        return Verdict(False, "busy", wait, wait - tier.max_wait_s, load)
    return Verdict(True, wait_s=wait, load=load)


def record_rejection(session: Session, user_id: str, tier: str, reason: str, now: datetime) -> None:
    session.add(Rejection(user_id=user_id, tier=tier, reason=reason, created_at=now))
    metrics.admission("refused", reason)
