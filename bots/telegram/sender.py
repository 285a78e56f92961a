"""Replies out to Telegram: text, or an image as a photo (a document when too big for one)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError

from bots.core import APPEAL_PREFIX, Reply, ReplyTarget, Undeliverable
from bots.core.messages import t
from bots.telegram.status import StatusBoard

log = logging.getLogger("stylebot.telegram.sender")

# sendPhoto: at most 10 MB, width + height at most 10000, sides at most 20:1.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES = 10_000
PHOTO_MAX_RATIO = 20


def fits_as_photo(size_bytes: int, width: int, height: int) -> bool:
    if size_bytes > PHOTO_MAX_BYTES or width <= 0 or height <= 0:
        return False
    return width + height <= PHOTO_MAX_SIDES and max(width, height) <= PHOTO_MAX_RATIO * min(
        width, height
    )


def _read_image(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, and whether Telegram would take it as a photo (header read only)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:  # purged before it could be sent: no retry will find it
        raise Undeliverable("result file missing") from exc
    try:
        with Image.open(path) as im:
            return data, fits_as_photo(len(data), *im.size)
    except (OSError, ValueError):
        return data, False


def placement(target: ReplyTarget) -> dict[str, Any]:
    """Where in the chat: as a reply to the asking message (sent anyway if it was deleted)."""
    where: dict[str, Any] = {}
    if target.message_id:
        where["reply_parameters"] = ReplyParameters(
            int(target.message_id), allow_sending_without_reply=True
        )
    if target.thread_id:
        where["message_thread_id"] = int(target.thread_id)
    return where


async def send_text(
    bot: Bot, target: ReplyTarget, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message:
    return await bot.send_message(
        int(target.chat_id), text, reply_markup=markup, **placement(target)
    )


def appeal_markup(job_id: str, locale: str) -> InlineKeyboardMarkup:
    """The review button under a held-back explanation (bots/telegram/appeal.py answers it)."""
    button = InlineKeyboardButton(t("appeal_button", locale), callback_data=APPEAL_PREFIX + job_id)
    return InlineKeyboardMarkup([[button]])


def pressed_by_asker(shown: Message, user_id: int) -> bool:
    """Whether a button under the bot's answer to a photo was pressed by the person who sent the
    photo (in a group, only they may take its offer or ask for its review)."""
    photo = shown.reply_to_message
    return photo is None or photo.from_user is None or photo.from_user.id == user_id


async def replace_text(bot: Bot, shown: Message | None, target: ReplyTarget, text: str) -> None:
    """The message with the button becomes `text`, its button gone (an edit without a markup
    drops it); deleted meanwhile, or too old to show, `text` is said anew to `target`."""
    try:
        if shown is not None:
            await shown.edit_text(text)
            return
    except BadRequest:
        pass
    await send_text(bot, target, text)


async def answer_query(query: CallbackQuery, alert: str | None = None) -> None:
    """Acknowledge a tap (the client shows a spinner until then); a stale query is no failure."""
    try:
        await query.answer(alert, show_alert=alert is not None)
    except TelegramError as exc:
        log.info("callback_answer_failed error=%s", type(exc).__name__)


class TelegramSender:
    """The delivery loop's way out (core ReplySender); handlers use it for immediate images."""

    def __init__(self, bot: Bot, board: StatusBoard) -> None:
        self.bot, self.board = bot, board

    async def send(self, target: ReplyTarget, reply: Reply) -> None:
        try:
            try:
                await self._send(target, reply)
            except ChatMigrated as moved:  # a group became a supergroup: same chat, new id
                await self._send(replace(target, chat_id=str(moved.new_chat_id)), reply)
        except (Forbidden, BadRequest) as exc:  # blocked, kicked, chat gone: never deliverable
            log.info("reply_undeliverable chat=%s error=%s", target.chat_id, exc.message)
            await self.board.finish(reply.job_id)
            raise Undeliverable(exc.message) from exc
        await self.board.finish(reply.job_id)

    async def send_album(self, target: ReplyTarget, caption: str, images: tuple[Path, ...]) -> None:
        """Stored results as one album (2-10 photos; one photo goes alone)."""
        datas = [(await asyncio.to_thread(_read_image, path))[0] for path in images[:10]]
        media = [
            InputMediaPhoto(data, caption=caption if i == 0 else None, filename=path.name)
            for i, (data, path) in enumerate(zip(datas, images, strict=False))
        ]
        where = placement(target)
        if len(media) == 1:
            await self.bot.send_photo(int(target.chat_id), datas[0], caption=caption, **where)
            return
        await self.bot.send_media_group(int(target.chat_id), media, **where)

    async def _send(self, target: ReplyTarget, reply: Reply) -> Message:
        if reply.image is None:
            markup = appeal_markup(reply.appeal_job, reply.locale) if reply.appeal_job else None
            return await send_text(self.bot, target, reply.text, markup)
        data, as_photo = await asyncio.to_thread(_read_image, reply.image)
        chat, where = int(target.chat_id), placement(target)
        if as_photo:
            try:
                return await self.bot.send_photo(
                    chat, data, caption=reply.text, filename=reply.image.name, **where
                )
            except BadRequest as exc:  # e.g. PHOTO_INVALID_DIMENSIONS: a document still works
                log.info("photo_refused job=%s error=%s", reply.job_id, exc.message)
        return await self.bot.send_document(
            chat, data, caption=reply.text, filename=reply.image.name, **where
        )
