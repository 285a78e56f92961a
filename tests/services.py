"""Reaching the real Redis the integration tests need; in CI a missing service fails the test."""

from __future__ import annotations

import os

import pytest
import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_url() -> str:
    """A Redis database the tests may empty: STYLEBOT_TEST_REDIS_URL, else db 15 locally."""
    url = os.environ.get("STYLEBOT_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
        client.flushdb()
    except redis.RedisError as exc:
        reason = f"Redis unreachable at {url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    finally:
        client.close()
    return url
