"""Waiting for a worker process to come up, for the console commands that start their own."""

from __future__ import annotations

import subprocess
import time

from bots.core.runtime import Runtime
from quota.capacity import live_workers
from storage.db import transaction


def wait_until_live(rt: Runtime, worker: subprocess.Popen[bytes], limit_s: float = 120.0) -> bool:
    """True once a worker's heartbeat is in SQL; False if it exited or took too long."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and worker.poll() is None:
        with transaction(rt.engine) as s:
            if live_workers(s, rt.clock(), rt.settings.worker_heartbeat_s) > 0:
                return True
        time.sleep(0.1)
    return False


def spawn_local_worker(rt: Runtime) -> subprocess.Popen[bytes]:
    """`--with-worker`, a local try: one worker child, live before the bot admits anything."""
    from storage.settings import SettingsError
    from tasks.worker import spawn_worker, stop_worker

    log = rt.settings.data_dir / "logs" / "worker.log"
    worker = spawn_worker(log, env={"STYLEBOT_METRICS_PORT": ""})  # the bot's port is its own
    if not wait_until_live(rt, worker):
        stop_worker(worker)
        raise SettingsError(f"the worker did not start; see {log}")
    return worker
