"""Tiers: a daily limit, an in-flight cap, a head start in the queue and the longest fair wait."""

from __future__ import annotations

from dataclasses import dataclass

from storage.settings import Settings

TIER_NAMES = ("free", "plus", "pro")


@dataclass(frozen=True)
class Tier:
    name: str
    daily_limit: int
    in_flight_cap: int
    head_start_s: int  # queued as if it arrived this much earlier: paid first, nobody starves
    max_wait_s: int  # above this estimated wait a request is refused (politely, uncharged)
    relax_cap: int = 1  # relax-lane jobs one person may hold at once


def tiers_from_settings(settings: Settings) -> dict[str, Tier]:
    s = settings
    return {
        "free": Tier(
            "free", s.free_daily_limit, s.free_in_flight, 0, s.free_max_wait_s, s.free_relax_cap
        ),
        "plus": Tier(
            "plus", s.plus_daily_limit, s.plus_in_flight, s.plus_head_start_s, s.plus_max_wait_s,
            s.plus_relax_cap,
        ),  # fmt: skip
        "pro": Tier(
            "pro", s.pro_daily_limit, s.pro_in_flight, s.pro_head_start_s, s.pro_max_wait_s,
            s.pro_relax_cap,
        ),  # fmt: skip
    }
