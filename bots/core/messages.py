"""The message catalog: every user-facing sentence, in English and Arabic.

The sentences live in standard gettext PO files, one per language, under
bots/core/locale/<lang>/LC_MESSAGES/stylebot.po; this module only reads them. A msgid is the
message's symbolic key ("queued"), its msgstr the sentence with str.format placeholders
("Got it! Your {style} image is queued — you are #{position}."). Each PO file is parsed with
Babel and compiled in memory into a gettext catalog the first time its language is asked for;
there is no build step and no .mo file.

t() also formats what goes into the placeholders for the language: numbers in the locale's
style, and, for right-to-left languages, each value inside a Unicode isolate and the whole
message after a right-to-left mark, so a chat client lays the sentence out right to left even
when it begins with, or contains, left-to-right text such as /ghibli, telegram:123 or 42.
"""

from __future__ import annotations

import gettext
import io
import math
import re
from datetime import timedelta
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from numbers import Integral, Real
from typing import Any, Literal

from babel import Locale
from babel.dates import format_timedelta
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

DOMAIN = "stylebot"
DEFAULT_LOCALE = "en"

RLM = "\u200f"  # RIGHT-TO-LEFT MARK: a strong RTL character that sets the paragraph direction
FSI = "\u2068"  # FIRST STRONG ISOLATE: lays out a value by its own first strong character...
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE: ...without reordering the sentence around it
# Decimals: grouped, at most two places, no trailing zeros: 0.42 -> "0.42", 20.0 -> "20".
# (Callers round to the precision they mean; a rate of 0.04 images/s must not show as "0".)
DECIMAL_FORMAT = "#,##0.##"

_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


class _MissingKey(gettext.NullTranslations):
    """The end of every fallback chain: an unknown key is a programming error, not a message."""

    def gettext(self, message: str) -> str:
        raise KeyError(message)


def _locale_dir() -> Traversable:
    return resources.files(__package__ or "bots.core") / "locale"


@cache
def locales() -> tuple[str, ...]:
    """The languages that have a catalog, e.g. ('ar', 'en')."""
    found = (
        entry.name
        for entry in _locale_dir().iterdir()
        if (entry / "LC_MESSAGES" / f"{DOMAIN}.po").is_file()
    )
    return tuple(sorted(found))


def normalise_locale(code: str | None) -> str:
    """The catalog language for a platform's language code: 'ar-SA', 'ar_EG', 'AR' -> 'ar';
    'en-US' -> 'en'; a language without a catalog, or no code at all, -> 'en'."""
    code = (code or "").strip()
    if not _LANGUAGE_CODE.fullmatch(code):
        return DEFAULT_LOCALE
    language, *rest = code.replace("-", "_").split("_")
    language = language.lower()
    available = locales()
    if rest and (exact := f"{language}_{rest[0].upper()}") in available:
        return exact  # a regional catalog, should one ever be added (pt_BR)
    return language if language in available else DEFAULT_LOCALE


@cache
def _catalog(locale: str) -> Catalog:
    """The parsed PO file of `locale` (a name from locales())."""
    po = _locale_dir() / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as f:
        return read_po(f, locale=locale, domain=DOMAIN, abort_invalid=True)


@cache
def _translations(locale: str) -> gettext.GNUTranslations:
    """The catalog of `locale`, compiled in memory, falling back to English for a missing key."""
    mo = io.BytesIO()
    write_mo(mo, _catalog(locale))
    mo.seek(0)
    translations = gettext.GNUTranslations(mo)
    translations.add_fallback(
        _translations(DEFAULT_LOCALE) if locale != DEFAULT_LOCALE else _MissingKey()
    )
    return translations


def keys(locale: str = DEFAULT_LOCALE) -> frozenset[str]:
    """The message keys that `locale`'s catalog translates."""
    messages = _catalog(normalise_locale(locale))
    return frozenset(m.id for m in messages if isinstance(m.id, str) and m.id and m.string)


@cache
def _is_rtl(locale: str) -> bool:
    return Locale.parse(locale).text_direction == "rtl"


def template(key: str, locale: str = DEFAULT_LOCALE) -> str:
    """The raw sentence `key` in `locale`, placeholders unfilled; KeyError if no such key."""
    if not key:  # gettext keeps the PO header under the empty msgid
        raise KeyError(key)
    return _translations(normalise_locale(locale)).gettext(key)


def format_value(value: Any, locale: str = DEFAULT_LOCALE) -> str:
    """A placeholder value as the locale writes it: numbers localised, text as it is."""
    loc = normalise_locale(locale)
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, Integral):
        return format_decimal(int(value), locale=loc)
    return format_decimal(float(value), format=DECIMAL_FORMAT, locale=loc)


def t(key: str, locale: str = DEFAULT_LOCALE, **params: Any) -> str:
    """The sentence `key` in `locale` (a platform language code; English when we lack it),
    with `params` filled in and formatted for the locale. KeyError for an unknown key."""
    loc = normalise_locale(locale)
    text = template(key, loc)
    values = {name: format_value(value, loc) for name, value in params.items()}
    if not _is_rtl(loc):
        return text.format_map(values)
    isolated = {name: f"{FSI}{value}{PDI}" for name, value in values.items()}
    return RLM + text.format_map(isolated)


def duration(seconds: float, locale: str = DEFAULT_LOCALE) -> str:
    """A human duration in whole minutes, never under one: '1 minute', '45 minutes',
    '3 hours and 20 minutes', in the locale's words and plural forms (Arabic has a dual)."""
    loc = normalise_locale(locale)
    hours, minutes = divmod(max(1, math.floor(seconds / 60 + 0.5)), 60)
    parts = []
    if hours:
        parts.append(_in_unit(timedelta(hours=hours), "hour", loc))
    if minutes:
        parts.append(_in_unit(timedelta(minutes=minutes), "minute", loc))
    return format_list(parts, locale=loc)


def _in_unit(delta: timedelta, unit: Literal["hour", "minute"], locale: str) -> str:
    # granularity with an unreachable threshold: always this unit ('24 hours', not '1 day')
    return format_timedelta(delta, granularity=unit, threshold=10**9, locale=locale)
