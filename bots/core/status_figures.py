"""What the public status page shows, read from SQL in one transaction: totals only, no people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from bots.core.runtime import Runtime
from quota.admission import current_load, fair_sort_key
from quota.capacity import Load, jobs_ahead
from quota.controls import capacity_mode, free_limit_now, tier_limit
from quota.stats import queued_by_tier
from quota.tiers import Tier
from storage.db import transaction
from storage.models import Job, JobStatus

HOUR = timedelta(hours=1)
CLOSED_TO = {"closed": ("free", "plus", "pro"), "paused-free": ("free",)}


@dataclass(frozen=True)
class TierFigures:
    name: str
    taking: bool  # does this tier take requests now (capacity mode, daily limit above 0)?
    queued: int
    wait_s: float | None  # a new request's estimated time to its result; None: no live workers
    max_wait_s: int  # above this estimate admission refuses the request as busy

    @property
    def retry_after_s(self) -> float | None:
        """When the wait should be acceptable again, if a request would be refused as busy now."""
        if self.wait_s is None or self.wait_s <= self.max_wait_s:
            return None
        return self.wait_s - self.max_wait_s


@dataclass(frozen=True)
class StatusFigures:
    at: datetime
    mode: str  # open | paused-free | closed | auto
    free_limit: int  # the free daily limit in force (auto surge applied)
    done_last_hour: int
    tiers: tuple[TierFigures, ...]

    @property
    def free_open(self) -> bool:
        return next(tier.taking for tier in self.tiers if tier.name == "free")


def read_status(rt: Runtime) -> StatusFigures:
    """The figures now. Blocking (SQL): call it off the event loop."""
    now = rt.clock()
    with transaction(rt.engine) as s:
        mode = capacity_mode(s)
        free_limit, _ = free_limit_now(s, rt.tiers["free"], rt.settings.surge_min_free_limit)
        load = current_load(s, now, rt.settings)
        queued = queued_by_tier(s)
        limits = {name: tier_limit(s, tier) for name, tier in rt.tiers.items()} | {
            "free": free_limit
        }
        tiers = tuple(
            TierFigures(
                name=name,
                taking=name not in CLOSED_TO.get(mode, ()) and limits[name] > 0,
                queued=queued.get(name, 0),
                wait_s=_wait(s, rt, tier, now, load),
                max_wait_s=tier.max_wait_s,
            )
            for name, tier in rt.tiers.items()
        )
        done = done_since(s, now - HOUR)
    return StatusFigures(now, mode, free_limit, done, tiers)


def _wait(s: Session, rt: Runtime, tier: Tier, now: datetime, load: Load) -> float | None:
    """The wait admission would estimate for this tier's request arriving now."""
    ahead = jobs_ahead(s, fair_sort_key(s, tier, now, load, rt.tiers))
    return load.wait_from_cold(ahead, rt.settings.cold_start_s)


def done_since(s: Session, since: datetime) -> int:
    n = s.exec(
        select(func.count())
        .select_from(Job)
        .where(Job.status == JobStatus.DONE, col(Job.finished_at) >= since)
    ).one()
    return int(n)
