"""The relax offer on Telegram: a "Do it when there's room" button under a busy or paused
refusal.

Pressing it hands the offer to the core, which admits the photo (fetched again by its file id)
into the relax lane or says politely why not; the offer message becomes that answer. The result
comes later through the delivery loop, like any other, so nothing here tracks the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bots.core import LATER_PREFIX, Core, Reply, ReplyTarget
from bots.core.messages import t
from bots.telegram.fetch import Downloader
from bots.telegram.sender import TelegramSender, answer_query, pressed_by_asker, replace_text
from bots.telegram.translate import PLATFORM, sender_of, target_of

log = logging.getLogger("stylebot.telegram")


def later_markup(offer_id: str, locale: str) -> InlineKeyboardMarkup:
    """The one button under the refusal; its data stays within Telegram's 64 bytes."""
    button = InlineKeyboardButton(t("later_button", locale), callback_data=LATER_PREFIX + offer_id)
    return InlineKeyboardMarkup([[button]])


class LaterButton:
    def __init__(self, core: Core, downloader: Downloader, sender: TelegramSender) -> None:
        self.core, self.downloader, self.sender = core, downloader, sender
        self.pressing: set[str] = set()  # a double tap is one acceptance, not "already taken"

    def register(self, app: Application) -> None:
        app.add_handler(CallbackQueryHandler(self.on_press, pattern=f"^{LATER_PREFIX}"))

    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not query.data:
            return
        sender = sender_of(query.from_user)
        offer = query.message if isinstance(query.message, Message) else None
        if offer is not None and not pressed_by_asker(offer, query.from_user.id):
            await answer_query(query, t("not_your_photo", sender.locale))
            return
        offer_id = query.data.removeprefix(LATER_PREFIX)
        await answer_query(query)
        if offer_id in self.pressing:
            return
        self.pressing.add(offer_id)
        try:
            fetch = self.downloader.by_file_id()
            reply = await asyncio.to_thread(self.core.accept_later, sender, offer_id, fetch)
        finally:
            self.pressing.discard(offer_id)
        log.info("later user=%s offer=%s job=%s", sender.user_id, offer_id, reply.job_id)
        await self._show(context.bot, query, offer, reply)

    async def _show(
        self, bot: Bot, query: CallbackQuery, offer: Message | None, reply: Reply
    ) -> None:
        """The offer message becomes the answer, its button gone; an image (the same photo made
        earlier today) comes as a reply to the photo instead."""
        if offer is None:  # too old for Telegram to show: answer in the person's own chat
            target = ReplyTarget(PLATFORM, str(query.from_user.id))
        else:
            target = target_of(offer.reply_to_message or offer)
        if reply.image is not None:
            await self.sender.send(target, reply)
            if offer is not None:
                with contextlib.suppress(TelegramError):  # already gone is as good
                    await offer.delete()
            return
        await replace_text(bot, offer, target, reply.text)
