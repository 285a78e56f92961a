"""The Discord emulator and discord.py clients on one event loop in a thread, driven from the
test's thread (like harness.Stack does for Telegram)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import discord

from tests.e2e.discord_emulator import TOKEN, DiscordEmulator, wire_discord

T = TypeVar("T")
C = TypeVar("C", bound=discord.Client)


class DiscordLoop:
    def __init__(self, emulator: DiscordEmulator | None = None) -> None:
        self.emulator = emulator or DiscordEmulator()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="discord-loop")
        self.thread.daemon = True
        self.clients: list[tuple[discord.Client, asyncio.Task[None]]] = []

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start_client(self, make: Callable[[], C], ready_within: float = 10.0) -> C:
        """Build a client on the loop, start it with the emulator's token, wait for on_ready
        (give it a small guild_ready_timeout: discord.py waits that long after GUILD_CREATEs)."""

        async def launch() -> tuple[C, asyncio.Task[None]]:
            client = make()
            return client, asyncio.create_task(client.start(TOKEN))

        client, task = self.run(launch())
        self.clients.append((client, task))
        try:
            self.run(asyncio.wait_for(client.wait_until_ready(), ready_within))
        except TimeoutError:
            if task.done() and not task.cancelled() and task.exception():
                raise AssertionError(f"the client stopped: {task.exception()!r}") from None
            raise
        return client

    async def _close_client(self, client: discord.Client, task: asyncio.Task[None]) -> None:
        await client.close()
        await asyncio.wait({task}, timeout=5)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so the loop doesn't log it as lost

    async def _drain(self) -> None:
        """Cancel what the clients leave behind (discord.py gives ephemeral views a 15-minute
        timeout task that client.close() doesn't stop)."""
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def close(self) -> None:
        for client, task in self.clients:
            self.run(self._close_client(client, task))
        self.run(self.emulator.stop())
        self.run(self._drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def running_discord(emulator: DiscordEmulator | None = None) -> Iterator[DiscordLoop]:
    """A started emulator on its loop thread, discord.py wired to it; clients closed after."""
    env = DiscordLoop(emulator)
    env.thread.start()
    env.run(env.emulator.start())
    try:
        with wire_discord(env.emulator):
            yield env
    finally:
        env.close()
