"""Auto mode: step the free daily limit down while the free wait stays long, back up when it eases.

The controller looks at the wait a new free request would face now. Above `surge_high_wait_s`
for `surge_window_s` → one step down (3 → 2 → 1, never below `surge_min_free_limit`); below
`surge_low_wait_s` for the window → one step up. Each step is audited with actor "auto".
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from quota.admission import sort_key
from quota.capacity import jobs_ahead, measure
from quota.controls import audit, capacity_mode, get, put, surge_level, swap, tier_limit
from quota.tiers import Tier
from storage.settings import Settings

HIGH_SINCE = "surge_high_since"
LOW_SINCE = "surge_low_since"


def free_wait(session: Session, free: Tier, now: datetime, settings: Settings) -> float | None:
    load = measure(session, now, settings.worker_heartbeat_s, settings.assumed_seconds_per_image)
    return load.wait_for(jobs_ahead(session, sort_key(free, now)))


def tick(session: Session, free: Tier, now: datetime, settings: Settings) -> int:
    """Evaluate once; returns the step taken (-1 down, +1 up, 0 none)."""
    if capacity_mode(session) != "auto":
        return 0
    wait = free_wait(session, free, now, settings)
    level = surge_level(session)
    max_level = max(0, tier_limit(session, free) - settings.surge_min_free_limit)
    if wait is None or wait > settings.surge_high_wait_s:
        return _hold(
            session, HIGH_SINCE, LOW_SINCE, now, settings, level, min(level + 1, max_level)
        )
    if wait < settings.surge_low_wait_s:
        return _hold(session, LOW_SINCE, HIGH_SINCE, now, settings, level, max(level - 1, 0))
    put(session, HIGH_SINCE, "", now)
    put(session, LOW_SINCE, "", now)
    return 0


def _hold(
    session: Session,
    since_key: str,
    other_key: str,
    now: datetime,
    settings: Settings,
    level: int,
    target: int,
) -> int:
    """The condition holds now: start its clock, or act once it has held for the window."""
    put(session, other_key, "", now)
    since = get(session, since_key, "")
    if not since:
        put(session, since_key, now.isoformat(), now)
        return 0
    if (
        target == level
        or (now - datetime.fromisoformat(since)).total_seconds() < settings.surge_window_s
    ):
        return 0
    if not swap(session, "surge_level", str(level), str(target), now):
        return 0  # another process stepped first
    put(session, since_key, now.isoformat(), now)  # the next step needs another full window
    audit(session, actor="auto", action="surge", now=now, before=level, after=target)
    return 1 if target < level else -1
