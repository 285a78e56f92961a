"""The Telegram adapter (python-telegram-bot v22): translation between Telegram and the core."""

from bots.telegram.app import TelegramBot, TelegramOptions, build_application
from bots.telegram.run import run_telegram
from bots.telegram.sender import TelegramSender

__all__ = ["TelegramBot", "TelegramOptions", "TelegramSender", "build_application", "run_telegram"]
