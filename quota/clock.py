"""Quota days: a day starts at midnight in the configured time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def quota_day(now_utc: datetime, zone: ZoneInfo) -> date:
    """The local calendar day of the aware datetime `now_utc` in `zone`."""
    return now_utc.astimezone(zone).date()


def next_reset(now_utc: datetime, zone: ZoneInfo) -> datetime:
    """The next local midnight, as an aware UTC datetime."""
    tomorrow = quota_day(now_utc, zone) + timedelta(days=1)
    local_midnight = datetime.combine(tomorrow, time(0), tzinfo=zone)
    return local_midnight.astimezone(UTC)
