"""Where things happen on the emulated Discord: guild channels, threads, DMs, and the
GUILD_CREATE of a guild the bot is in."""

from __future__ import annotations

from typing import Any

from tests.e2e.discord_payloads import (
    APP_ID,
    BOT_PERMISSIONS,
    BOT_USER,
    MEMBER_PERMISSIONS,
    iso,
    member_payload,
)


def text_channel(channel_id: int, guild_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def thread_channel(
    channel_id: int, guild_id: int, parent_id: int, name: str, now: float
) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 11,  # PUBLIC_THREAD
        "guild_id": str(guild_id),
        "parent_id": str(parent_id),
        "owner_id": str(APP_ID),
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": iso(now),
            "locked": False,
            "create_timestamp": iso(now),
        },
    }


def dm_channel(channel_id: int, recipient: dict[str, Any] | None) -> dict[str, Any]:
    recipients = [recipient] if recipient is not None else []
    return {
        "id": str(channel_id),
        "type": 1,
        "last_message_id": None,
        "flags": 0,
        "recipients": recipients,
    }


def guild_create(
    guild: dict[str, Any], channels: list[dict[str, Any]], joined: float
) -> dict[str, Any]:
    """The GUILD_CREATE of a guild the bot is in: its channels and threads, the bot's member."""
    gid = guild["id"]
    everyone = {
        "id": gid,
        "name": "@everyone",
        "permissions": MEMBER_PERMISSIONS,
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    listed = [{k: v for k, v in c.items() if k != "guild_id"} for c in channels]
    return {
        **guild,
        "unavailable": False,
        "owner_id": "1",
        "joined_at": iso(joined),
        "large": False,
        "member_count": 2,
        "roles": [everyone],
        "channels": [c for c in listed if c["type"] != 11],
        "threads": [c for c in channels if c["type"] == 11],
        "members": [member_payload(joined, BOT_PERMISSIONS, BOT_USER)],
        **{k: [] for k in ("emojis", "stickers", "voice_states", "presences", "features")},
        **{k: [] for k in ("stage_instances", "guild_scheduled_events", "soundboard_sounds")},
    }
