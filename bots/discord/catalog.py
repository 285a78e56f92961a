"""Command names and descriptions from the message catalog, localised by discord.py's
Translator for every Discord locale that the catalog has a language for."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bots.core.messages import DEFAULT_LOCALE, normalise_locale, t


def text(key: str, **params: Any) -> app_commands.locale_str:
    """The English text (Discord's default) carrying its catalog key for the translator."""
    return app_commands.locale_str(t(key, DEFAULT_LOCALE, **params), key=key, params=params)


class CatalogTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        language = normalise_locale(locale.value)
        if key is None or language == DEFAULT_LOCALE:
            return None  # Discord shows the default (English) text
        return t(key, language, **string.extras.get("params", {}))[:100]
