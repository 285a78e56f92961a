"""`stylebot discord`: build the runtime once, run the bot until SIGINT/SIGTERM. An operator's
mistake (no token, a refused token, Discord unreachable) is one line and exit 2."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import discord

from bots.core import Runtime, build_runtime
from bots.core.workers import spawn_local_worker
from bots.discord.app import DiscordBot, GatewayTimeout
from storage.migrate import upgrade
from storage.settings import Settings, SettingsError


def run_discord(settings: Settings, with_worker: bool = False) -> int:
    if not settings.discord_token:
        raise SettingsError(
            "STYLEBOT_DISCORD_TOKEN: required (developer portal → your application → Bot)"
        )
    if settings.sqlalchemy_url.startswith("sqlite"):
        upgrade(settings.sqlalchemy_url)  # embedded default: a local try needs no migrate step
    runtime = build_runtime(settings)
    worker = spawn_local_worker(runtime) if with_worker else None
    try:
        asyncio.run(_serve(settings, runtime))
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
    finally:
        if worker is not None:
            from tasks.worker import stop_worker

            stop_worker(worker)
        runtime.engine.dispose()
    return 0


async def _serve(settings: Settings, runtime: Runtime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # graceful: finish in-flight sends, then exit
    await DiscordBot(settings, runtime).serve(stop)
