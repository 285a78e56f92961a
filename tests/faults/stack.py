"""The stack the fault tests break: PostgreSQL, Redis, the bot side in this process (the
console adapter, the delivery loop and housekeeping, on their own event loop) and real
`stylebot worker` processes. `settled()` checks what every fault test promises."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlmodel import select

from bots.console.adapter import ConsoleChat, ConsoleSender
from bots.core import Core, Delivery, Maintenance, Runtime, build_runtime
from storage.db import transaction
from storage.migrate import upgrade
from storage.models import Job, JobStatus, LedgerEntry
from storage.settings import Settings
from tasks.worker import spawn_worker, stop_worker
from tests.conftest import make_photo, pretend_a_worker_is_live
from tests.dbutil import fresh_database
from tests.services import redis_url

FAST = {"worker_heartbeat_s": 1.0, "token_grace_s": 2.0}


class FaultStack:
    def __init__(self, runtime: Runtime, tmp: Path, worker_env: dict[str, str]) -> None:
        self.rt, self.tmp, self.worker_env = runtime, tmp, worker_env
        self.core = Core(runtime)
        self.sender = ConsoleSender(echo=False)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bot-side", daemon=True)
        self.workers: list[subprocess.Popen[bytes]] = []
        self._photos = 0

    # --- the bot side ----------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        self.stop_event = asyncio.Event()
        delivery = Delivery(self.rt, "console", self.sender)
        maintenance = Maintenance(self.rt)
        self.loops = [
            asyncio.run_coroutine_threadsafe(delivery.run(self.stop_event, 0.1), self.loop),
            asyncio.run_coroutine_threadsafe(maintenance.run(self.stop_event, 0.5), self.loop),
        ]

    def stop(self) -> None:
        for worker in self.workers:
            kill_tree(worker) if worker.poll() is None else None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        for loop in self.loops:
            with contextlib.suppress(Exception):
                loop.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def ask(self, user: str) -> str:
        """A person sends a fresh photo; returns the admitted job's id."""
        self._photos += 1
        photo = make_photo(self.tmp / f"p{self._photos}.jpg", (120 + self._photos, 90))
        reply = ConsoleChat(self.core, user).handle_line(f"/ghibli {photo}")
        assert reply is not None and reply.job_id, reply
        return reply.job_id

    # --- workers ---------------------------------------------------------------------------

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker{len(self.workers)}.log"
        worker = spawn_worker(log, env={**self.worker_env, **env})
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("worker*.log")))

    # --- what happened -------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        with transaction(self.rt.engine) as s:
            job = s.get(Job, job_id)
            assert job is not None
            return job

    def wait_status(self, job_id: str, statuses: tuple[str, ...], limit_s: float = 60) -> Job:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job.status in statuses:
                return job
            time.sleep(0.1)
        raise AssertionError(f"{job_id} never {statuses} in {limit_s} s\n{self.logs()[-3000:]}")

    def settled(self, job_ids: list[str], limit_s: float = 90) -> dict[str, Job]:
        """Every job done or failed, replied to once, its ledger settled once; nothing left
        queued or running. Returns the jobs."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not self._all_replied(job_ids):
            time.sleep(0.1)
        time.sleep(0.5)  # a duplicate would show up now
        jobs = {job_id: self.job(job_id) for job_id in job_ids}
        stuck = {j.id: j.status for j in jobs.values() if j.status not in ("done", "failed")}
        assert not stuck, f"not finished: {stuck}\n{self.logs()[-3000:]}"
        replies = [r.job_id for _, r in self.sender.sent]
        for job in jobs.values():
            assert replies.count(job.id) == 1, f"{job.id}: {replies.count(job.id)} replies"
            assert job.delivered_at is not None
            kinds = sorted(self._ledger(job.id))
            settle = "commit" if job.status == JobStatus.DONE else "refund"
            assert kinds == sorted(["reserve", settle]), (job.id, job.status, kinds)
        with transaction(self.rt.engine) as s:
            active = s.exec(select(Job).where(Job.status.in_(["queued", "running"]))).all()  # type: ignore[attr-defined]
        assert not active, [(j.id, j.status) for j in active]
        return jobs

    def _all_replied(self, job_ids: list[str]) -> bool:
        replied = {r.job_id for _, r in self.sender.sent}
        return all(job_id in replied for job_id in job_ids)

    def _ledger(self, job_id: str) -> list[str]:
        with transaction(self.rt.engine) as s:
            rows = s.exec(select(LedgerEntry).where(LedgerEntry.job_id == job_id)).all()
            return [row.kind for row in rows]


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def kill_tree(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Kill a worker and its pool children at once, as a lost machine would."""
    for pid in [*children(proc.pid), proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    proc.wait(10)


def graceful(proc: subprocess.Popen[bytes]) -> None:
    stop_worker(proc, timeout=30)


def _env(settings: dict[str, Any]) -> dict[str, str]:
    return {f"STYLEBOT_{k.upper()}": str(v) for k, v in settings.items()}


@contextmanager
def fault_stack(tmp: Path, **settings: Any) -> Iterator[FaultStack]:
    """A migrated throwaway PostgreSQL database, a clean Redis database and the bot side;
    `settings` apply to the bot side and to every worker started."""
    broker = redis_url()
    chosen = {**FAST, **settings}
    with fresh_database("postgres", tmp) as db:
        upgrade(db)
        base = {"data_dir": tmp / "data", "database_url": db, "broker_url": broker}
        rt = build_runtime(Settings(**base, **chosen, _env_file=None))  # type: ignore[call-arg]
        pretend_a_worker_is_live(rt)  # admit requests before a real worker is up
        stack = FaultStack(rt, tmp, _env({**base, **chosen}))
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()
            rt.engine.dispose()
