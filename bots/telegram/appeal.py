"""The review button under a held-back explanation ("Ask for a review", bots/core/appeals.py).

The delivery loop sends the explanation with the button (sender.appeal_markup); pressing it asks
for a review of that job, as /appeal does, and the explanation becomes the answer, its button
gone. The job id travels in the callback data, so the button works after a restart too.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, Update
from telegram.error import BadRequest
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bots.core import APPEAL_PREFIX, Core, ReplyTarget
from bots.core.appeals import appeal
from bots.core.messages import t
from bots.telegram.sender import answer_query, send_text
from bots.telegram.translate import PLATFORM, sender_of

log = logging.getLogger("stylebot.telegram")


class AppealButton:
    def __init__(self, core: Core) -> None:
        self.core = core

    def register(self, app: Application) -> None:
        app.add_handler(CallbackQueryHandler(self.on_press, pattern=f"^{APPEAL_PREFIX}"))

    async def on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not query.data:
            return
        sender = sender_of(query.from_user)
        shown = query.message if isinstance(query.message, Message) else None
        if shown is not None and not _asked_by(shown, query.from_user.id):
            await answer_query(query, t("appeal_not_yours", sender.locale))
            return
        job_id = query.data.removeprefix(APPEAL_PREFIX)
        await answer_query(query)
        reply = await asyncio.to_thread(appeal, self.core, sender, job_id)
        log.info("appeal_pressed user=%s job=%s", sender.user_id, reply.job_id)
        try:
            if shown is not None:
                await shown.edit_text(reply.text)  # an edit without a markup drops the button
                return
        except BadRequest:  # deleted meanwhile: say it anew
            pass
        await send_text(context.bot, ReplyTarget(PLATFORM, str(query.from_user.id)), reply.text)


def _asked_by(shown: Message, user_id: int) -> bool:
    """In a group, only the person whose photo it was may ask (the core checks the job too)."""
    photo = shown.reply_to_message
    return photo is None or photo.from_user is None or photo.from_user.id == user_id
