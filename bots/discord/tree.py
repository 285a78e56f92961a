"""The application commands: one per style, /stylize, the "Stylize image" message command, the
plain commands and /admin; installable to servers and to users' own accounts, usable anywhere."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import discord
from discord import app_commands

from bots.core.commands import PLAIN_COMMANDS
from bots.core.failures import report
from bots.core.messages import t
from bots.discord.admin import AdminGroup
from bots.discord.catalog import text
from bots.discord.flows import Flows
from bots.discord.translate import sender_of
from tasks.styles import StylePreset

log = logging.getLogger("stylebot.discord")

MAX_CHOICES = 25  # past this many styles, /stylize's style option autocompletes instead
SLASH_PLAIN = tuple(name for name in PLAIN_COMMANDS if name != "start")  # /start is Telegram's
EVERYWHERE = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)
BOTH_INSTALLS = app_commands.AppInstallationType(guild=True, user=True)

MenuCallback = Callable[[discord.Interaction, discord.Message], Coroutine[Any, Any, None]]
Completer = Callable[
    [discord.Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]
]


def build_tree(client: discord.Client, flows: Flows) -> app_commands.CommandTree[Any]:
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(
        client, allowed_contexts=EVERYWHERE, allowed_installs=BOTH_INSTALLS
    )
    tree.on_error = _on_error  # type: ignore[method-assign]
    styles = flows.styles
    for name, preset in styles.items():
        if name in SLASH_PLAIN or name in ("stylize", "admin"):
            log.warning("style_command_skipped style=%s reason=name_taken", name)
            continue
        tree.add_command(_style_command(flows, name, preset))
    tree.add_command(_stylize(flows, styles))
    tree.add_command(app_commands.ContextMenu(name=text("ctx_stylize"), callback=_menu(flows)))
    for name in SLASH_PLAIN:
        tree.add_command(_plain(flows, name))
    tree.add_command(AdminGroup(flows))
    return tree


def _style_command(
    flows: Flows, style: str, preset: StylePreset
) -> app_commands.Command[Any, Any, Any]:
    @app_commands.describe(image=text("opt_image"))
    async def callback(interaction: discord.Interaction, image: discord.Attachment) -> None:
        await flows.from_attachment(interaction, image, style)

    shown = preset.display_name("en")
    return app_commands.Command(
        name=style, description=text("cmd_style_discord", style=shown), callback=callback
    )


def _stylize(
    flows: Flows, styles: Mapping[str, StylePreset]
) -> app_commands.Command[Any, Any, Any]:
    @app_commands.describe(image=text("opt_image"), style=text("opt_style"))
    async def callback(
        interaction: discord.Interaction, image: discord.Attachment, style: str
    ) -> None:
        await flows.from_attachment(interaction, image, style)  # the core validates the name

    if len(styles) <= MAX_CHOICES:
        choices = [
            app_commands.Choice(name=p.display_name("en"), value=n) for n, p in styles.items()
        ]
        callback = app_commands.choices(style=choices)(callback)
    command: app_commands.Command[Any, Any, Any] = app_commands.Command(
        name="stylize", description=text("cmd_stylize"), callback=callback
    )
    if len(styles) > MAX_CHOICES:
        command.autocomplete("style")(_complete(styles))
    return command


def _complete(styles: Mapping[str, StylePreset]) -> Completer:
    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        loc, typed = sender_of(interaction).locale, current.casefold()
        found = [
            app_commands.Choice(name=p.display_name(loc), value=n)
            for n, p in styles.items()
            if typed in n or typed in p.display_name(loc).casefold()
        ]
        return found[:MAX_CHOICES]

    return complete


def _menu(flows: Flows) -> MenuCallback:
    async def stylize_image(interaction: discord.Interaction, message: discord.Message) -> None:
        await flows.offer_styles(interaction, message)

    return stylize_image


def _plain(flows: Flows, name: str) -> app_commands.Command[Any, Any, Any]:
    async def callback(interaction: discord.Interaction) -> None:
        await flows.plain(interaction, name)

    return app_commands.Command(name=name, description=text(f"cmd_{name}"), callback=callback)


async def _on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
    report(log, "interaction_failed", error)
    text_ = t("busy_error", sender_of(interaction).locale)
    try:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text_)
        else:
            await interaction.response.send_message(text_, ephemeral=True)
    except discord.HTTPException:  # Discord itself failing: the log has it
        pass
