"""Start a worker: `stylebot worker`, or a child process that the demo and chat start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from storage.metrics_endpoint import serve_metrics, use_multiprocess_dir
from storage.provenance import check_provenance
from storage.settings import Settings, SettingsError
from tasks.app import GPU_QUEUE, check_visibility_timeout, make_celery
from tasks.gpus import claim_gpu
from tasks.stylize import register_tasks


def run_worker(settings: Settings, concurrency: int = 1, loglevel: str = "INFO") -> None:
    """Run a Celery worker on the gpu queue in this process until it is told to stop."""
    check_visibility_timeout(settings)
    check_provenance(settings)  # a certificate or key it cannot sign with: refuse, one line
    check_broker(settings)
    if settings.gpu_claim_dir:  # before anything imports torch: the claim sets the visible GPU
        if concurrency != 1:
            raise SettingsError(
                "STYLEBOT_GPU_CLAIM_DIR: a worker claims one GPU for one process; "
                "run `stylebot worker --concurrency 1` and scale replicas instead"
            )
        claim_gpu(Path(settings.gpu_claim_dir), settings.gpus, settings.gpu_claim_wait_s)
    app = make_celery(settings)
    register_tasks(app)
    if settings.metrics_port is not None:
        # The pool children record, this process serves what they recorded: set before they fork.
        use_multiprocess_dir()
        serve_metrics(settings, "worker")
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


def check_broker(settings: Settings, timeout_s: float = 5.0) -> None:
    """One short connection at start: an unreachable broker is one SettingsError line.

    At start-up Celery would keep retrying with backoff, a worker that seems up and takes
    nothing; once it runs, its own logged reconnects are what we want, so this looks once.
    """
    if settings.embedded_broker:
        return
    from kombu import Connection

    try:
        with Connection(settings.broker_url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:  # OperationalError unreachable, KeyError no transport, ValueError
        url = urlsplit(settings.broker_url)
        try:
            where = f"{url.hostname}:{url.port}" if url.port else url.hostname or url.path
        except ValueError:  # a port that is not a number
            where = url.netloc.rpartition("@")[2]
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        reason = " ".join(text.split()) or type(exc).__name__
        raise SettingsError(
            f"STYLEBOT_BROKER_URL: cannot reach the broker at {where} ({reason}): "
            "is Redis running there, and is STYLEBOT_BROKER_URL right?"
        ) from None


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
