"""The broker loses its messages while jobs wait (Redis restarted with nothing persisted, a
FLUSHDB, a failover to a replica that had not seen them): every queued job still runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.faults.stack import fault_stack

pytestmark = pytest.mark.faults


def test_jobs_whose_tokens_were_flushed_still_run_once(tmp_path: Path) -> None:
    with fault_stack(tmp_path, backend="null") as stack:
        job_ids = [stack.ask(f"console:flushed{i}") for i in range(3)]
        client = redis.Redis.from_url(stack.rt.settings.broker_url)
        try:
            assert client.dbsize() > 0  # the three tokens wait in Redis ...
            client.flushdb()  # ... and are gone
        finally:
            client.close()
        stack.start_worker()
        jobs = stack.settled(job_ids, limit_s=60)
    assert {j.status for j in jobs.values()} == {"done"}
    assert all(j.attempts == 1 for j in jobs.values())
