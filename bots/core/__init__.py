"""The platform-neutral core every adapter calls."""

from bots.core.commands import Command, answer_plain, parse_command, unknown_command
from bots.core.delivery import Delivery, ReplySender, Undeliverable
from bots.core.requests import ImageRequest, Reply, ReplyTarget, Sender
from bots.core.runtime import Runtime, build_runtime
from bots.core.service import Core

__all__ = [
    "Command",
    "Core",
    "Delivery",
    "ImageRequest",
    "Reply",
    "ReplySender",
    "ReplyTarget",
    "Runtime",
    "Sender",
    "Undeliverable",
    "answer_plain",
    "build_runtime",
    "parse_command",
    "unknown_command",
]
