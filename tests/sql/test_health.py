"""`stylebot health bot|worker`, the containers' healthchecks: what each says and when."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bots.core import Runtime
from storage.db import transaction
from storage.health import BOT_LOOPS, check_bot, check_worker, mark_alive
from storage.jobs import beat
from storage.models import utcnow
from storage.settings import Settings

pytestmark = pytest.mark.sql


@pytest.fixture(autouse=True)
def _own_alive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_ALIVE_DIR", str(tmp_path / "alive"))


def test_a_worker_is_starting_until_it_beats_then_healthy_then_stale(
    runtime: Runtime, settings: Settings
) -> None:
    host = socket.gethostname()
    ok, line = check_worker(settings)
    assert (ok, line.split(":")[0]) == (False, "starting")
    with transaction(runtime.engine) as s:
        beat(s, f"other-host:{os.getpid()}", utcnow())  # another replica's beat doesn't count
    assert check_worker(settings)[0] is False
    with transaction(runtime.engine) as s:
        beat(s, f"{host}:{os.getpid()}", utcnow())
    ok, line = check_worker(settings)
    assert ok and line.startswith("healthy: heartbeat")
    long_ago = utcnow() - timedelta(seconds=3 * settings.worker_heartbeat_s + 30)
    with transaction(runtime.engine) as s:
        beat(s, f"{host}:{os.getpid()}", long_ago)  # it stopped beating: stuck or gone
    ok, line = check_worker(settings)
    assert not ok and line.startswith("unhealthy: last heartbeat")


def test_a_bot_is_healthy_while_both_loops_run_and_the_database_answers(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    assert check_bot(settings) == (False, "unhealthy: the delivery loop has not run yet")
    for loop in BOT_LOOPS:
        mark_alive(loop)
    assert check_bot(settings)[0] is True
    stale = time.time() - 600
    os.utime(tmp_path / "alive" / "stylebot-alive" / "maintenance", (stale, stale))
    ok, line = check_bot(settings)
    assert not ok and line.startswith("unhealthy: the maintenance loop last ran")
    mark_alive("maintenance")
    gone = settings.model_copy(update={"database_url": "postgresql+psycopg://x@127.0.0.1:9/none"})
    assert check_bot(gone) == (False, "unhealthy: database unreachable (OperationalError)")
    assert check_worker(gone) == (
        False,
        "unhealthy: database unreachable or not migrated (OperationalError)",
    )


def test_the_command_prints_one_line_and_exits_by_the_verdict(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    env |= {"STYLEBOT_DATABASE_URL": settings.sqlalchemy_url, "STYLEBOT_ALIVE_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "bots.cli", "health"]
    proc = subprocess.run([*run, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stderr) == (1, "")
    assert proc.stdout.startswith("starting: no heartbeat from this host yet")
    with transaction(runtime.engine) as s:
        beat(s, f"{socket.gethostname()}:1", utcnow())
    proc = subprocess.run([*run, "worker"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("healthy")


def test_a_pool_child_warming_up_again_is_not_a_dead_worker(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    """A child killed at its hard time limit is replaced; the new one loads (and compiles) its
    models again before it beats. Once the container was ready, that is healthy for a while."""
    mark_alive(f"warming-{os.getpid()}")  # this process plays the re-warming child
    ok, line = check_worker(settings)
    assert (ok, line.split(":")[0]) == (False, "starting")  # never ready: the first warm-up
    mark_alive("worker")  # the container's workers had been beating
    ok, line = check_worker(settings)
    assert ok and line.startswith("healthy: a replaced pool child is warming up")
    marker = tmp_path / "alive" / "stylebot-alive" / f"warming-{os.getpid()}"
    old = time.time() - 3600
    os.utime(marker, (old, old))  # warming an hour: stuck
    assert check_worker(settings)[0] is False
    marker.rename(marker.with_name("warming-999999999"))  # its process is gone
    os.utime(marker.with_name("warming-999999999"))
    assert check_worker(settings)[0] is False
