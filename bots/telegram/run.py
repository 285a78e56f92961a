"""`stylebot telegram`: build the runtime once, run the bot until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from telegram.error import InvalidToken

from bots.core import Runtime, build_runtime
from bots.core.workers import spawn_local_worker
from bots.telegram.app import TelegramBot
from storage.migrate import upgrade
from storage.settings import Settings, SettingsError


def run_telegram(settings: Settings, with_worker: bool = False) -> int:
    if not settings.telegram_token:
        raise SettingsError("STYLEBOT_TELEGRAM_TOKEN: required (ask @BotFather for one)")
    if settings.sqlalchemy_url.startswith("sqlite"):
        upgrade(settings.sqlalchemy_url)  # embedded default: a local try needs no migrate step
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per status refresh
    runtime = build_runtime(settings)
    worker = spawn_local_worker(runtime) if with_worker else None
    try:
        asyncio.run(_serve(settings, runtime))
    except InvalidToken:  # its message quotes the token: never let it reach a log
        raise SettingsError("STYLEBOT_TELEGRAM_TOKEN: rejected by the Bot API server") from None
    finally:
        if worker is not None:
            from tasks.worker import stop_worker

            stop_worker(worker)
        runtime.engine.dispose()
    return 0


async def _serve(settings: Settings, runtime: Runtime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # graceful: finish in-flight sends, then exit
    await TelegramBot(settings, runtime).serve(stop)
