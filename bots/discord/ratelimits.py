"""Counting Discord's 429s: discord.py waits them out and retries by itself, and tells of each
one only in a warning from its HTTP and webhook loggers, so those warnings are counted."""

from __future__ import annotations

import logging

from storage import metrics

LOGGERS = ("discord.http", "discord.webhook.async_")
# "We are being rate limited. GET … responded with 429. …" / "Webhook ID … is rate limited. …"
MARKS = ("responded with 429", "is rate limited")


class RateLimitCounter(logging.Filter):
    """Counts a 429 warning (stylebot_platform_429_total{platform="discord"}); drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and any(m in str(record.msg) for m in MARKS):
            metrics.rate_limited("discord")
        return True


def count_rate_limits() -> None:
    """Attach the counter to discord.py's loggers, once per process."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitCounter) for f in logger.filters):
            logger.addFilter(RateLimitCounter())
