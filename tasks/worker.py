"""Start a worker: `stylebot worker`, or a child process that the demo and chat start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storage.settings import Settings
from tasks.app import GPU_QUEUE, check_visibility_timeout, make_celery
from tasks.stylize import register_tasks


def run_worker(settings: Settings, concurrency: int = 1, loglevel: str = "INFO") -> None:
    """Run a Celery worker on the gpu queue in this process until it is told to stop."""
    check_visibility_timeout(settings)
    app = make_celery(settings)
    register_tasks(app)
    # One prefork child per GPU; the backend loads lazily in the child on its first job.
    app.worker_main(
        [
            "worker",
            f"--queues={GPU_QUEUE}",
            f"--concurrency={concurrency}",
            "--prefetch-multiplier=1",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "--hostname=stylebot-worker-%h-" + str(os.getpid()),
        ]
    )


def spawn_worker(
    log_file: Path, concurrency: int = 1, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `stylebot worker` as a separate process (this process's environment + `env`)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "bots.cli", "worker", f"--concurrency={concurrency}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Warm shutdown (SIGTERM lets the current job finish), then kill if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
