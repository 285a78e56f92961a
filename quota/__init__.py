"""Quota: tiers, quota days and the reserve/commit/refund ledger."""

from quota.clock import next_reset, quota_day
from quota.ledger import QuotaDenied, commit, refund, reserve, used_on
from quota.tiers import Tier, tiers_from_settings

__all__ = [
    "QuotaDenied",
    "Tier",
    "commit",
    "next_reset",
    "quota_day",
    "refund",
    "reserve",
    "tiers_from_settings",
    "used_on",
]
