"""Command sync at start: globally, or to one guild in development; skipped when the commands
(as Discord would receive them, translations included) are what was synced last time."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import discord
from discord import app_commands

from bots.core import Runtime
from quota.controls import get, put
from storage.db import transaction

log = logging.getLogger("stylebot.discord")


async def payload(tree: app_commands.CommandTree[Any], guild: discord.Object | None) -> list[Any]:
    commands = tree.get_commands(guild=guild)
    translator = tree.translator
    if translator is None:
        return [command.to_dict(tree) for command in commands]
    return [await command.get_translated_payload(tree, translator) for command in commands]


async def sync_commands(
    tree: app_commands.CommandTree[Any], runtime: Runtime, app_id: int, guild_id: int | None
) -> bool:
    """Sync when the commands changed; True when a sync was sent."""
    guild = discord.Object(guild_id) if guild_id else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    body = json.dumps([app_id, await payload(tree, guild)], sort_keys=True, default=str)
    digest = hashlib.sha256(body.encode()).hexdigest()
    key = f"discord_sync:{guild_id or 'global'}"
    with transaction(runtime.engine) as s:
        if get(s, key, "") == digest:
            log.info("commands_unchanged scope=%s", guild_id or "global")
            return False
    await tree.sync(guild=guild)
    with transaction(runtime.engine) as s:
        put(s, key, digest, runtime.clock())
    log.info("commands_synced scope=%s", guild_id or "global")
    return True
