"""The Discord emulator's monetization against a bare discord.py client: entitlement events as
discord.py parses them, entitlements on interactions, consuming, listing, premium buttons."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import discord
import pytest

from tests.e2e.discord_emulator import APP_ID
from tests.e2e.discord_loop import DiscordLoop, running_discord
from tests.e2e.discord_payloads import APPLICATION_SUBSCRIPTION, PREMIUM_BUTTON

pytestmark = pytest.mark.e2e

USER, GUILD, TEXT = 601, 9301, 9401
PACK, PASS = 1_300_000_000_000_000_001, 1_300_000_000_000_000_002


class Buyer(discord.Client):
    """Keeps every entitlement event and every interaction's entitlements."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.events: list[tuple[str, discord.Entitlement]] = []
        self.seen: dict[int, list[discord.Entitlement]] = {}

    async def on_entitlement_create(self, ent: discord.Entitlement) -> None:
        self.events.append(("create", ent))

    async def on_entitlement_update(self, ent: discord.Entitlement) -> None:
        self.events.append(("update", ent))

    async def on_entitlement_delete(self, ent: discord.Entitlement) -> None:
        self.events.append(("delete", ent))

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.seen[interaction.id] = interaction.entitlements


@pytest.fixture
def env() -> Iterator[DiscordLoop]:
    with running_discord() as env:
        em = env.emulator
        em.user(USER)
        em.guild(GUILD)
        em.channel(TEXT, GUILD)
        yield env


def events(env: DiscordLoop, bot: Buyer, count: int) -> list[tuple[str, discord.Entitlement]]:
    env.emulator.wait_for(lambda: len(bot.events) >= count, 10, f"{count} entitlement events")
    return list(bot.events)


def entitlements_on(env: DiscordLoop, bot: Buyer, user: dict[str, Any]) -> list[int]:
    """The SKU ids an interaction of `user` lists now."""
    pressed = env.emulator.slash("ping", user, TEXT)
    iid = int(pressed["id"])
    env.emulator.wait_for(lambda: iid in bot.seen, 10, "the interaction")
    return [e.sku_id for e in bot.seen[iid]]


def test_events_parse_as_entitlements_and_interactions_list_the_active_ones(
    env: DiscordLoop,
) -> None:
    bot = env.start_client(Buyer)
    em = env.emulator
    user = em.users[USER]
    bought = em.entitle(user, PACK, consumable=True)
    monthly = em.entitle(user, PASS, kind=APPLICATION_SUBSCRIPTION, days=30)
    (kind, pack), (_, sub) = events(env, bot, 2)
    assert kind == "create" and pack.id == int(bought["id"]) and pack.sku_id == PACK
    assert (pack.user_id, pack.application_id, pack.ends_at, pack.consumed) == (
        USER,
        APP_ID,
        None,
        False,
    )
    assert sub.ends_at is not None and sub.ends_at > datetime.now(UTC)
    assert sorted(entitlements_on(env, bot, user)) == [PACK, PASS]

    em.end_entitlement(monthly["id"])
    kind, ended = events(env, bot, 3)[2]
    assert kind == "update" and ended.is_expired()
    em.delete_entitlement(bought["id"])
    kind, gone = events(env, bot, 4)[3]
    assert kind == "delete" and gone.deleted
    assert entitlements_on(env, bot, user) == []


def test_a_consumable_is_consumed_once_and_leaves_the_interactions(env: DiscordLoop) -> None:
    bot = env.start_client(Buyer)
    em = env.emulator
    user = em.users[USER]
    bought = em.entitle(user, PACK, consumable=True)
    durable = em.entitle(user, PASS)
    (_, pack), (_, kept) = events(env, bot, 2)
    env.run(pack.consume())
    assert em.entitlement(bought["id"])["consumed"] is True
    assert [c.args["entitlement_id"] for c in em.calls_of("consume_entitlement")] == [bought["id"]]
    with pytest.raises(discord.HTTPException):  # consumed already
        env.run(pack.consume())
    with pytest.raises(discord.HTTPException):  # not a consumable
        env.run(kept.consume())
    assert entitlements_on(env, bot, user) == [PASS]
    listed = env.run(_listed(bot, user))
    assert [e.id for e in listed] == [int(bought["id"]), int(durable["id"])]


async def _listed(bot: Buyer, user: dict[str, Any]) -> list[discord.Entitlement]:
    return [e async for e in bot.entitlements(user=discord.Object(int(user["id"])))]


def test_premium_buttons_carry_their_sku_alone(env: DiscordLoop) -> None:
    bot = env.start_client(Buyer)
    em = env.emulator

    async def post(**button: Any) -> discord.Message:
        view = discord.ui.View(timeout=None)
        view.add_item(discord.ui.Button(**button))
        channel = bot.get_channel(TEXT)
        assert isinstance(channel, discord.TextChannel)
        return await channel.send("buy", view=view)

    env.run(post(sku_id=PACK))
    [shown] = em.channel_messages(TEXT)
    [button] = shown["components"][0]["components"]
    assert (button["style"], button["sku_id"]) == (PREMIUM_BUTTON, str(PACK))
    assert "custom_id" not in button and "label" not in button
    with pytest.raises(discord.HTTPException):  # Discord draws the label and price itself
        env.run(post(sku_id=PACK, label="Buy 10 images"))
    assert len(em.channel_messages(TEXT)) == 1


def test_a_bot_away_misses_the_event_but_finds_the_entitlement_listed(env: DiscordLoop) -> None:
    em = env.emulator
    user = em.users[USER]
    bought = em.entitle(user, PASS, dispatch=False)
    bot = env.start_client(Buyer)
    env.run(asyncio.sleep(0.2))
    assert bot.events == []
    assert [e.id for e in env.run(_listed(bot, user))] == [int(bought["id"])]
