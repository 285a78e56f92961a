"""What a person may still use today: their limit (custom, tier, surge), use and extra credits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bots.core.runtime import Runtime
from quota import quota_day, used_on
from quota.controls import user_limit
from storage.db import transaction
from storage.models import User


@dataclass(frozen=True)
class Allowance:
    tier: str
    used: int
    limit: int
    credits: int
    lowered: bool  # the free limit is reduced by the auto surge control

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used) + self.credits


def allowance(rt: Runtime, user_id: str, now: datetime | None = None) -> Allowance:
    with transaction(rt.engine) as s:
        return allowance_in(rt, s, user_id, now or rt.clock())


def allowance_in(rt: Runtime, s: Session, user_id: str, now: datetime) -> Allowance:
    """The allowance, read inside the caller's transaction (SQLite allows one writer)."""
    user = s.get(User, user_id)
    assert user is not None
    tier = rt.tiers[user.tier]
    limit, lowered = user_limit(s, user, tier, rt.settings.surge_min_free_limit)
    used = used_on(s, user.id, quota_day(now, rt.settings.zone))
    return Allowance(user.tier, used, limit, user.extra_credits, lowered)
