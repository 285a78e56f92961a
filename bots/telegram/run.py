"""`stylebot telegram`: run the bot until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging

from telegram.error import InvalidToken

from bots.core import Runtime
from bots.core.process import run_bot_process
from bots.telegram.app import TelegramBot
from storage.settings import Settings, SettingsError


def run_telegram(settings: Settings, with_worker: bool = False) -> int:
    if not settings.telegram_token:
        raise SettingsError("STYLEBOT_TELEGRAM_TOKEN: required (ask @BotFather for one)")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # a line per status refresh

    async def serve(runtime: Runtime, stop: asyncio.Event) -> None:
        await TelegramBot(settings, runtime).serve(stop)

    try:
        run_bot_process(settings, serve, with_worker)
    except InvalidToken:  # its message quotes the token: never let it reach a log
        raise SettingsError("STYLEBOT_TELEGRAM_TOKEN: rejected by the Bot API server") from None
    return 0
