"""Telegram updates in: which messages are requests, and what each one asks the core."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from telegram import Message, Update, User
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bots.core import Core, ReplyTarget, Sender, parse_command
from bots.core.failures import report
from bots.core.messages import t
from bots.telegram.commands import CommandRunner
from bots.telegram.memory import Expiring, FirstSight
from bots.telegram.requests import Submission, Submitter
from bots.telegram.sender import answer_query, send_text
from bots.telegram.translate import (
    CALLBACK_PREFIX,
    ImageRef,
    addressed,
    command_for_other_bot,
    idempotency_key,
    image_of,
    sender_of,
    style_from_text,
    style_of_callback,
    target_of,
)

log = logging.getLogger("stylebot.telegram")


@dataclass(frozen=True)
class Incoming:
    """One message, with what routing needs to know about it."""

    message: Message
    user: User
    sender: Sender
    target: ReplyTarget
    text: str


class Handlers:
    def __init__(
        self, core: Core, submitter: Submitter, commands: CommandRunner, pending_ttl_s: float
    ) -> None:
        self.core, self.submitter, self.commands = core, submitter, commands
        self.pending: Expiring[tuple[int, int], str] = Expiring(pending_ttl_s)  # /ghibli, then
        self.albums: Expiring[str, str] = Expiring(120.0)  # media_group_id -> its caption's style
        self.seen = FirstSight()

    def register(self, app: Application) -> None:
        app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self.on_message))
        app.add_handler(CallbackQueryHandler(self.on_callback, pattern=f"^{CALLBACK_PREFIX}"))
        app.add_error_handler(self.on_error)

    # --- messages ------------------------------------------------------------------------

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, user = update.message, update.effective_user
        if msg is None or user is None or user.is_bot:
            return
        if not self.seen.first(idempotency_key(msg.chat.id, msg.message_id)):
            return  # the same update again (webhook retry, restart): it was handled
        text = msg.text or msg.caption or ""
        if not self._for_me(msg, user, text, context.bot.username, context.bot.id):
            return
        incoming = Incoming(msg, user, sender_of(user), target_of(msg), text)
        image = image_of(msg, self.submitter.limit_bytes)
        if image is None:
            await self._text(incoming, context.bot.username)
        elif isinstance(image, ImageRef):
            await self._image(incoming, image, context.bot.username)
        else:  # a document that is no JPEG/PNG/WebP: refused before any download
            loc = incoming.sender.locale
            await send_text(context.bot, incoming.target, t("image_unsupported_format", loc))

    def _for_me(self, msg: Message, user: User, text: str, me: str | None, my_id: int) -> bool:
        if command_for_other_bot(text, me):
            return False
        replied = msg.reply_to_message
        return (
            addressed(
                private=msg.chat.type == ChatType.PRIVATE,
                text=text,
                bot_username=me,
                replies_to_bot=bool(
                    replied and replied.from_user and replied.from_user.id == my_id
                ),
            )
            or (msg.chat.id, user.id) in self.pending
            or bool(msg.media_group_id and msg.media_group_id in self.albums)
        )

    async def _text(self, incoming: Incoming, me: str | None) -> None:
        command = parse_command(incoming.text)
        styles = self.core.rt.styles
        if command is not None and command.name not in styles:
            await self.commands.run(incoming.message, incoming.sender, incoming.target, command)
            return
        style = command.name if command else style_from_text(incoming.text, styles, me)
        if style is None:  # plain words: show how it works
            await self.commands.help(incoming.sender, incoming.target)
            return
        replied = incoming.message.reply_to_message
        image = image_of(replied, self.submitter.limit_bytes) if replied else None
        if isinstance(image, ImageRef):  # "/ghibli" in reply to a photo
            await self.submitter.submit(self._submission(incoming, style, image))
            return
        self.pending.put((incoming.message.chat.id, incoming.user.id), style)
        shown = styles[style].display_name(incoming.sender.locale)
        loc = incoming.sender.locale
        await self.commands.say(incoming.target, t("send_photo_for_style", loc, style=shown))

    async def _image(self, incoming: Incoming, image: ImageRef, me: str | None) -> None:
        msg, styles = incoming.message, self.core.rt.styles
        command = parse_command(incoming.text)
        if command is not None and command.name not in styles and self.commands.knows(command):
            await self.commands.run(msg, incoming.sender, incoming.target, command)
            return
        style = (
            (command.name if command else style_from_text(incoming.text, styles, me))
            or (self.albums.get(msg.media_group_id) if msg.media_group_id else None)
            or self.pending.pop((msg.chat.id, incoming.user.id))
        )
        if style is None:
            await self.submitter.offer_styles(msg, incoming.sender)
            return
        if msg.media_group_id:
            self.albums.put(msg.media_group_id, style)  # the album's other photos follow it
        await self.submitter.submit(self._submission(incoming, style, image))

    @staticmethod
    def _submission(incoming: Incoming, style: str, image: ImageRef) -> Submission:
        msg = incoming.message
        key = idempotency_key(msg.chat.id, msg.message_id)
        return Submission(incoming.sender, incoming.target, key, style, image)

    # --- the style keyboard ----------------------------------------------------------------

    async def on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None or not self.seen.first(f"callback:{query.id}"):
            return
        sender = sender_of(query.from_user)
        keyboard = query.message if isinstance(query.message, Message) else None
        photo = keyboard.reply_to_message if keyboard else None
        image = image_of(photo, self.submitter.limit_bytes) if photo else None
        style = style_of_callback(query.data, self.core.rt.styles)
        if keyboard is None or photo is None or style is None or not isinstance(image, ImageRef):
            await answer_query(query, t("photo_missing", sender.locale))
            return
        if photo.from_user is not None and photo.from_user.id != query.from_user.id:
            await answer_query(query, t("not_your_photo", sender.locale))
            return
        await answer_query(query)
        key = idempotency_key(photo.chat.id, photo.message_id)  # the photo's, not the press's
        request = Submission(sender, target_of(photo), key, style, image)
        await self.submitter.submit(request, keyboard=keyboard)

    # --- failures ----------------------------------------------------------------------------

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        report(log, "update_failed", context.error)
        if not isinstance(update, Update) or update.effective_message is None:
            return
        user = update.effective_user
        loc = sender_of(user).locale if user else "en"
        with contextlib.suppress(TelegramError):  # Telegram itself failing: the log has it
            await send_text(context.bot, target_of(update.effective_message), t("busy_error", loc))
