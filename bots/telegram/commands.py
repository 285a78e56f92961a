"""Commands without a photo: /start, /help, /styles, /quota, /cancel, /forget, /buy and admin
ones."""

from __future__ import annotations

import asyncio

from telegram import Bot, Message
from telegram.constants import ChatType

from bots.core import (
    ADMIN_COMMANDS,
    Admin,
    AdminRequest,
    Command,
    Core,
    Reply,
    ReplyTarget,
    Sender,
    answer_plain,
    unknown_command,
)
from bots.core.commands import PLAIN_COMMANDS
from bots.core.messages import t
from bots.telegram.payments import Payments
from bots.telegram.sender import TelegramSender, send_text
from bots.telegram.status import StatusBoard
from bots.telegram.translate import user_id


class CommandRunner:
    def __init__(
        self,
        core: Core,
        bot: Bot,
        board: StatusBoard,
        sender: TelegramSender,
        payments: Payments,
    ) -> None:
        self.core, self.admin, self.bot, self.board = core, Admin(core), bot, board
        self.sender, self.payments = sender, payments

    @staticmethod
    def knows(command: Command) -> bool:
        return command.name in PLAIN_COMMANDS or command.name in ADMIN_COMMANDS

    async def run(
        self, message: Message, sender: Sender, target: ReplyTarget, command: Command
    ) -> None:
        if not self.knows(command) and not _explicit(message):
            return  # "/foo" in a group may be another bot's command: stay quiet
        if command.name == "start":
            await self.say(target, await asyncio.to_thread(self._welcome, sender))
            return
        reply = await asyncio.to_thread(self._answer, message, sender, command)
        if command.name == "cancel":
            await self.board.finish(reply.job_id)  # its status message goes with it
        if reply.images:  # /results: the kept results as one album, the text as its caption
            await self.sender.send_album(target, reply.text, reply.images)
            return
        await self.say(target, reply.text)
        if command.name == "buy":  # the shop's words, then what Telegram needs to take Stars
            await self.payments.send_invoices(target, sender.locale)

    async def help(self, sender: Sender, target: ReplyTarget) -> None:
        await self.say(target, self.core.help_reply(sender.locale, sender.platform).text)

    async def say(self, target: ReplyTarget, text: str) -> None:
        await send_text(self.bot, target, text)

    def _answer(self, message: Message, sender: Sender, command: Command) -> Reply:
        if command.name in ADMIN_COMMANDS:
            request = AdminRequest(sender.user_id, sender.locale, command, _replied_user(message))
            return self.admin.handle(request)
        return answer_plain(self.core, sender, command) or unknown_command(sender)

    def _welcome(self, sender: Sender) -> str:
        """/start: a welcome, how to use the bot, and what is left today."""
        parts = [
            t("welcome", sender.locale),
            self.core.help_reply(sender.locale, sender.platform).text,
            self.core.quota_status(sender).text,
        ]
        return "\n\n".join(parts)


def _replied_user(message: Message) -> str | None:
    """An admin's reply to someone's message names that person: /grant 5 as a reply."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or replied.from_user.is_bot:
        return None
    return user_id(replied.from_user)


def _explicit(message: Message) -> bool:
    """A private chat, or a command addressed by name (/foo@ThisBot)."""
    first = (message.text or message.caption or "").split(maxsplit=1)
    return message.chat.type == ChatType.PRIVATE or bool(first and "@" in first[0])
