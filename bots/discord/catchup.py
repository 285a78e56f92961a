"""Entitlement events missed while the bot was down are never sent again: a refund (DELETE)
would leave the buyer their pass or pack, and a purchase (CREATE) would wait for the buyer's
next interaction. So at start (after READY), and every few hours after, the bot lists the
app's entitlements and squares SQL with them: a recorded purchase whose entitlement is gone
(deleted: no longer listed) or has ended is taken back; a listed one not yet granted is granted.

The purchases are read from SQL before the listing starts, so one recorded meanwhile is never
mistaken for a deleted one. The listing is bounded; when it may have been cut short, absence
proves nothing and only the listed entitlements are acted on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import discord

from bots.discord.entitlements import Entitlements
from bots.discord.translate import PLATFORM
from quota import payments as pay
from storage.db import transaction

log = logging.getLogger("stylebot.discord.catchup")

LISTED_MAX = 10_000  # entitlements read per catch-up: 100 requests of 100


class CatchUp:
    def __init__(self, client: discord.Client, purchases: Entitlements) -> None:
        self.client, self.purchases = client, purchases

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Catch up now, then every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            await self.once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def once(self) -> None:
        """One catch-up; a failure (Discord or SQL down) is one warning line, tried again later."""
        try:
            ended, granted, complete = await self._catch_up()
        except Exception as exc:
            log.warning("entitlements_catch_up_failed error=%s", type(exc).__name__)
            return
        log.info("entitlements_caught_up ended=%d granted=%d complete=%s", ended, granted, complete)

    async def _catch_up(self) -> tuple[int, int, bool]:
        core = self.purchases.core
        recorded = await asyncio.to_thread(self._recorded)
        now = datetime.fromtimestamp(self.purchases.clock(), UTC)
        listed: dict[str, discord.Entitlement] = {}
        async for entitlement in self.client.entitlements(
            limit=LISTED_MAX, exclude_ended=False, exclude_deleted=True
        ):
            listed[str(entitlement.id)] = entitlement
        complete = len(listed) < LISTED_MAX
        ended = granted = 0
        for charge_id, stands in recorded.items():
            found = listed.get(charge_id)
            gone = complete and found is None  # cut short, absence proves nothing
            over = found is not None and (found.deleted or _ended(found, now))
            if stands and (gone or over):
                ended += await asyncio.to_thread(core.shop.entitlement_ended, charge_id, PLATFORM)
        for charge_id, entitlement in listed.items():
            if charge_id in recorded or entitlement.consumed:
                continue  # granted before; or a pack consumed, so granted by whoever consumed it
            if core.shop.by_sku(str(entitlement.sku_id)) is None:
                continue
            if entitlement.deleted or _ended(entitlement, now) or entitlement.user_id is None:
                continue
            await self.purchases.granted(entitlement, None)
            granted += 1
        return ended, granted, complete

    def _recorded(self) -> dict[str, bool]:
        with transaction(self.purchases.core.rt.engine) as s:
            return pay.purchases(s, PLATFORM)


def _ended(entitlement: discord.Entitlement, now: datetime) -> bool:
    ends = entitlement.ends_at
    return ends is not None and ends <= now
