"""The command menu (setMyCommands), in each language the catalog has."""

from __future__ import annotations

from collections.abc import Mapping

from telegram import Bot, BotCommand

from bots.core.commands import PLAIN_COMMANDS
from bots.core.messages import DEFAULT_LOCALE, locales, t
from tasks.styles import StylePreset

MAX_COMMANDS = 100  # Bot API limit


def menu_commands(styles: Mapping[str, StylePreset], locale: str) -> list[BotCommand]:
    """The plain commands, then one per style; descriptions from the catalog."""
    plain = [BotCommand(name, t(f"cmd_{name}", locale)) for name in PLAIN_COMMANDS]
    by_style = [
        BotCommand(name, t("cmd_style", locale, style=preset.display_name(locale)))
        for name, preset in styles.items()
    ]
    return [*plain, *by_style][:MAX_COMMANDS]


async def set_menu(bot: Bot, styles: Mapping[str, StylePreset]) -> None:
    """English for everyone without a translation; each other catalog language for its users."""
    for locale in locales():
        language = None if locale == DEFAULT_LOCALE else locale
        await bot.set_my_commands(menu_commands(styles, locale), language_code=language)
