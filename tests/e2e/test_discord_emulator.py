"""The Discord emulator against a bare discord.py client (its own Client and CommandTree here,
not the project's adapter): what the real library sends and how it reacts to what it gets."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Coroutine, Iterator
from typing import Any, cast

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from PIL import Image

from tests.e2e.discord_emulator import APP_ID, TOKEN, DiscordEmulator
from tests.e2e.discord_interactions import Installs
from tests.e2e.discord_loop import DiscordLoop, running_discord
from tests.e2e.discord_payloads import PRIVILEGED, UPLOAD_LIMIT

pytestmark = pytest.mark.e2e

USER, OTHER = 501, 502
GUILD, TEXT = 9001, 9101  # the bot is a member
FOREIGN, FOREIGN_TEXT = 9002, 9102  # the app is only user-installed there
DM = 9201


def png(seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (seed, 120, 200)).save(out, "PNG")
    return out.getvalue()


class AgainButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"again:(?P<s>\w+)"):
    def __init__(self, style: str) -> None:
        super().__init__(discord.ui.Button(label="Again", custom_id=f"again:{style}"))
        self.style = style

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> AgainButton:
        return cls(match["s"])

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = cast(Bare, interaction.client)
        await bot.record(
            interaction, interaction.response.edit_message(content=f"again {self.style}", view=None)
        )


class Bare(discord.Client):
    """Records each interaction and each handler's outcome; `holds` pause the /style handler."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.seen: dict[int, discord.Interaction] = {}
        self.messages: list[discord.Message] = []
        self.results: dict[int, list[Any]] = {}
        self.holds: set[str] = set()
        self.gates: dict[str, asyncio.Event] = {}
        add_commands(self.tree)

    async def setup_hook(self) -> None:
        self.gates = {name: asyncio.Event() for name in ("ack", "followup")}
        self.add_dynamic_items(AgainButton)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        self.seen[interaction.id] = interaction

    async def on_message(self, message: discord.Message) -> None:
        if message.author.id != APP_ID:
            self.messages.append(message)

    async def checkpoint(self, name: str) -> None:
        if name in self.holds:
            await self.gates[name].wait()

    async def record(
        self, interaction: discord.Interaction, work: Coroutine[Any, Any, Any]
    ) -> None:
        try:
            outcome = await work
        except Exception as exc:  # the outcome tests look at
            outcome = exc
        self.results.setdefault(interaction.id, []).append(outcome)


async def style_flow(
    bot: Bare, i: discord.Interaction, image: discord.Attachment, style: str
) -> Any:
    await bot.checkpoint("ack")
    await i.response.defer(ephemeral=True, thinking=True)
    data = await image.read()
    await bot.checkpoint("followup")
    view = discord.ui.View(timeout=None)
    view.add_item(AgainButton(style))
    styled = discord.File(io.BytesIO(data), filename="styled.png")
    sent = await i.followup.send(
        f"{style}: {len(data)} bytes", file=styled, view=view, ephemeral=True, wait=True
    )
    await i.edit_original_response(content=f"{style}: done")
    return sent


async def many_flow(i: discord.Interaction, count: int, size: int) -> list[discord.WebhookMessage]:
    await i.response.defer(thinking=True)
    sent = []
    for n in range(count):
        file = (
            discord.File(io.BytesIO(b"x" * size), filename="big.bin")
            if size
            else discord.utils.MISSING
        )
        sent.append(await i.followup.send(f"part {n}", file=file, wait=True))
    return sent


