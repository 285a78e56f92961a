"""A photo and a style in, the core's answer out: a status message, a refusal, or an image."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, TelegramError

from bots.core import Core, ImageRequest, Reply, ReplyTarget, Sender
from bots.core.messages import t
from bots.telegram.fetch import Downloader
from bots.telegram.later import later_markup
from bots.telegram.sender import TelegramSender, send_text
from bots.telegram.status import StatusBoard
from bots.telegram.translate import ImageRef, callback_data, target_of

log = logging.getLogger("stylebot.telegram")

MB = 1024 * 1024
KEYBOARD_COLUMNS = 2


@dataclass(frozen=True)
class Submission:
    sender: Sender
    target: ReplyTarget  # the asking message: the status and the result reply to it
    key: str  # idempotency key: chat id + message id of the photo's (or command's) message
    style: str
    image: ImageRef


class Submitter:
    def __init__(
        self,
        core: Core,
        bot: Bot,
        board: StatusBoard,
        sender: TelegramSender,
        limit_mb: float,
        fetch_timeout_s: float = 60.0,
    ) -> None:
        self.core, self.bot, self.board, self.sender = core, bot, board, sender
        self.limit_mb = limit_mb
        self.downloader = Downloader(bot, self.limit_bytes, fetch_timeout_s)

    @property
    def limit_bytes(self) -> int:
        return int(self.limit_mb * MB)

    async def submit(self, sub: Submission, keyboard: Message | None = None) -> None:
        """Ask the core (off the event loop); it downloads only a request worth admitting."""
        loc = sub.sender.locale
        if sub.image.size is not None and sub.image.size > self.limit_bytes:
            reply = Reply(t("image_too_big_file", loc, mb=self.limit_mb))
        else:
            request = ImageRequest(
                sender=sub.sender,
                target=sub.target,
                style=sub.style,
                idempotency_key=sub.key,
                fetch=self.downloader.fetcher(sub.image.file_id),
                declared_size=sub.image.size,
                source=sub.image.file_id,  # a relax offer fetches it again by this id
            )
            reply = await asyncio.to_thread(self.core.submit, request)
        log.info("request user=%s style=%s job=%s", sub.sender.user_id, sub.style, reply.job_id)
        await self._answer(sub, reply, keyboard)

    async def _answer(self, sub: Submission, reply: Reply, keyboard: Message | None) -> None:
        if reply.image is not None:  # the same photo and style earlier today: sent again
            await self.sender.send(sub.target, reply)
            if keyboard is not None:
                await self._delete(keyboard)
            return
        markup = later_markup(reply.offer_id, sub.sender.locale) if reply.offer_id else None
        try:
            status_id = await self._show(sub.target, reply.text, keyboard, markup)
        except TelegramError as exc:  # the job stands; its result will still be delivered
            log.warning("status_not_shown job=%s error=%s", reply.job_id, type(exc).__name__)
            return
        if reply.job_id is not None:
            chat = int(sub.target.chat_id)
            await self.board.track(reply.job_id, chat, status_id, sub.sender.locale, reply.text)

    async def _show(
        self,
        target: ReplyTarget,
        text: str,
        keyboard: Message | None,
        markup: InlineKeyboardMarkup | None = None,
    ) -> int:
        """The keyboard message becomes the status (its keyboard replaced by `markup`, if any),
        else a new message."""
        if keyboard is not None:
            try:
                chat, message_id = keyboard.chat.id, keyboard.message_id
                await self.bot.edit_message_text(
                    text, chat_id=chat, message_id=message_id, reply_markup=markup
                )
                return message_id
            except BadRequest:  # deleted meanwhile, or unchanged: say it anew
                pass
        return (await send_text(self.bot, target, text, markup)).message_id

    async def offer_styles(self, photo: Message, sender: Sender) -> None:
        """A photo without a style: a keyboard of styles, as a reply to the photo."""
        await send_text(
            self.bot,
            target_of(photo),
            t("pick_style", sender.locale),
            self._keyboard(sender.locale),
        )

    def _keyboard(self, locale: str) -> InlineKeyboardMarkup:
        buttons = [
            InlineKeyboardButton(preset.display_name(locale), callback_data=callback_data(name))
            for name, preset in self.core.rt.styles.items()
        ]
        rows = [buttons[i : i + KEYBOARD_COLUMNS] for i in range(0, len(buttons), KEYBOARD_COLUMNS)]
        return InlineKeyboardMarkup(rows)

    async def _delete(self, message: Message) -> None:
        try:
            await self.bot.delete_message(message.chat.id, message.message_id)
        except TelegramError as exc:
            log.info("delete_failed chat=%s error=%s", message.chat.id, type(exc).__name__)
