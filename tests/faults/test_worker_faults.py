"""Workers that die, crash on a job every time, or are told to stop mid-job: every admitted
job still ends done or failed, with one reply, one charge (or one refund), nothing stuck."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from bots.core.messages import t
from tests.faults.stack import children, fault_stack, graceful, kill_tree

pytestmark = pytest.mark.faults

SLEEPY = {"backend": "sleep", "sleep_backend_ms": 1500}


def test_a_killed_pool_child_means_one_more_attempt_one_reply_one_charge(tmp_path: Path) -> None:
    with fault_stack(tmp_path, **SLEEPY) as stack:
        job_id = stack.ask("console:kid")
        worker = stack.start_worker()
        stack.wait_status(job_id, ("running",))
        for child in children(worker.pid):
            os.kill(child, signal.SIGKILL)  # the GPU process dies mid-job
        jobs = stack.settled([job_id])
    assert jobs[job_id].status == "done" and jobs[job_id].attempts == 2


def test_a_killed_worker_is_recovered_by_the_next_one_in_seconds(tmp_path: Path) -> None:
    # Redis hands an unacked message out again after the visibility timeout (production: an
    # hour); the housekeeping requeues a running job whose worker stopped beating sooner.
    limits = {"task_soft_time_limit": 3, "task_time_limit": 4, "broker_visibility_timeout": 9}
    with fault_stack(tmp_path, **SLEEPY, **limits) as stack:
        job_id = stack.ask("console:lost-host")
        first = stack.start_worker()
        stack.wait_status(job_id, ("running",))
        kill_tree(first)  # the main process and its child, at once
        killed_at = time.monotonic()
        stack.start_worker()
        jobs = stack.settled([job_id], limit_s=60)
        recovered_in = time.monotonic() - killed_at
    assert jobs[job_id].status == "done" and jobs[job_id].attempts == 2
    assert recovered_in < 40, recovered_in


def test_a_job_that_crashes_its_worker_every_time_stops_at_the_cap_refunded(
    tmp_path: Path,
) -> None:
    with fault_stack(tmp_path, backend="crash", max_attempts=3) as stack:
        job_id = stack.ask("console:poison")
        stack.start_worker()
        jobs = stack.settled([job_id], limit_s=120)
        failure = [r for _, r in stack.sender.sent if r.job_id == job_id]
    job = jobs[job_id]
    assert job.status == "failed" and job.error_code == "attempts"
    # Three runs crashed; the fourth claim (or the reaper) found it past the cap and failed it.
    assert job.attempts in (3, 4)
    assert stack.logs().count("job_failed") == 0  # no run ever got as far as failing normally
    assert [r.text for r in failure] == [t("failed", "en")]


def test_sigterm_during_a_job_finishes_it_then_stops(tmp_path: Path) -> None:
    with fault_stack(tmp_path, **SLEEPY) as stack:
        job_id = stack.ask("console:deploy")
        worker = stack.start_worker()
        stack.wait_status(job_id, ("running",))
        graceful(worker)  # a deploy: SIGTERM, Celery's warm shutdown
        assert worker.returncode == 0
        stack.start_worker()  # the new version, should anything have gone back to the queue
        jobs = stack.settled([job_id])
    assert jobs[job_id].status == "done" and jobs[job_id].attempts == 1
