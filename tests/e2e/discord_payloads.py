"""Discord API constants and the JSON shapes the Discord emulator hands out.

The shapes follow discord.py's `discord/types/*.py` (the fields it reads with `data[...]` must be
there) and Discord's documented objects, so the real client parses them like the real thing.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from datetime import UTC, datetime
from typing import Any

TOKEN = "emulated.discord-bot-token.for-tests"  # fake; deliberately not shaped like a real token
APP_ID = 424242424242424242  # application id == bot user id
API = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000

UPLOAD_LIMIT = 10 * 1024 * 1024  # attachment_size_limit of an unboosted guild
CALLBACK_WINDOW_S = 3.0  # an interaction must be acknowledged this soon
TOKEN_LIFETIME_S = 15 * 60.0  # interaction tokens (callback, @original, follow-ups)
NONCE_WINDOW_S = 5 * 60.0  # enforce_nonce: the same nonce within this returns the first message
USER_INSTALL_FOLLOWUPS = 5  # follow-ups per interaction of an app not in the guild
CONTENT_LIMIT = 2000

# Intents (IDENTIFY) and message flags.
GUILDS, GUILD_MEMBERS, GUILD_PRESENCES = 1 << 0, 1 << 1, 1 << 8
GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 9, 1 << 12, 1 << 15
PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
EPHEMERAL, LOADING, SUPPRESS_EMBEDS, COMPONENTS_V2 = 1 << 6, 1 << 7, 1 << 2, 1 << 15
PREMIUM_BUTTON = 6  # button style: buy a SKU in Discord's own checkout

# Permission bit sets, as decimal strings like Discord sends them.
ALL_PERMISSIONS = str((1 << 51) - 1)  # what an ADMINISTRATOR member resolves to (bit 3 set)
MEMBER_PERMISSIONS = str(
    (1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 31) | (1 << 38)
)  # add reactions, view, send, embed, attach, history, use app commands, send in threads
BOT_PERMISSIONS = str((1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 38))
# A user-installed app in a guild without its bot gets only these (Discord's documented set).
USER_INSTALL_PERMISSIONS = str((1 << 14) | (1 << 15) | (1 << 17) | (1 << 18))
APP_FLAGS = (1 << 19) | (1 << 23)  # GATEWAY_MESSAGE_CONTENT_LIMITED, APPLICATION_COMMAND_BADGE

BOT_USER: dict[str, Any] = {
    "id": str(APP_ID),
    "username": "stylebot",
    "discriminator": "0427",  # bot accounts kept their discriminators
    "global_name": None,
    "avatar": None,
    "bot": True,
    "public_flags": 0,
    "flags": 0,
}


class ApiError(Exception):
    """An error answer of the Discord API: {"message": ..., "code": ...} with an HTTP status."""

    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def form_error(field: str, message: str) -> ApiError:
    """Discord's 50035 Invalid Form Body, naming the offending field."""
    errors = {field: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}}
    return ApiError(400, 50035, "Invalid Form Body", errors)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def user_payload(user_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",  # migrated usernames have no discriminator
        "global_name": name.title(),
        "avatar": None,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "primary_guild": None,
    }


def member_payload(joined: float, permissions: str, user: dict[str, Any] | None) -> dict[str, Any]:
    """A guild member; resolved.members entries go without `user` (discord.py adds it)."""
    member: dict[str, Any] = {
        "roles": [],
        "joined_at": iso(joined),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
        "premium_since": None,
        "communication_disabled_until": None,
        "permissions": permissions,
    }
    if user is not None:
        member["user"] = user
    return member


def _dimensions(data: bytes) -> tuple[int, int] | None:
    """An image's declared size, as Discord reports it; None for anything else."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a project dependency
        return None
    with warnings.catch_warnings(), contextlib.suppress(Exception):
        warnings.simplefilter("ignore")  # a decompression bomb's header is still its size
        with Image.open(io.BytesIO(data)) as im:
            return int(im.width), int(im.height)
    return None


def attachment_payload(
    att_id: int, filename: str, data: bytes, url: str, content_type: str | None, size: int | None
) -> dict[str, Any]:
    att: dict[str, Any] = {
        "id": str(att_id),
        "filename": filename,
        "size": len(data) if size is None else size,
        "url": url,
        "proxy_url": url.replace("/attachments/", "/proxy/attachments/", 1),
        "flags": 0,
    }
    if content_type is not None:
        att["content_type"] = content_type
    if (dims := _dimensions(data)) is not None:
        att["width"], att["height"] = dims
    return att


_MENTION = re.compile(r"<@!?(\d+)>")


def mentioned_ids(content: str) -> list[int]:
    return [int(m) for m in _MENTION.findall(content or "")]


def message_payload(
    msg_id: int,
    channel: dict[str, Any],
    author: dict[str, Any],
    now: float,
    *,
    content: str = "",
    attachments: list[dict[str, Any]] | None = None,
    flags: int = 0,
    msg_type: int = 0,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": str(msg_id),
        "type": msg_type,
        "channel_id": channel["id"],
        "author": author,
        "content": content,
        "timestamp": iso(now),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "components": [],
        "pinned": False,
        "flags": flags,
    }
    if "guild_id" in channel:
        msg["guild_id"] = channel["guild_id"]
    return msg


def ready_payload(
    session_id: str, guild_ids: list[int], resume_url: str, identify: dict[str, Any]
) -> dict[str, Any]:
    """READY: the bot user, its guilds as unavailable stubs (GUILD_CREATEs follow), the
    session to resume and where; `shard` echoed when IDENTIFY had one."""
    ready: dict[str, Any] = {
        "v": 10,
        "user": {**BOT_USER, "verified": True, "mfa_enabled": False, "email": None},
        "guilds": [{"id": str(gid), "unavailable": True} for gid in guild_ids],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "application": {"id": str(APP_ID), "flags": APP_FLAGS},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": ["emulated"],
        "user_settings": {},
        "auth": {},
        "_trace": ["emulator"],
    }
    if "shard" in identify:
        ready["shard"] = identify["shard"]
    return ready


# Entitlement types (Discord's): a one-time purchase, and an app subscription's.
PURCHASE, APPLICATION_SUBSCRIPTION = 1, 8


def entitlement_payload(
    entitlement_id: int,
    sku_id: int,
    user_id: int,
    *,
    kind: int = PURCHASE,
    starts_at: float | None = None,
    ends_at: float | None = None,
    guild_id: int | None = None,
) -> dict[str, Any]:
    """An entitlement as Discord sends it (events, interactions, List Entitlements): a one-time
    purchase has no end; a subscription's runs from starts_at to ends_at."""
    ent: dict[str, Any] = {
        "id": str(entitlement_id),
        "sku_id": str(sku_id),
        "application_id": str(APP_ID),
        "user_id": str(user_id),
        "promotion_id": None,
        "type": kind,
        "deleted": False,
        "gift_code_flags": 0,
        "consumed": False,
        "starts_at": iso(starts_at) if starts_at is not None else None,
        "ends_at": iso(ends_at) if ends_at is not None else None,
    }
    if guild_id is not None:
        ent["guild_id"] = str(guild_id)
    if kind == APPLICATION_SUBSCRIPTION:
        ent["subscription_id"] = str(entitlement_id + 1)
    return ent
