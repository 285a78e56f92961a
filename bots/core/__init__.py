"""The platform-neutral core every adapter calls."""

from bots.core.admin import ADMIN_COMMANDS, Admin, AdminRequest
from bots.core.appeals import APPEAL_PREFIX
from bots.core.commands import Command, answer_plain, parse_command, unknown_command
from bots.core.delivery import Delivery, ReplySender, Undeliverable
from bots.core.later import LATER_PREFIX
from bots.core.maintenance import Maintenance
from bots.core.progress import Progress, forget, progress, progress_text, progress_texts
from bots.core.requests import ImageRequest, Reply, ReplyTarget, Sender
from bots.core.runtime import Runtime, build_runtime
from bots.core.service import Core

__all__ = [
    "ADMIN_COMMANDS",
    "APPEAL_PREFIX",
    "LATER_PREFIX",
    "Admin",
    "AdminRequest",
    "Command",
    "Core",
    "Delivery",
    "ImageRequest",
    "Maintenance",
    "Progress",
    "Reply",
    "ReplySender",
    "ReplyTarget",
    "Runtime",
    "Sender",
    "Undeliverable",
    "answer_plain",
    "build_runtime",
    "forget",
    "parse_command",
    "progress",
    "progress_text",
    "progress_texts",
    "unknown_command",
]
