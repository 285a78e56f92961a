"""Reaching the real Redis the integration tests need; in CI a missing service fails the test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bots.core import Runtime, build_runtime
from storage.migrate import upgrade
from storage.settings import Settings
from tests.dbutil import fresh_database

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


@contextmanager
def live_stack(tmp_path: Path, **env: str) -> Iterator[tuple[Runtime, dict[str, str]]]:
    """A migrated throwaway PostgreSQL database and a clean Redis broker; yields the runtime
    and the environment a `stylebot worker` process needs to join them (plus `env`)."""
    broker = redis_url()
    with fresh_database("postgres", tmp_path) as db:
        upgrade(db)
        worker_env = {
            "STYLEBOT_DATABASE_URL": db,
            "STYLEBOT_BROKER_URL": broker,
            "STYLEBOT_DATA_DIR": str(tmp_path / "data"),
            **env,
        }
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=db,
            broker_url=broker,
            _env_file=None,  # type: ignore[call-arg]
        )
        rt = build_runtime(settings)
        try:
            yield rt, worker_env
        finally:
            rt.engine.dispose()
