"""Faults with real parts: a worker's child process killed in the middle of a job."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bots.console.adapter import ConsoleChat
from bots.core import Core, Runtime
from storage.db import transaction
from storage.models import Job
from tasks.worker import spawn_worker, stop_worker
from tests.conftest import make_photo, pretend_a_worker_is_live
from tests.services import live_stack

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _job_when(rt: Runtime, job_id: str, statuses: tuple[str, ...], limit_s: float = 60) -> Job:
    """Poll the job row until its status is one of `statuses`."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with transaction(rt.engine) as s:
            job = s.get(Job, job_id)
        if job is not None and job.status in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job never reached {statuses} in {limit_s} s")


def test_killed_worker_child_means_redelivery_and_one_more_attempt(tmp_path: Path) -> None:
    sleepy = {"STYLEBOT_BACKEND": "sleep", "STYLEBOT_SLEEP_BACKEND_MS": "1500"}
    with live_stack(tmp_path, **sleepy) as (rt, env):
        pretend_a_worker_is_live(rt)  # admit the request before the real worker is up
        reply = ConsoleChat(Core(rt), "console:victim").handle_line(
            f"/ghibli {make_photo(tmp_path / 'p.jpg')}"
        )
        assert reply is not None and reply.job_id
        worker = spawn_worker(tmp_path / "worker.log", env=env)
        try:
            _job_when(rt, reply.job_id, ("running",))
            for child in _children(worker.pid):
                os.kill(child, signal.SIGKILL)  # the GPU process dies mid-job
            job = _job_when(rt, reply.job_id, ("done", "failed"))
        finally:
            stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()
    assert job.status == "done", log
    assert job.attempts == 2
