"""Admission: is there room for this request, and how long would it honestly wait?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from quota.capacity import jobs_ahead, measure
from quota.controls import capacity_mode
from quota.tiers import Tier
from storage.models import Rejection
from storage.settings import Settings


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    reason: str | None = None  # closed | paused | no_workers | busy
    wait_s: float | None = None  # estimated time to the result, if admitted now
    retry_after_s: float | None = None  # for busy: when the wait should be acceptable again


def sort_key(tier: Tier, now: datetime) -> datetime:
    """Queue order: arrival time minus the tier's head start (earliest goes first)."""
    return now - timedelta(seconds=tier.head_start_s)


def assess(session: Session, tier: Tier, now: datetime, settings: Settings) -> Verdict:
    mode = capacity_mode(session)
    if mode == "closed":
        return Verdict(False, "closed")
    if mode == "paused-free" and tier.name == "free":
        return Verdict(False, "paused")
    load = measure(session, now, settings.worker_heartbeat_s, settings.assumed_seconds_per_image)
    wait = load.wait_for(jobs_ahead(session, sort_key(tier, now)))
    if wait is None:
        return Verdict(False, "no_workers")
    if wait > tier.max_wait_s:
        # The queue ahead drains at the measured rate; once the excess has drained, it fits.
        return Verdict(False, "busy", wait_s=wait, retry_after_s=wait - tier.max_wait_s)
    return Verdict(True, wait_s=wait)


def record_rejection(session: Session, user_id: str, tier: str, reason: str, now: datetime) -> None:
    session.add(Rejection(user_id=user_id, tier=tier, reason=reason, created_at=now))