def add_commands(tree: app_commands.CommandTree[Bare]) -> None:
    everywhere = app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    installs = app_commands.allowed_installs(guilds=True, users=True)

    @tree.command(name="style", description="Style a photo")
    @everywhere
    @installs
    async def style(i: discord.Interaction, image: discord.Attachment, style: str) -> None:
        await cast(Bare, i.client).record(i, style_flow(cast(Bare, i.client), i, image, style))

    @style.autocomplete("style")
    async def styles(i: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=s, value=s)
            for s in ("ghibli", "noir")
            if s.startswith(current)
        ]

    @tree.command(name="ping", description="Answer at once")
    async def ping(i: discord.Interaction) -> None:
        await cast(Bare, i.client).record(i, i.response.send_message("pong"))

    @tree.command(name="many", description="Several follow-ups")
    @everywhere
    @installs
    async def many(i: discord.Interaction, count: int, size: int = 0) -> None:
        await cast(Bare, i.client).record(i, many_flow(i, count, size))

    admin = app_commands.Group(name="admin", description="Admin tools")

    @admin.command(name="grant", description="Grant credits")
    async def grant(i: discord.Interaction, user: discord.User, amount: int) -> None:
        said = f"{user.id} +{amount} admin={i.permissions.administrator}"
        await cast(Bare, i.client).record(i, i.response.send_message(said, ephemeral=True))

    tree.add_command(admin)

    @tree.context_menu(name="Stylize")
    @everywhere
    @installs
    async def stylize(i: discord.Interaction, message: discord.Message) -> None:
        answer = i.response.send_message(f"styling {message.id}", ephemeral=True)
        await cast(Bare, i.client).record(i, answer)


def release(env: DiscordLoop, bot: Bare, gate: str) -> None:
    env.loop.call_soon_threadsafe(bot.gates[gate].set)


def outcome(env: DiscordLoop, bot: Bare, interaction: dict[str, Any], count: int = 1) -> Any:
    """What the count-th handling of `interaction` came to (its result or its exception)."""
    iid = int(interaction["id"])
    env.emulator.wait_for(lambda: len(bot.results.get(iid, [])) >= count, 15, "the handler")
    return bot.results[iid][count - 1]


@pytest.fixture
def env() -> Iterator[DiscordLoop]:
    """Two people; a guild with the bot, one with only the user-installed app; the bot's DM."""
    em = DiscordEmulator()
    em.user(USER)
    em.user(OTHER, locale="de")
    em.guild(GUILD)
    em.channel(TEXT, GUILD)
    em.guild(FOREIGN, bot_member=False)
    em.channel(FOREIGN_TEXT, FOREIGN)
    em.channel(DM, None, kind="dm", user_id=USER)
    with running_discord(em) as env:
        yield env


def style_options(att: dict[str, Any], style: str = "ghibli") -> list[dict[str, Any]]:
    return [
        {"name": "image", "type": 11, "value": att["id"]},
        {"name": "style", "type": 3, "value": style},
    ]


# --- connecting -------------------------------------------------------------------------------


