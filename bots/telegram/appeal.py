"""The review button under a held-back explanation ("Ask for a review", bots/core/appeals.py).

The delivery loop sends the explanation with the button (sender.appeal_markup); pressing it asks
for a review of that job, as /appeal does, and the explanation becomes the answer, its button
gone. The job id travels in the callback data, so the button works after a restart too.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bots.core import APPEAL_PREFIX, Core, ReplyTarget
from bots.core.appeals import appeal
from bots.core.messages import t
from bots.telegram.sender import answer_query, pressed_by_asker, replace_text
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
        if shown is not None and not pressed_by_asker(shown, query.from_user.id):
            await answer_query(query, t("appeal_not_yours", sender.locale))
            return
        job_id = query.data.removeprefix(APPEAL_PREFIX)
        await answer_query(query)
        reply = await asyncio.to_thread(appeal, self.core, sender, job_id)
        log.info("appeal_pressed user=%s job=%s", sender.user_id, reply.job_id)
        target = ReplyTarget(PLATFORM, str(query.from_user.id))
        await replace_text(context.bot, shown, target, reply.text)
