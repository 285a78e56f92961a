"""Steps the Discord e2e tests share: a person and a channel, asking for a style, waiting for
what the bot answered."""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from tests.e2e.discord_harness import DiscordStack
from tests.e2e.harness import photo_bytes

RESULT_WAIT_S = 60.0
EPHEMERAL = 64
_ids = itertools.count(7_000_001)


@dataclass
class Person:
    user: dict[str, Any]
    channel: int  # a guild text channel of a guild the bot is in
    guild: int

    @property
    def id(self) -> int:
        return int(self.user["id"])


def person(stack: DiscordStack, locale: str = "en-US", bot_member: bool = True) -> Person:
    """A fresh person with a fresh guild channel (guild and channel ids are fresh too)."""
    emu, uid, guild, channel = stack.emulator, next(_ids), next(_ids), next(_ids)
    user = emu.user(uid, locale=locale)
    emu.guild(guild, bot_member=bot_member)
    emu.channel(channel, guild)
    return Person(user, channel, guild)


def ask(
    stack: DiscordStack, who: Person, style: str = "ghibli", seed: int = 0, **where: Any
) -> dict[str, Any]:
    """/style image:<a photo>"""
    emu = stack.emulator
    photo = emu.attachment(photo_bytes(seed))
    option = {"name": "image", "type": 11, "value": photo["id"]}
    return emu.slash(style, who.user, who.channel, options=[option], attachments=[photo], **where)


def answered(stack: DiscordStack, interaction: dict[str, Any], what: str = "") -> str:
    """The text the deferred answer was edited to (status, refusal, or reply)."""
    emu = stack.emulator

    def edited() -> str | None:
        original = emu.original(interaction["id"])
        return (original or {}).get("content") or None

    return str(emu.wait_for(edited, 30.0, what or f"an answer to {interaction['data']}"))


def result_of(stack: DiscordStack, interaction: dict[str, Any]) -> dict[str, Any]:
    """The follow-up with a file that answers `interaction`."""
    emu = stack.emulator

    def found() -> dict[str, Any] | None:
        with_files = [m for m in emu.followups(interaction["id"]) if m.get("attachments")]
        return with_files[0] if with_files else None

    return dict(emu.wait_for(found, RESULT_WAIT_S, f"a result for {interaction['data']}"))


def looks_styled(stack: DiscordStack, message: dict[str, Any], seed: int) -> bool:
    styled = np.asarray(Image.open(io.BytesIO(stack.emulator.file_bytes(message))), np.int16)
    original = np.asarray(Image.open(io.BytesIO(photo_bytes(seed))).convert("RGB"), np.int16)
    return styled.shape == original.shape and float(np.abs(styled - original).mean()) > 5


def custom_ids(message: dict[str, Any]) -> list[str]:
    return [c["custom_id"] for row in message.get("components", []) for c in row["components"]]
