"""The discord.py client wired to the core, and its lifecycle.

One `serve()` runs it all until a stop event: the gateway connection (interactions arrive
there), and beside it the delivery loop, the maintenance loop and the status refresher.
`stylebot discord` and the e2e tests both run exactly this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bots.core import Core, Delivery, Maintenance, Runtime
from bots.discord.catalog import CatalogTranslator
from bots.discord.catchup import CatchUp
from bots.discord.components import DYNAMIC_ITEMS
from bots.discord.entitlements import Entitlements
from bots.discord.flows import Flows
from bots.discord.sender import DiscordSender
from bots.discord.status import StatusRefresher
from bots.discord.sync import sync_commands
from bots.discord.translate import PLATFORM
from bots.discord.tree import build_tree
from storage.settings import Settings

log = logging.getLogger("stylebot.discord")


@dataclass(frozen=True)
class DiscordOptions:
    """Pacing knobs; the defaults suit production, tests make them short."""

    delivery_interval_s: float = 0.5
    maintenance_interval_s: float = 5.0
    status_interval_s: float = 3.0  # how often waiting requests are looked at ...
    status_min_edit_s: float = 5.0  # ... and each status message edited at most this often
    fetch_timeout_s: float = 60.0
    token_margin_s: float = 30.0  # a token this close to expiry is not started on
    ready_timeout_s: float = 60.0  # the gateway must say READY within this at start
    entitlements_interval_s: float = 6 * 3600.0  # store events missed: at start, then so often
    clock: Callable[[], float] = field(default=time.time)  # wall clock, for token lifetimes


def intents() -> discord.Intents:
    """Slash commands, menus and buttons arrive as interactions, which need no intent; guilds
    (not privileged) keeps channels known. No message content, members or presences."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    return wanted


class DiscordBot(discord.Client):
    def __init__(
        self, settings: Settings, runtime: Runtime, options: DiscordOptions | None = None
    ) -> None:
        # The bot never joins voice: no start-up warnings about voice libraries it doesn't need.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(intents=intents(), max_messages=None, chunk_guilds_at_startup=False)
        self.settings, self.rt = settings, runtime
        self.options = opts = options or DiscordOptions()
        core = Core(runtime)
        self.sender = DiscordSender(self, runtime.styles, opts.clock, opts.token_margin_s)
        self.flows = Flows(core, self, self.sender, opts.clock, opts.fetch_timeout_s)
        self.refresher = StatusRefresher(core, self.sender, opts.clock, opts.status_min_edit_s)
        self.flows.on_status = self.refresher.shown
        self.tree = build_tree(self, self.flows)
        self.purchases = Entitlements(core, self.sender, opts.clock)

    async def setup_hook(self) -> None:
        await self.tree.set_translator(CatalogTranslator())
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        assert self.application_id is not None
        try:
            await sync_commands(
                self.tree, self.rt, self.application_id, self.settings.discord_guild_id
            )
        except discord.HTTPException as exc:  # the commands registered before still work
            log.warning("commands_not_synced status=%s code=%s", exc.status, exc.code)

    # --- Discord's store: each event and each interaction's entitlements (discord.py runs
    # these handlers beside the command's own, so a slow grant never holds a command up) ---

    async def on_entitlement_create(self, entitlement: discord.Entitlement) -> None:
        await self.purchases.created(entitlement)

    async def on_entitlement_update(self, entitlement: discord.Entitlement) -> None:
        await self.purchases.updated(entitlement)

    async def on_entitlement_delete(self, entitlement: discord.Entitlement) -> None:
        await self.purchases.ended(entitlement)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.entitlements:
            await self.purchases.on_interaction(interaction)

    async def serve(self, stop: asyncio.Event) -> None:
        """Log in, connect, run the loops until `stop` is set, then close."""
        Route.BASE = self.settings.discord_api_url.rstrip("/")  # discord.py's one API address
        async with self:
            await self.login(self.settings.discord_token)
            await self._point_at_gateway()
            gateway = asyncio.create_task(self.connect(reconnect=True), name="discord-gateway")
            try:
                await self._until_ready(gateway)
                loops = self._start_loops(stop)
                log.info("discord_started bot=%s", self.user)
                await asyncio.wait(
                    [gateway, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
                )
                stop.set()
                await asyncio.gather(*loops, return_exceptions=True)
            finally:
                stop.set()
                await self.close()
                with contextlib.suppress(asyncio.CancelledError):
                    await gateway  # raises what ended the connection, if anything did

    async def _point_at_gateway(self) -> None:
        """Connect where the API says the gateway is (discord.py's plain Client would otherwise
        use its built-in address): one setting, STYLEBOT_DISCORD_API_URL, places both."""
        _shards, url, limit = await self.http.get_bot_gateway()
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        log.info("gateway url=%s sessions_left=%s", url, limit.get("remaining"))

    async def _until_ready(self, gateway: asyncio.Task[None]) -> None:
        ready = asyncio.create_task(self.wait_until_ready())
        done, _ = await asyncio.wait(
            [gateway, ready],
            timeout=self.options.ready_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if ready not in done:
            ready.cancel()
            if gateway.done():
                gateway.result()  # raises why it stopped
            raise GatewayTimeout(self.options.ready_timeout_s)

    def _start_loops(self, stop: asyncio.Event) -> list[asyncio.Task[Any]]:
        o = self.options
        return [
            asyncio.create_task(
                Delivery(self.rt, PLATFORM, self.sender).run(stop, o.delivery_interval_s)
            ),
            asyncio.create_task(Maintenance(self.rt).run(stop, o.maintenance_interval_s)),
            asyncio.create_task(self.refresher.run(stop, o.status_interval_s)),
            asyncio.create_task(CatchUp(self, self.purchases).run(stop, o.entitlements_interval_s)),
        ]


class GatewayTimeout(Exception):
    """The gateway did not say READY in time."""
