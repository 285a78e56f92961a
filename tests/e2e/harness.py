"""The stack under test: the emulator and a real TelegramBot on one event loop in a thread,
PostgreSQL, Redis, and (when asked) a real `stylebot worker` process."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from sqlmodel import select

from bots.core import Runtime, build_runtime
from bots.core.workers import wait_until_live
from bots.telegram import TelegramBot, TelegramOptions
from storage.db import transaction
from storage.migrate import upgrade
from storage.models import Job, Usage, WorkerBeat
from storage.settings import Settings
from tasks.worker import spawn_worker, stop_worker
from tests.conftest import PLACEHOLDER_BEAT, pretend_a_worker_is_live
from tests.dbutil import fresh_database
from tests.e2e.emulator import TOKEN, Emulator
from tests.services import redis_url

T = TypeVar("T")

FAST = TelegramOptions(
    poll_timeout_s=5.0,
    delivery_interval_s=0.1,
    maintenance_interval_s=1.0,
    status_interval_s=0.2,
    status_min_edit_s=0.5,
    per_chat_rate=5.0,
    max_retries=6,
    fetch_timeout_s=20.0,
)


class Stack:
    def __init__(self, settings: dict[str, Any], options: TelegramOptions = FAST) -> None:
        self.overrides, self.options = settings, options
        self.emulator = Emulator()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bot-loop", daemon=True)
        self.worker: subprocess.Popen[bytes] | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        await self.emulator.start()
        self.settings = Settings(
            telegram_token=TOKEN,
            telegram_api_url=self.emulator.url,
            **self.overrides,
            _env_file=None,  # type: ignore[call-arg]
        )
        self.runtime: Runtime = build_runtime(self.settings)
        pretend_a_worker_is_live(self.runtime)  # admit requests before a real worker is up
        await self._start_bot()

    async def _start_bot(self) -> None:
        self.bot = TelegramBot(self.settings, self.runtime, self.options)
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.bot.serve(self.stop_event))
        while not self.bot.app.running:
            if self.task.done():
                self.task.result()  # raises what stopped it
            await asyncio.sleep(0.02)

    def restart_bot(self) -> None:
        """A new bot process's life: what the old one kept in memory is gone; SQL remains."""
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.run(self._restart_bot())

    async def _restart_bot(self) -> None:
        await self.task
        await self._start_bot()

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.runtime.engine.dispose()

    async def _stop(self) -> None:
        await self.task
        await self.emulator.stop()

    def start_worker(self, log: Path) -> None:
        self.worker = start_classic_worker(self.runtime, log)

    # --- what the database says ------------------------------------------------------------

    def jobs(self, user_id: str) -> list[Job]:
        return jobs_of(self.runtime, user_id)

    def used(self, user_id: str) -> int:
        return used_by(self.runtime, user_id)


@contextmanager
def telegram_process(
    tmp_path: Path, emu: Emulator, *args: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`stylebot telegram [args]` as a real process on the emulator (STYLEBOT_* from `env`
    only, data under tmp_path, its output in tmp_path/bot.log), once it polls for updates;
    stopped with SIGTERM afterwards (its exit code is then the Popen's returncode)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    clean.update(
        STYLEBOT_DATA_DIR=str(tmp_path / "data"),
        STYLEBOT_TELEGRAM_TOKEN=TOKEN,
        STYLEBOT_TELEGRAM_API_URL=emu.url,
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        **env,
    )
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bots.cli", "telegram", *args],
            cwd=tmp_path,  # no .env here
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            emu.wait_for(lambda: emu.calls_of("getUpdates") or bot.poll() is not None, 120)
            assert bot.poll() is None, log.read_text()
            yield bot
        finally:
            bot.send_signal(signal.SIGTERM)
            bot.wait(30)


def start_classic_worker(runtime: Runtime, log: Path) -> subprocess.Popen[bytes]:
    """A real `stylebot worker` (classic backend) on the stack's database, broker and store."""
    settings = runtime.settings
    env = {
        "STYLEBOT_DATABASE_URL": settings.database_url,
        "STYLEBOT_BROKER_URL": settings.broker_url,
        "STYLEBOT_DATA_DIR": str(settings.data_dir),
        "STYLEBOT_BACKEND": "classic",
    }
    worker = spawn_worker(log, env=env)
    assert wait_until_live(runtime, worker, 60), log.read_text()
    # The placeholder heartbeat already counts as live: wait for this worker's own beat.
    deadline = time.monotonic() + 60
    while not _real_beats(runtime):
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return worker


def _real_beats(runtime: Runtime) -> int:
    with transaction(runtime.engine) as s:
        beats = s.exec(select(WorkerBeat).where(WorkerBeat.id != PLACEHOLDER_BEAT)).all()
        return len(beats)


def jobs_of(runtime: Runtime, user_id: str) -> list[Job]:
    with transaction(runtime.engine) as s:
        return list(s.exec(select(Job).where(Job.user_id == user_id)).all())


def used_by(runtime: Runtime, user_id: str) -> int:
    with transaction(runtime.engine) as s:
        return sum(u.used for u in s.exec(select(Usage).where(Usage.user_id == user_id)))


@contextmanager
def running_stack(tmp: Path, worker: bool = False, **settings: Any) -> Iterator[Stack]:
    """A migrated PostgreSQL database, Redis, the bot on the emulator; a worker if asked."""
    broker = redis_url()
    with fresh_database("postgres", tmp) as db:
        upgrade(db)
        base = {"data_dir": tmp / "data", "database_url": db, "broker_url": broker}
        stack = Stack({**base, "admins": ("telegram:999",), **settings})
        stack.start()
        try:
            if worker:
                stack.start_worker(tmp / "worker.log")
            yield stack
        finally:
            stack.stop()


E = TypeVar("E", bound=Emulator)


@contextmanager
def running_emulator(make: Callable[[], E] = Emulator) -> Iterator[E]:  # type: ignore[assignment]
    """The emulator (or a subclass) alone, on its own loop thread: for a bot elsewhere."""
    emulator, loop = make(), asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="emulator-loop", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(10)
    try:
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def photo_bytes(seed: int = 0, size: tuple[int, int] = (320, 240), fmt: str = "JPEG") -> bytes:
    """A small photo-like image; a different `seed` gives different bytes (and digest)."""
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    for i in range(3):
        colour = ((70 * i + 37 * seed) % 256, (150 + 53 * seed) % 256, (90 * i) % 256)
        img.paste(colour, (10 + 90 * i, 40, 80 + 90 * i, 160))
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A few hundred bytes of valid PNG header claiming a huge RGB image (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def settle(seconds: float = 0.5) -> None:
    """Give the bot a moment to (not) react, for tests that check nothing happened."""
    time.sleep(seconds)
