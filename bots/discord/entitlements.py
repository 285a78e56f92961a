"""Premium app SKUs: what a person bought in Discord's store reaches the bot as an entitlement,
in the entitlement events and on every interaction they make afterwards (so a purchase made
while the bot was away is granted at their next command). The shop grants a mapped product
once per entitlement id, whichever way it came and however often; a consumable pack is then
consumed, so Discord lets them buy it again. A deleted entitlement (a refund) or one whose end
has passed (a subscription not renewed) ends what it gave."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import discord

from bots.core import Core, Sender
from bots.core.messages import DEFAULT_LOCALE
from bots.discord.sender import DiscordSender
from bots.discord.translate import PLATFORM
from storage.db import transaction
from storage.models import User

log = logging.getLogger("stylebot.discord.entitlements")


SETTLED_KEPT = 10_000


class Entitlements:
    def __init__(self, core: Core, sender: DiscordSender, clock: Callable[[], float]) -> None:
        self.core, self.sender, self.clock = core, sender, clock
        # Entitlements granted (and consumed, for a pack) by this process: a durable one is on
        # every interaction of its owner for good, and needs no SQL each time.
        self._settled: OrderedDict[int, None] = OrderedDict()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        for entitlement in interaction.entitlements:
            if entitlement.id not in self._settled:
                await self.granted(entitlement, str(interaction.locale))

    async def created(self, entitlement: discord.Entitlement) -> None:
        await self.granted(entitlement, None)

    async def updated(self, entitlement: discord.Entitlement) -> None:
        """A subscription renewed (a later end) or ended (an end now past)."""
        if entitlement.deleted or self._ended(entitlement):
            await self.ended(entitlement)
        else:
            await self.granted(entitlement, None)

    async def ended(self, entitlement: discord.Entitlement) -> None:
        shop = self.core.shop
        done = await asyncio.to_thread(shop.entitlement_ended, str(entitlement.id), PLATFORM)
        log.info("entitlement_ended id=%s sku=%s recorded=%s", *_ids(entitlement), done)

    async def granted(self, entitlement: discord.Entitlement, locale: str | None) -> None:
        """Grant once (the shop knows each entitlement id it granted), consume a pack, thank."""
        if entitlement.deleted or self._ended(entitlement):
            return
        if entitlement.user_id is None:
            return  # a server's entitlement: no person here to grant it to
        shop, sku = self.core.shop, str(entitlement.sku_id)
        sender = await asyncio.to_thread(self._sender, entitlement, locale)
        reply = await asyncio.to_thread(
            shop.entitled,
            sender,
            entitlement_id=str(entitlement.id),
            sku_id=sku,
            ends_at=entitlement.ends_at,
        )
        # Consumed after the grant is stored: were that call lost, the next interaction lists
        # the entitlement again, and it is consumed then (the shop grants nothing twice).
        pack = not entitlement.consumed and shop.is_consumable(sku)
        if not pack or await self._consume(entitlement):
            self._settle(entitlement.id)
        if reply is not None:
            log.info("entitlement_granted id=%s sku=%s", *_ids(entitlement))
            await self.sender.tell(str(entitlement.user_id), reply)

    async def _consume(self, entitlement: discord.Entitlement) -> bool:
        try:
            await entitlement.consume()
        except discord.HTTPException as exc:  # consumed already (a race), or Discord failing
            log.info("entitlement_not_consumed id=%s status=%s", entitlement.id, exc.status)
            return False
        return True

    def _settle(self, entitlement_id: int) -> None:
        self._settled[entitlement_id] = None
        while len(self._settled) > SETTLED_KEPT:
            self._settled.popitem(last=False)

    def _ended(self, entitlement: discord.Entitlement) -> bool:
        ends = entitlement.ends_at
        return ends is not None and ends <= datetime.fromtimestamp(self.clock(), UTC)

    def _sender(self, entitlement: discord.Entitlement, locale: str | None) -> Sender:
        """The buyer, in the language of their interaction, else the one they last used."""
        user_id = f"{PLATFORM}:{entitlement.user_id}"
        known = entitlement.user
        if locale is None:
            with transaction(self.core.rt.engine) as s:
                row = s.get(User, user_id)
                locale = row.locale if row is not None else DEFAULT_LOCALE
        return Sender(user_id, known.name if known else None, locale)


def _ids(entitlement: discord.Entitlement) -> tuple[int, int]:
    return entitlement.id, entitlement.sku_id
