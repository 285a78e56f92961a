"""`stylebot chat`: type commands as a person would; replies arrive through the delivery loop."""

from __future__ import annotations

import asyncio
import contextlib

from bots.console.adapter import ConsoleChat, ConsoleSender, format_reply
from bots.core import Core, Delivery, build_runtime
from bots.core.maintenance import Maintenance
from bots.core.workers import wait_until_live
from storage.db import transaction
from storage.jobs import undelivered_count
from storage.migrate import upgrade
from storage.settings import Settings
from tasks.worker import spawn_worker, stop_worker

PROMPT = "you › "


def run_chat(settings: Settings, user_id: str, locale: str, with_worker: bool) -> int:
    upgrade(settings.sqlalchemy_url)
    runtime = build_runtime(settings)
    worker = spawn_worker(settings.data_dir / "logs" / "worker.log") if with_worker else None
    try:
        if worker is not None and not wait_until_live(runtime, worker):
            print("The worker did not start; see data/logs/worker.log")
            return 1
        chat = ConsoleChat(Core(runtime), user_id=user_id, locale=locale)
        delivery = Delivery(runtime, "console", ConsoleSender())
        print(
            "stylebot chat — try /help, /styles, /quota, /ghibli path/to/photo.jpg; /quit to leave"
        )
        asyncio.run(_loop(chat, delivery))
    finally:
        if worker is not None:
            stop_worker(worker)
    return 0


async def _loop(chat: ConsoleChat, delivery: Delivery) -> None:
    stop = asyncio.Event()
    deliveries = asyncio.create_task(delivery.run(stop, interval=0.3))
    housekeeping = asyncio.create_task(Maintenance(delivery.rt).run(stop))
    try:
        while True:
            try:
                line = await asyncio.to_thread(input, PROMPT)
            except EOFError:
                break
            if line.strip() in ("/quit", "/exit"):
                break
            reply = await asyncio.to_thread(chat.handle_line, line)
            if reply is not None:
                print(format_reply(reply), flush=True)
        await _drain(chat, delivery)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(deliveries, housekeeping)


async def _drain(chat: ConsoleChat, delivery: Delivery, limit_s: float = 60.0) -> None:
    """On end of input, wait (bounded) for this session's outstanding results."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline and await asyncio.to_thread(_pending, chat):
        await asyncio.sleep(0.3)


def _pending(chat: ConsoleChat) -> bool:
    with transaction(chat.core.rt.engine) as s:
        return undelivered_count(s, chat.sender.user_id) > 0
