"""Many requests at once never over-grant: one atomic statement per reservation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import select

from bots.console.adapter import ConsoleChat
from bots.core import Core, Reply, Runtime
from storage.db import transaction
from storage.models import Job, Usage

pytestmark = pytest.mark.sql


def _burst(core: Core, user_ids: list[str], photo: Path) -> list[Reply]:
    chats = [ConsoleChat(core, uid) for uid in user_ids]
    requests = [chat._request("ghibli", photo) for chat in chats]
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(core.submit, requests))


def _jobs_by_user(runtime: Runtime) -> dict[str, int]:
    with transaction(runtime.engine) as s:
        jobs = s.exec(select(Job)).all()
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.user_id] = counts.get(job.user_id, 0) + 1
    return counts


def test_forty_concurrent_requests_grant_exactly_the_daily_limit(
    runtime: Runtime, photo: Path
) -> None:
    # Lift the in-flight cap so the daily limit (3) is what the burst runs into.
    runtime.tiers["free"] = replace(runtime.tiers["free"], in_flight_cap=100)
    replies = _burst(Core(runtime), ["console:crowd"] * 40, photo)
    granted = [r for r in replies if r.job_id]
    refused = [r for r in replies if not r.job_id]
    assert len(granted) == 3
    assert all("used all 3 images" in r.text for r in refused)
    assert _jobs_by_user(runtime) == {"console:crowd": 3}
    with transaction(runtime.engine) as s:
        assert [u.used for u in s.exec(select(Usage)).all()] == [3]


def test_forty_concurrent_requests_respect_the_in_flight_cap(runtime: Runtime, photo: Path) -> None:
    replies = _burst(Core(runtime), ["console:eager"] * 40, photo)
    assert sum(1 for r in replies if r.job_id) == 1
    assert _jobs_by_user(runtime) == {"console:eager": 1}


def test_many_users_at_once_each_get_their_own_allowance(runtime: Runtime, photo: Path) -> None:
    runtime.tiers["free"] = replace(runtime.tiers["free"], in_flight_cap=100)
    users = [f"console:u{i}" for i in range(8)] * 5  # 8 people, 5 requests each, interleaved
    replies = _burst(Core(runtime), users, photo)
    assert sum(1 for r in replies if r.job_id) == 8 * 3
    assert _jobs_by_user(runtime) == {f"console:u{i}": 3 for i in range(8)}
