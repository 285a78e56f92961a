"""`stylebot discord`: run the bot until SIGINT/SIGTERM. An operator's mistake (no token, a
refused token, Discord unreachable) is one line and exit 2."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

from bots.core import Runtime
from bots.core.process import run_bot_process
from bots.discord.app import DiscordBot, GatewayTimeout
from bots.discord.ratelimits import count_rate_limits
from storage.settings import Settings, SettingsError


def run_discord(settings: Settings, with_worker: bool = False) -> int:
    if not settings.discord_token:
        raise SettingsError(
            "STYLEBOT_DISCORD_TOKEN: required (developer portal → your application → Bot)"
        )

    async def serve(runtime: Runtime, stop: asyncio.Event) -> None:
        await DiscordBot(settings, runtime).serve(stop)

    count_rate_limits()  # stylebot_platform_429_total: discord.py only logs its 429s

    try:
        run_bot_process(settings, serve, with_worker)
    except discord.LoginFailure:
        raise SettingsError(
            "STYLEBOT_DISCORD_TOKEN: rejected by Discord (reset it in the "
            "developer portal and set the new one)"
        ) from None
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound, GatewayTimeout) as exc:
        raise SettingsError(
            f"Discord unreachable at {settings.discord_api_url} ({type(exc).__name__}): check "
            "the network, or STYLEBOT_DISCORD_API_URL"
        ) from None
    return 0
