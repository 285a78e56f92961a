"""One command grammar for every platform: parse '/name args' once, answer the plain ones here."""

from __future__ import annotations

from dataclasses import dataclass

from bots.core.appeals import appeal
from bots.core.history import results_reply
from bots.core.messages import t
from bots.core.progress import forget
from bots.core.requests import Reply, Sender
from bots.core.service import Core

PLAIN_COMMANDS = (
    "start",
    "help",
    "styles",
    "quota",
    "cancel",
    "results",
    "forget",
    "buy",
    "paysupport",
    "terms",
    "appeal",
)


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...] = ()


def parse_command(text: str) -> Command | None:
    """'/Ghibli@MyBot a b' -> Command('ghibli', ('a', 'b')); None when `text` is no command."""
    parts = text.strip().split()
    if not parts or not parts[0].startswith("/") or len(parts[0]) < 2:
        return None
    name = parts[0][1:].split("@", 1)[0].lower()
    return Command(name, tuple(parts[1:]))


def answer_plain(core: Core, sender: Sender, command: Command) -> Reply | None:
    """The reply to a command that needs no photo, or None if `command` is not one of them."""
    match command.name:
        case "start" | "help":
            return core.help_reply(sender.locale, sender.platform)
        case "styles":
            return core.styles_reply(sender.locale)
        case "quota":
            return core.quota_status(sender)
        case "cancel":
            return core.cancel_latest(sender)
        case "results":
            return results_reply(core, sender)
        case "forget":
            return forget(core, sender)
        case "buy":
            return core.shop.buy_reply(sender)
        case "paysupport":
            return core.shop.paysupport_reply(sender)
        case "terms":
            return core.shop.terms_reply(sender)
        case "appeal":
            return appeal(core, sender)
    return None


def unknown_command(sender: Sender) -> Reply:
    return Reply(t("unknown_command", sender.locale))