def test_login_ready_guilds_and_identify(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    assert bot.user is not None and bot.user.id == APP_ID and bot.application_id == APP_ID
    assert bot.get_guild(GUILD) is not None and bot.get_channel(TEXT) is not None
    assert bot.get_guild(FOREIGN) is None  # only user-installed there: no GUILD_CREATE
    assert em.calls_of("me") and em.calls_of("app_info")
    assert not em.calls_of("gateway_bot")  # a plain Client connects to DEFAULT_GATEWAY
    (identify,) = em.calls_of("identify")
    compress = discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
    assert identify.params["compress"] == compress and identify.params["v"] == "10"
    intents = em.identifies()[0]["intents"]
    assert intents == discord.Intents.default().value and not intents & PRIVILEGED


def test_privileged_intents_are_refused(env: DiscordLoop) -> None:
    async def attempt() -> None:
        client = discord.Client(intents=discord.Intents.all())
        try:
            await client.start(TOKEN)
        finally:
            await client.close()

    with pytest.raises(discord.PrivilegedIntentsRequired):
        env.run(attempt())
    assert env.emulator.calls_of("identify", ok=False)[0].status == 4014


def test_wrong_token_is_a_login_failure(env: DiscordLoop) -> None:
    async def attempt() -> None:
        client = discord.Client(intents=discord.Intents.default())
        try:
            await client.login("not-the-token")
        finally:
            await client.close()

    with pytest.raises(discord.LoginFailure):
        env.run(attempt())
    assert env.emulator.calls_of("me", ok=False)[0].status == 401


def test_auto_sharded_client_asks_gateway_bot(
    env: DiscordLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL("wss://gateway.invalid/"))

    def sharded() -> discord.AutoShardedClient:
        return discord.AutoShardedClient(
            intents=discord.Intents.default(), guild_ready_timeout=0.05
        )

    env.start_client(sharded)
    assert env.emulator.calls_of("gateway_bot")
    assert env.emulator.identifies()[0]["shard"] == [0, 1]


def test_gateway_text_frames_heartbeats_and_tokens(env: DiscordLoop) -> None:
    """Without compress= frames are text; a heartbeat is ACKed; a wrong token is closed 4004."""
    url = env.emulator.gateway.url + "?v=10&encoding=json"

    async def identify(token: str) -> tuple[Any, Any, aiohttp.WSMessage]:
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            await ws.send_json({"op": 1, "d": None})
            ack = await ws.receive_json(timeout=5)
            await ws.send_json({"op": 2, "d": {"token": token, "intents": 513, "properties": {}}})
            return hello, ack, await ws.receive(timeout=5)

    hello, ack, ready = env.run(identify(TOKEN))
    assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0 and ack["op"] == 11
    assert ready.type is aiohttp.WSMsgType.TEXT and ready.json()["t"] == "READY"
    *_, refused = env.run(identify("not-the-token"))
    assert refused.type is aiohttp.WSMsgType.CLOSE and refused.data == 4004


def test_disconnect_resumes_and_replays(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    em.disconnect()
    interaction = em.slash("ping", em.users[USER], TEXT)  # goes out as the connection drops
    assert isinstance(outcome(env, bot, interaction), discord.InteractionCallbackResponse)
    (resume,) = em.wait_for(lambda: em.calls_of("resume"), 10, "a RESUME")
    assert resume.result["replayed"] >= 1  # the interaction sent while it was away
    assert len(em.identifies()) == 1


# --- commands and interactions ----------------------------------------------------------------


def test_sync_registers_commands_with_installs_and_contexts(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    synced = env.run(bot.tree.sync())
    assert {c.name for c in synced} == {"style", "ping", "many", "admin", "Stylize"}
    stored = {c["name"]: c for c in env.emulator.commands()}
    options = {o["name"]: o for o in stored["style"]["options"]}
    assert options["image"]["type"] == 11 and options["image"]["required"]
    assert options["style"]["type"] == 3 and options["style"]["autocomplete"]
    (grant,) = stored["admin"]["options"]
    assert grant["type"] == 1 and [o["type"] for o in grant["options"]] == [6, 4]
    menu = stored["Stylize"]
    assert menu["type"] == 3 and menu["description"] == ""
    assert sorted(menu["integration_types"]) == [0, 1] and sorted(menu["contexts"]) == [0, 1, 2]
    assert {c.id for c in synced} == {int(c["id"]) for c in stored.values()}


def test_slash_with_attachment_defers_reads_and_follows_up(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    photo = png()
    att = em.attachment(photo, "photo.png", "image/png")
    assert (att["width"], att["height"]) == (32, 24)
    interaction = em.slash(
        "style", em.users[USER], TEXT, options=style_options(att), attachments=[att]
    )
    sent = outcome(env, bot, interaction)
    assert isinstance(sent, discord.WebhookMessage), sent
    iid = int(interaction["id"])
    seen = bot.seen[iid]
    assert seen.filesize_limit == UPLOAD_LIMIT and seen.guild_id == GUILD and seen.context.guild
    assert em.acknowledged(iid) == {"type": 5, "data": {"flags": 64}}
    assert em.calls_of("cdn", attachment_id=att["id"])
    (followup,) = em.followups(iid)
    assert followup["flags"] & 64 and followup["id"] == str(sent.id)
    assert em.file_bytes(followup) == photo
    button = followup["components"][0]["components"][0]
    assert button["custom_id"] == "again:ghibli"
    original = em.original(iid)
    assert original is not None and original["id"] == followup["id"]  # filled the "thinking"
    assert original["content"] == "ghibli: done" and len(original["attachments"]) == 1
    assert em.calls_of("edit_original", interaction_id=iid)


def test_followup_survives_three_429s(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    em.fail("followup", 429, times=3, retry_after=0.05)
    att = em.attachment(png(1), "photo.png", "image/png")
    interaction = em.slash(
        "style", em.users[USER], TEXT, options=style_options(att), attachments=[att]
    )
    assert isinstance(outcome(env, bot, interaction), discord.WebhookMessage)
    assert len(em.followups(interaction["id"])) == 1
    assert [c.status for c in em.calls_of("followup", ok=None)] == [429, 429, 429, 200]


def test_followup_retries_a_502(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    em.fail("followup", 502)
    att = em.attachment(png(2), "photo.png", "image/png")
    interaction = em.slash(
        "style", em.users[USER], TEXT, options=style_options(att), attachments=[att]
    )
    assert isinstance(outcome(env, bot, interaction), discord.WebhookMessage)
    assert [c.status for c in em.calls_of("followup", ok=None)] == [502, 200]


def test_late_callback_is_an_unknown_interaction(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    bot.holds.add("ack")
    att = em.attachment(png(), "photo.png", "image/png")
    interaction = em.slash(
        "style", em.users[USER], TEXT, options=style_options(att), attachments=[att]
    )
    em.wait_for(lambda: int(interaction["id"]) in bot.seen, 10, "the interaction")
    em.advance(3.5)
    release(env, bot, "ack")
    error = outcome(env, bot, interaction)
    assert isinstance(error, discord.NotFound) and error.code == 10062


def test_followup_after_token_expiry_is_401(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    bot.holds.add("followup")
    att = em.attachment(png(), "photo.png", "image/png")
    interaction = em.slash(
        "style", em.users[USER], TEXT, options=style_options(att), attachments=[att]
    )
    em.wait_for(lambda: em.acknowledged(interaction["id"]), 10, "the deferral")
    em.advance(16 * 60)
    release(env, bot, "followup")
    error = outcome(env, bot, interaction)
    assert type(error) is discord.HTTPException and (error.status, error.code) == (401, 50027)


def test_redelivered_interaction_is_already_acknowledged(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    interaction = em.slash("ping", em.users[USER], TEXT)
    assert isinstance(outcome(env, bot, interaction), discord.InteractionCallbackResponse)
    em.redeliver(interaction)
    error = outcome(env, bot, interaction, count=2)
    assert isinstance(error, discord.HTTPException) and error.code == 40060
    assert (em.original(interaction["id"]) or {}).get("content") == "pong"


def test_autocomplete_gets_choices(env: DiscordLoop) -> None:
    env.start_client(Bare)
    em = env.emulator
    interaction = em.autocomplete("style", em.users[USER], TEXT, "style", "gh")
    ack = em.wait_for(lambda: em.acknowledged(interaction["id"]), 10, "the choices")
    assert ack == {"type": 8, "data": {"choices": [{"name": "ghibli", "value": "ghibli"}]}}


def test_context_menu_button_and_select_reach_the_client(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    user = em.users[USER]
    posted = em.post_message(TEXT, user, "a photo please")
    menu = em.context_menu("Stylize", user, TEXT, posted)
    assert isinstance(outcome(env, bot, menu), discord.InteractionCallbackResponse)
    answer = em.original(menu["id"])
    assert answer is not None and answer["content"] == f"styling {posted['id']}"
    assert answer["flags"] & 64

    async def post_buttons() -> discord.Message:
        view = discord.ui.View(timeout=None)
        view.add_item(AgainButton("noir"))
        channel = bot.get_channel(TEXT)
        assert isinstance(channel, discord.TextChannel)
        return await channel.send("pick one", view=view)

    env.run(post_buttons())
    (shown,) = em.channel_messages(TEXT)
    press = em.press("again:noir", user, TEXT, shown)
    assert isinstance(outcome(env, bot, press), discord.InteractionCallbackResponse)
    ack = em.acknowledged(press["id"])
    assert ack is not None and ack["type"] == 7 and ack["data"]["components"] == []
    assert em.channel_messages(TEXT)[0]["content"] == "again noir"
    chosen = em.choose("menu", ["b"], user, TEXT, shown)
    em.wait_for(lambda: int(chosen["id"]) in bot.seen, 10, "the select")
    assert bot.seen[int(chosen["id"])].data == {
        "custom_id": "menu",
        "component_type": 3,
        "values": ["b"],
    }


def test_admin_subcommand_resolves_its_user(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    target = {"name": "user", "type": 6, "value": str(OTHER)}
    options = [target, {"name": "amount", "type": 4, "value": 5}]
    user, other = em.users[USER], em.users[OTHER]
    interaction = em.slash(
        "admin", user, TEXT, subcommand="grant", options=options, users=[other], admin=True
    )
    outcome(env, bot, interaction)
    answer = em.original(interaction["id"]) or {}
    assert answer.get("content") == f"{OTHER} +5 admin=True"


def test_dm_private_channel_and_thread_contexts(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    other = em.users[OTHER]
    em.channel(9202, None, kind="dm", user_id=OTHER)
    em.channel(9203, None, kind="private")
    em.channel(9103, GUILD, kind="thread")  # after READY: THREAD_CREATE
    seen = []
    places: list[tuple[int, Installs]] = [(9202, "guild"), (9203, "user"), (9103, "guild")]
    for channel, installs in places:
        interaction = em.slash("ping", other, channel, installs=installs)
        assert isinstance(outcome(env, bot, interaction), discord.InteractionCallbackResponse)
        seen.append(bot.seen[int(interaction["id"])])
    dm, private, thread = seen
    assert dm.context.dm_channel and dm.guild_id is None and dm.locale is discord.Locale.german
    assert private.context.private_channel and isinstance(private.channel, discord.DMChannel)
    assert isinstance(thread.channel, discord.Thread) and thread.channel.parent_id == TEXT


def test_upload_over_the_limit_is_413(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    size = {"name": "size", "type": 4, "value": UPLOAD_LIMIT + 1}
    interaction = em.slash(
        "many", em.users[USER], TEXT, options=[{"name": "count", "type": 4, "value": 1}, size]
    )
    error = outcome(env, bot, interaction)
    assert isinstance(error, discord.HTTPException) and (error.status, error.code) == (413, 40005)


def test_user_installed_followups_are_capped_at_five(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator
    count = [{"name": "count", "type": 4, "value": 6}]
    interaction = em.slash("many", em.users[USER], FOREIGN_TEXT, options=count, installs="user")
    error = outcome(env, bot, interaction)
    assert isinstance(error, discord.HTTPException) and error.code == 40094
    assert len(em.followups(interaction["id"])) == 5
    assert bot.seen[int(interaction["id"])].guild is not None  # a partial guild, not cached


# --- channels and DMs -------------------------------------------------------------------------


def test_posts_arrive_without_content_unless_dm_or_mention(env: DiscordLoop) -> None:
    """No MESSAGE_CONTENT intent: guild posts come emptied, and none from guilds without the bot."""
    bot = env.start_client(Bare)
    em = env.emulator
    user = em.users[USER]
    for channel, text in [(TEXT, "secret"), (FOREIGN_TEXT, "unseen"), (TEXT, f"<@{APP_ID}> hi")]:
        em.post_message(channel, user, text)
    em.post_message(DM, user, "in a dm")
    em.wait_for(lambda: len(bot.messages) >= 3, 10, "the posts")
    assert [m.content for m in bot.messages] == ["", f"<@{APP_ID}> hi", "in a dm"]


def test_enforced_nonce_posts_once(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator

    async def twice() -> tuple[discord.Message, discord.Message]:
        channel = bot.get_partial_messageable(TEXT)
        return await channel.send("hello", nonce=777), await channel.send("hello", nonce=777)

    first, second = env.run(twice())
    assert first.id == second.id
    assert len(em.channel_messages(TEXT)) == 1 and len(em.calls_of("channel_message")) == 2


def test_channel_errors(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator

    async def send(channel_id: int) -> discord.Message:
        return await bot.get_partial_messageable(channel_id).send("hi")

    with pytest.raises(discord.Forbidden) as missing:
        env.run(send(FOREIGN_TEXT))
    assert missing.value.code == 50001
    em.delete_channel(TEXT)
    with pytest.raises(discord.NotFound) as unknown:
        env.run(send(TEXT))
    assert unknown.value.code == 10003
    with pytest.raises(discord.NotFound):
        env.run(bot.fetch_guild(GUILD))  # a route the emulator doesn't know
    assert em.calls_of("unknown", ok=False)


def test_dms_open_and_closed(env: DiscordLoop) -> None:
    bot = env.start_client(Bare)
    em = env.emulator

    async def dm(user_id: int) -> discord.Message:
        channel = await bot.create_dm(discord.Object(user_id))
        return await channel.send("your picture is ready")

    sent = env.run(dm(OTHER))
    assert em.dm_channel_of(OTHER) == sent.channel.id
    assert [m["content"] for m in em.channel_messages(sent.channel.id)] == ["your picture is ready"]
    em.close_dms(USER)
    with pytest.raises(discord.Forbidden) as closed:
        env.run(dm(USER))
    assert closed.value.code == 50007 and em.dm_channel_of(USER) == DM
