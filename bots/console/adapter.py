"""The console adapter: try the bot in a terminal; tests drive the core through it."""

from __future__ import annotations

import uuid
from pathlib import Path

from bots.core import (
    Core,
    ImageRequest,
    Reply,
    ReplyTarget,
    Sender,
    answer_plain,
    parse_command,
    unknown_command,
)
from bots.core.admin import ADMIN_COMMANDS, Admin, AdminRequest
from bots.core.messages import t


class ConsoleChat:
    """One person chatting in a terminal. Lines in, replies out; photos are file paths."""

    def __init__(self, core: Core, user_id: str = "console:you", locale: str = "en") -> None:
        self.core = core
        self.admin = Admin(core)
        self.sender = Sender(user_id=user_id, username=user_id.partition(":")[2], locale=locale)
        self.session = uuid.uuid4().hex[:8]
        self.count = 0
        self.offer: str | None = None  # the last "do it when there's room" offer, for /later

    def handle_line(self, line: str) -> Reply | None:
        command = parse_command(line)
        if command is None:
            return Reply(t("help", self.sender.locale)) if line.strip() else None
        plain = answer_plain(self.core, self.sender, command)
        if plain is not None:
            return plain
        if command.name == "later":
            return self._later()
        if command.name in ADMIN_COMMANDS:
            return self.admin.handle(AdminRequest(self.sender.user_id, self.sender.locale, command))
        if command.name not in self.core.rt.styles:
            return unknown_command(self.sender)
        if not command.args:
            return Reply(t("need_photo", self.sender.locale))
        reply = self.core.submit(self._request(command.name, Path(" ".join(command.args))))
        self.offer = reply.offer_id or self.offer
        return reply

    def _later(self) -> Reply:
        """Take the last relax-lane offer; the photo is read again from its path."""
        if self.offer is None:
            return Reply(t("later_gone", self.sender.locale))
        return self.core.accept_later(self.sender, self.offer, lambda path: Path(path).read_bytes())

    def _request(self, style: str, photo: Path) -> ImageRequest:
        self.count += 1
        photo = photo.expanduser()
        message_id = str(self.count)
        return ImageRequest(
            sender=self.sender,
            target=ReplyTarget("console", chat_id=self.sender.user_id, message_id=message_id),
            style=style,
            idempotency_key=f"console:{self.session}:{message_id}",
            fetch=photo.read_bytes,
            declared_size=photo.stat().st_size if photo.is_file() else None,
            source=str(photo),  # the console's "platform copy": the file, read again by /later
        )


class ConsoleSender:
    """Prints replies; a result is shown as the path of its image file."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.sent: list[tuple[ReplyTarget, Reply]] = []

    async def send(self, target: ReplyTarget, reply: Reply) -> None:
        self.sent.append((target, reply))
        if self.echo:
            print(format_reply(reply), flush=True)


def format_reply(reply: Reply) -> str:
    images = [reply.image] if reply.image else list(reply.images)
    suffix = "".join(f"\n      [image] {image}" for image in images)
    return f"bot › {reply.text}{suffix}"
