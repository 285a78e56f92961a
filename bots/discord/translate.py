"""Pure translation rules between Discord's values and the core's: no I/O, no HTTP calls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import discord

from bots.core import APPEAL_PREFIX, LATER_PREFIX, ReplyTarget, Sender

PLATFORM = "discord"
# What the core's decoder accepts; anything else is refused before a download.
IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/heic", "image/heif", "image/avif"}
)
IMAGE_SUFFIXES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".avif": "image/avif",
}
TOKEN_LIFETIME_S = 15 * 60.0  # an interaction token answers for 15 minutes
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # bytes per file, unless the interaction says more
NONCE_LENGTH = 25  # Discord's longest message nonce

# Component custom ids (at most 100 characters): the state a press needs lives in the id itself,
# so buttons under old results keep working after a restart.
AGAIN = re.compile(r"sb:again:(?P<job>[0-9a-f]{32}):(?P<style>[a-z0-9_]{1,32})")
MORE = re.compile(r"sb:more:(?P<job>[0-9a-f]{32})")
AGAIN_PICK = re.compile(r"sb:againpick:(?P<job>[0-9a-f]{32})")
PICK = re.compile(r"sb:pick:(?P<size>\d{1,12})")
LATER = re.compile(LATER_PREFIX + r"(?P<offer>[0-9a-f]{32})")  # under a busy/paused refusal
APPEAL = re.compile(APPEAL_PREFIX + r"(?P<job>[0-9a-f]{32})")  # under a held-back explanation


@dataclass(frozen=True)
class ImageRef:
    """An attachment by URL, with what Discord declares about it before any download."""

    url: str
    size: int | None
    content_type: str | None


def user_id(user: discord.abc.User | discord.Object) -> str:
    return f"{PLATFORM}:{user.id}"


def sender_of(interaction: discord.Interaction) -> Sender:
    user = interaction.user
    return Sender(user_id=user_id(user), username=user.name, locale=str(interaction.locale))


def idempotency_key(interaction: discord.Interaction) -> str:
    """The interaction id: the same interaction delivered twice maps to one job."""
    return f"{PLATFORM}:{interaction.id}"


def target_of(interaction: discord.Interaction, now: float) -> ReplyTarget:
    """Answer through the interaction while its token lives, then in its channel (where the bot
    may post there) mentioning the person, else by direct message."""
    context = interaction.context
    private = bool(context.dm_channel)
    # In a server the bot may post only where the app is installed to the server itself; a
    # user-installed app elsewhere (or in a group DM) can answer through the interaction alone.
    reachable = private or interaction.is_guild_integration()
    return ReplyTarget(
        PLATFORM,
        chat_id=str(interaction.channel_id),
        person=str(interaction.user.id),
        handle=interaction.token,
        handle_expires=now + TOKEN_LIFETIME_S - 5.0,  # received up to a few seconds late
        private=private,
        reachable=reachable,
        max_upload=interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT,
    )


def content_type_of(content_type: str | None, filename: str) -> str | None:
    """The declared type, or the one its file name implies when Discord declares none."""
    if content_type:
        return content_type.split(";", 1)[0].strip().lower()
    return IMAGE_SUFFIXES.get(PurePosixPath(filename).suffix.lower())


def image_ref(attachment: discord.Attachment) -> ImageRef:
    kind = content_type_of(attachment.content_type, attachment.filename)
    return ImageRef(attachment.url, attachment.size, kind)


def refusal(image: ImageRef, limit_bytes: int) -> str | None:
    """The catalog key of why an attachment is refused unseen, or None when it may be fetched."""
    if image.content_type not in IMAGE_TYPES:
        return "image_unsupported_format"
    if image.size is not None and image.size > limit_bytes:
        return "image_too_big_file"
    return None


def first_image(attachments: list[discord.Attachment]) -> discord.Attachment | None:
    """The first attachment that looks like an image (by type or name), else the first one."""
    for attachment in attachments:
        kind = content_type_of(attachment.content_type, attachment.filename)
        if kind and kind.startswith("image/"):
            return attachment
    return attachments[0] if attachments else None


def nonce_for(job_id: str) -> str:
    """A retried channel post carries the same nonce, and Discord keeps just one of them."""
    return job_id[:NONCE_LENGTH]


def is_discord_url(url: str, api_url: str) -> bool:
    """Only Discord's CDN (or the configured API host, for a self-hosted or emulated Discord)
    is ever fetched: a URL from a button or an embed must not point the bot anywhere else."""
    parts = urlsplit(url)
    host, own = (parts.hostname or "").lower(), (urlsplit(api_url).hostname or "").lower()
    cdn = host in ("cdn.discordapp.com", "media.discordapp.net") and parts.scheme == "https"
    return cdn or (parts.scheme in ("https", "http") and host == own)
