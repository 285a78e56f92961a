"""`stylebot demo`: one request through the real path on embedded defaults, timed by stage."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
import uuid
from importlib import resources
from pathlib import Path

from bots.console.adapter import ConsoleChat, ConsoleSender
from bots.core import Core, Delivery, Runtime, build_runtime
from bots.core.workers import wait_until_live
from storage.db import transaction
from storage.migrate import upgrade
from storage.models import FINISHED, Job
from storage.settings import Settings
from tasks.worker import spawn_worker, stop_worker

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
WAIT_LIMIT_S = 180.0


def sample_photo() -> Path:
    return Path(str(resources.files("tasks").joinpath("samples/astronaut.jpg")))


def run_demo(settings: Settings, photo: Path | None, style: str, out: Path | None) -> int:
    photo = photo or sample_photo()
    out = out or settings.data_dir / f"demo-{style}.jpg"
    upgrade(settings.sqlalchemy_url)
    runtime = build_runtime(settings)
    worker_log = settings.data_dir / "logs" / "worker.log"
    started = time.perf_counter()
    worker = spawn_worker(worker_log)
    try:
        print("Starting a worker process…", flush=True)
        if not wait_until_live(runtime, worker):
            print(f"The worker did not start; see {worker_log}")
            return 1
        print(f"Worker ready in {time.perf_counter() - started:.1f} s")
        return _round_trip(runtime, photo, style, out, worker_log)
    finally:
        print("Stopping the demo worker…", flush=True)
        stop_worker(worker)


def _round_trip(rt: Runtime, photo: Path, style: str, out: Path, worker_log: Path) -> int:
    chat = ConsoleChat(Core(rt), user_id=f"console:demo-{uuid.uuid4().hex[:6]}")
    print(f"stylebot demo — {photo} → /{style} as {chat.sender.user_id} (a new free user)")
    t0 = time.perf_counter()
    reply = chat.handle_line(f"/{style} {photo}")
    admitted = time.perf_counter()
    print(f"bot › {reply.text if reply else ''}")
    if reply is None or reply.job_id is None:
        return 1
    job = _wait_finished(rt, reply.job_id)
    if job is None:
        print(f"\nNo result within {WAIT_LIMIT_S:.0f} s; see the worker log: {worker_log}")
        return 1
    finished = time.perf_counter()
    sender = ConsoleSender()
    asyncio.run(Delivery(rt, "console", sender).deliver_once())
    delivered = time.perf_counter()
    result = sender.sent[0][1] if sender.sent else None
    if result is None or result.image is None:
        print(f"The job ended {job.status} ({job.error_code}); see {worker_log}")
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.image, out)
    _print_summary(job, out, [admitted - t0, finished - admitted, delivered - finished])
    return 0


def _wait_finished(rt: Runtime, job_id: str) -> Job | None:
    start, tick = time.perf_counter(), 0
    tty = sys.stdout.isatty()
    last = ""
    while (elapsed := time.perf_counter() - start) < WAIT_LIMIT_S:
        with transaction(rt.engine) as s:
            job = s.get(Job, job_id)
        assert job is not None
        if job.status in FINISHED:
            print("\r" + " " * 60 + "\r" if tty else "", end="")
            return job
        state = "waiting for the worker" if job.status == "queued" else "styling"
        if tty:
            print(f"\r{SPINNER[tick % len(SPINNER)]} {state}… {elapsed:4.1f} s", end="", flush=True)
        elif state != last:
            print(f"… {state}", flush=True)
        last, tick = state, tick + 1
        time.sleep(0.1)
    return None


def _print_summary(job: Job, out: Path, walls: list[float]) -> None:
    assert job.started_at and job.finished_at
    queue_wait = (job.started_at - job.created_at).total_seconds()
    styling = (job.finished_at - job.started_at).total_seconds()
    print(f"\nResult written to {out.resolve()}")
    rows = [
        ("admission + quota + enqueue", walls[0]),
        ("queue wait", queue_wait),
        ("styling on the worker", styling),
        ("delivery", walls[2]),
        ("total", sum(walls)),
    ]
    print("Time by stage:")
    for name, seconds in rows:
        print(f"  {name:<40} {seconds * 1000:8.0f} ms")
