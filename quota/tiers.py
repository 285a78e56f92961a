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
        name: Tier(
            name,
            getattr(s, f"{name}_daily_limit"),
            getattr(s, f"{name}_in_flight"),
            0 if name == "free" else getattr(s, f"{name}_head_start_s"),
            getattr(s, f"{name}_max_wait_s"),
            getattr(s, f"{name}_relax_cap"),
        )
        for name in TIER_NAMES
    }
