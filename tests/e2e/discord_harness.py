"""The Discord stack under test: the emulator and a real DiscordBot on one event loop in a
thread, PostgreSQL, Redis, and (when asked) a real `stylebot worker` process. The bot reaches the
emulator only through settings (STYLEBOT_DISCORD_API_URL), as it would reach Discord."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlmodel import select

from bots.core import Runtime, build_runtime
from bots.discord import DiscordBot, DiscordOptions
from storage.db import transaction
from storage.migrate import upgrade
from storage.models import AuditEntry, Job
from storage.settings import Settings
from tasks.worker import stop_worker
from tests.conftest import pretend_a_worker_is_live
from tests.dbutil import fresh_database
from tests.e2e.discord_emulator import TOKEN, DiscordEmulator
from tests.e2e.harness import jobs_of, start_classic_worker, used_by
from tests.services import redis_url

T = TypeVar("T")
ADMIN_ID = 999


def fast_options(emulator: DiscordEmulator) -> DiscordOptions:
    return DiscordOptions(
        delivery_interval_s=0.1,
        maintenance_interval_s=1.0,
        status_interval_s=0.2,
        status_min_edit_s=0.3,
        fetch_timeout_s=20.0,
        ready_timeout_s=20.0,
        clock=emulator.now,  # token lifetimes follow the emulator's simulated clock
    )


class DiscordStack:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides
        self.emulator = DiscordEmulator()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="discord-loop", daemon=True
        )
        self.worker: subprocess.Popen[bytes] | None = None
        self.bot: DiscordBot | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.run(self.emulator.start())
        self.settings = Settings(
            discord_token=TOKEN,
            discord_api_url=f"{self.emulator.url}/api/v10",
            **self.overrides,
            _env_file=None,  # type: ignore[call-arg]
        )
        self.runtime: Runtime = build_runtime(self.settings)
        pretend_a_worker_is_live(self.runtime)  # admit requests before a real worker is up
        self.start_bot()

    def start_bot(self) -> None:
        """A bot process's life: log in, sync, connect; ready when the gateway says READY."""
        self.run(self._start_bot())

    async def _start_bot(self) -> None:
        self.bot = DiscordBot(self.settings, self.runtime, fast_options(self.emulator))
        self.stop_event = asyncio.Event()
        self.task = asyncio.create_task(self.bot.serve(self.stop_event))
        while not self.bot.is_ready() or not self.emulator.identifies():
            if self.task.done():
                self.task.result()  # raises what stopped it
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # the loops start right after READY

    def stop_bot(self) -> None:
        """Stop the bot (as SIGTERM does); its state in memory is gone, SQL keeps the rest."""
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.run(self._finished())
        self.bot = None

    async def _finished(self) -> None:
        await self.task

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)
        if self.bot is not None:
            self.stop_bot()
        self.run(self.emulator.stop())
        self.run(_cancel_the_rest())  # e.g. discord.py's view timeouts: nothing left pending
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.runtime.engine.dispose()

    def start_worker(self, log: Path) -> None:
        self.worker = start_classic_worker(self.runtime, log)

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)
            self.worker = None

    # --- what the database says ------------------------------------------------------------

    def jobs(self, user_id: int) -> list[Job]:
        return jobs_of(self.runtime, f"discord:{user_id}")

    def used(self, user_id: int) -> int:
        return used_by(self.runtime, f"discord:{user_id}")

    def audit(self, actor: int) -> list[AuditEntry]:
        with transaction(self.runtime.engine) as s:
            return list(s.exec(select(AuditEntry).where(AuditEntry.actor == f"discord:{actor}")))


async def _cancel_the_rest() -> None:
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


@contextmanager
def discord_stack(tmp: Path, worker: bool = False, **settings: Any) -> Iterator[DiscordStack]:
    """A migrated PostgreSQL database, Redis, the bot on the emulator; a worker if asked."""
    broker = redis_url()
    with fresh_database("postgres", tmp) as db:
        upgrade(db)
        base = {"data_dir": tmp / "data", "database_url": db, "broker_url": broker}
        stack = DiscordStack({**base, "admins": (f"discord:{ADMIN_ID}",), **settings})
        stack.start()
        try:
            if worker:
                stack.start_worker(tmp / "worker.log")
            yield stack
        finally:
            stack.stop()
