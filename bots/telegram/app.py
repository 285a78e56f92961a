"""The python-telegram-bot Application wired to the core, and its lifecycle.

One `serve()` runs it all until a stop event: updates (long polling, or a webhook server when
STYLEBOT_TELEGRAM_WEBHOOK_URL is set), the delivery loop and the maintenance loop (asyncio
tasks), and the status refresher (PTB's JobQueue). `stylebot telegram` and the e2e tests both
run exactly this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bots.core import Core, Delivery, Maintenance, Runtime
from bots.telegram.appeal import AppealButton
from bots.telegram.commands import CommandRunner
from bots.telegram.handlers import Handlers
from bots.telegram.later import LaterButton
from bots.telegram.limiter import ChatRateLimiter
from bots.telegram.menu import set_menu
from bots.telegram.payments import Payments
from bots.telegram.requests import Submitter
from bots.telegram.sender import TelegramSender
from bots.telegram.status import StatusBoard
from bots.telegram.translate import PLATFORM, download_limit
from storage.settings import Settings

log = logging.getLogger("stylebot.telegram")

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.PRE_CHECKOUT_QUERY]


@dataclass(frozen=True)
class TelegramOptions:
    """Pacing knobs; the defaults suit production, tests make them short."""

    poll_timeout_s: float = 10.0  # getUpdates long poll
    delivery_interval_s: float = 0.5
    maintenance_interval_s: float = 5.0
    status_interval_s: float = 3.0  # how often status messages are checked ...
    status_min_edit_s: float = 5.0  # ... and edited at most this often per chat
    pending_ttl_s: float = 300.0  # "/ghibli" waits this long for its photo
    per_chat_rate: float = 1.0  # messages per second into one private chat
    max_retries: int = 5  # on 429 Too Many Requests, after its retry_after
    fetch_timeout_s: float = 60.0


def build_application(settings: Settings, options: TelegramOptions) -> Application:
    # PTB 22 raises a PTBDeprecationWarning whenever it builds a RetryAfter (every 429) unless
    # the process opts in to v23's timedelta durations; nothing here reads them as numbers.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    api = settings.telegram_api_url.rstrip("/")
    return (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .local_mode(settings.telegram_local_mode)
        .rate_limiter(ChatRateLimiter(options.per_chat_rate, options.max_retries))
        .concurrent_updates(True)  # one slow download must not hold up everyone else
        .build()
    )


class TelegramBot:
    """The Application with its handlers, and the loops that share its process."""

    def __init__(
        self, settings: Settings, runtime: Runtime, options: TelegramOptions | None = None
    ) -> None:
        self.settings, self.rt = settings, runtime
        self.options = options or TelegramOptions()
        self.app = build_application(settings, self.options)
        core = Core(runtime)
        bot = self.app.bot
        self.board = StatusBoard(core, bot, min_edit_s=self.options.status_min_edit_s)
        self.sender = TelegramSender(bot, self.board)
        limit = download_limit(settings.max_upload_mb, settings.telegram_local_mode)
        submitter = Submitter(
            core, bot, self.board, self.sender, limit, self.options.fetch_timeout_s
        )
        self.payments = Payments(core, bot)
        self.handlers = Handlers(
            core,
            submitter,
            CommandRunner(core, bot, self.board, self.sender, self.payments),
            self.options.pending_ttl_s,
        )
        self.payments.register(self.app)  # first: a payment message is no request
        LaterButton(core, submitter.downloader, self.sender).register(self.app)
        AppealButton(core).register(self.app)
        self.handlers.register(self.app)

    async def serve(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then stop taking updates, finish the loops and shut down."""
        async with self.app:  # initialize (getMe) ... shutdown
            try:
                selling = bool(self.payments.shop.for_platform(PLATFORM))
                await set_menu(self.app.bot, self.rt.styles, selling)
            except TelegramError as exc:  # the menu is a convenience; the bot works without it
                log.warning("menu_not_set error=%s", type(exc).__name__)
            self.payments.start()
            await self._start_updates()
            await self.app.start()
            self._schedule_status()
            loops = self._start_loops(stop)
            log.info("telegram_started bot=%s", self.app.bot.username)
            try:
                await stop.wait()
            finally:
                stop.set()
                await self._stop(loops)

    def _schedule_status(self) -> None:
        assert self.app.job_queue is not None, "python-telegram-bot[job-queue] is required"
        interval = self.options.status_interval_s
        self.app.job_queue.run_repeating(self.board.refresh, interval=interval, first=interval)

    def _start_loops(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        delivery = Delivery(self.rt, PLATFORM, self.sender)
        maintenance = Maintenance(self.rt)
        return [
            asyncio.create_task(delivery.run(stop, self.options.delivery_interval_s)),
            asyncio.create_task(maintenance.run(stop, self.options.maintenance_interval_s)),
        ]

    async def _start_updates(self) -> None:
        updater, s = self.app.updater, self.settings
        assert updater is not None
        if not s.telegram_webhook_url:
            timeout = timedelta(seconds=self.options.poll_timeout_s)
            await updater.start_polling(timeout=timeout, allowed_updates=ALLOWED_UPDATES)
            return
        await updater.start_webhook(
            listen=s.telegram_webhook_listen,
            port=s.telegram_webhook_port,
            url_path=urlsplit(s.telegram_webhook_url).path.strip("/"),
            webhook_url=s.telegram_webhook_url,
            secret_token=s.telegram_webhook_secret or secrets.token_urlsafe(32),
            allowed_updates=ALLOWED_UPDATES,
        )

    async def _stop(self, loops: list[asyncio.Task[None]]) -> None:
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        await asyncio.gather(*loops, return_exceptions=True)
        if self.app.running:
            with contextlib.suppress(asyncio.CancelledError):
                await self.app.stop()
