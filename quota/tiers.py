"""Tiers: a daily limit, an in-flight cap, a priority and the longest wait worth queuing for."""

from __future__ import annotations

from dataclasses import dataclass

from storage.settings import Settings


@dataclass(frozen=True)
class Tier:
    name: str
    daily_limit: int
    in_flight_cap: int
    priority: int  # higher goes first
    max_wait_s: int


def tiers_from_settings(settings: Settings) -> dict[str, Tier]:
    return {
        "free": Tier("free", settings.free_daily_limit, 1, 0, 600),
        "plus": Tier("plus", settings.plus_daily_limit, 2, 5, 300),
        "pro": Tier("pro", settings.pro_daily_limit, 4, 9, 120),
    }
