"""The command menu (setMyCommands), in each language the catalog has."""

from __future__ import annotations

from collections.abc import Mapping

from telegram import Bot, BotCommand

from bots.core.commands import PLAIN_COMMANDS
from bots.core.messages import DEFAULT_LOCALE, locales, t
from tasks.styles import StylePreset

MAX_COMMANDS = 100  # Bot API limit
# Shown only while something is for sale here; /paysupport and /terms are what Telegram asks
# of every bot that takes payments.
SELLING_COMMANDS = ("buy", "paysupport", "terms")


def menu_commands(
    styles: Mapping[str, StylePreset], locale: str, selling: bool = False
) -> list[BotCommand]:
    """The plain commands (the selling ones when selling), then one per style; descriptions
    from the catalog."""
    names = [name for name in PLAIN_COMMANDS if name not in SELLING_COMMANDS]
    if selling:
        names.extend(SELLING_COMMANDS)
    plain = [BotCommand(name, t(f"cmd_{name}", locale)) for name in names]
    by_style = [
        BotCommand(name, t("cmd_style", locale, style=preset.display_name(locale)))
        for name, preset in styles.items()
    ]
    return [*plain, *by_style][:MAX_COMMANDS]


async def set_menu(bot: Bot, styles: Mapping[str, StylePreset], selling: bool = False) -> None:
    """English for everyone without a translation; each other catalog language for its users."""
    for locale in locales():
        language = None if locale == DEFAULT_LOCALE else locale
        commands = menu_commands(styles, locale, selling)
        await bot.set_my_commands(commands, language_code=language)
