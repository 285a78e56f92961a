"""The message catalog: PO files, locale choice, number and duration formatting, bidi marks."""

from __future__ import annotations

import re
import string
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bots.core import messages
from bots.core.messages import (
    FSI,
    PDI,
    RLM,
    duration,
    format_value,
    keys,
    locales,
    normalise_locale,
    t,
    template,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "bots" / "core" / "locale"
PO_FILES = {lang: LOCALE_DIR / lang / "LC_MESSAGES" / "stylebot.po" for lang in ("en", "ar")}
POT_FILE = LOCALE_DIR / "stylebot.pot"
ARABIC_LETTER = re.compile(r"[\u0620-\u064A\u066E-\u06D3\u06FA-\u06FF]")
BIDI_CONTROLS = re.compile(r"[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]")
ARABIC_PLURALS = (
    "nplurals=6; plural=(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : "
    "n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5);"
)


def _read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, abort_invalid=True)  # warnings are errors under pytest here


def _entries(catalog: Catalog) -> Iterator[Any]:
    return (m for m in catalog if m.id)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _sample_params(key: str) -> dict[str, str]:
    return {name: f"v_{name}" for name in _fields(template(key))}


# --- the PO files ------------------------------------------------------------------------


@pytest.mark.parametrize("lang", sorted(PO_FILES))
def test_po_file_parses_cleanly(lang: str) -> None:
    catalog = _read(PO_FILES[lang])
    assert str(catalog.locale) == lang
    assert catalog.charset.lower() == "utf-8"
    assert not catalog.fuzzy, "the header is marked fuzzy"
    assert not [m.id for m in _entries(catalog) if m.fuzzy], "fuzzy entries"
    assert not catalog.obsolete, f"obsolete (#~) entries: {list(catalog.obsolete)}"
    assert not [m.id for m in _entries(catalog) if not m.string], "untranslated entries"
    assert not [m.id for m in _entries(catalog) if m.pluralizable], "t() has no plural forms"


def test_arabic_has_the_six_arabic_plural_forms() -> None:
    catalog = _read(PO_FILES["ar"])
    assert catalog.num_plurals == 6
    assert catalog.plural_forms == ARABIC_PLURALS


def test_every_key_is_in_the_template_and_both_languages() -> None:
    ids = {lang: [m.id for m in _entries(_read(path))] for lang, path in PO_FILES.items()}
    template_ids = [m.id for m in _entries(_read(POT_FILE))]
    assert len(template_ids) == len(set(template_ids)), "duplicate msgids"
    assert set(ids["en"]) == set(template_ids), "en/…/stylebot.po differs from stylebot.pot"
    assert set(ids["ar"]) == set(template_ids), "ar/…/stylebot.po differs from stylebot.pot"
    assert keys("en") == keys("ar") == set(template_ids)
    assert not [m.id for m in _entries(_read(POT_FILE)) if m.string], "the template has text"


def test_placeholders_match_and_are_documented() -> None:
    documented = {m.id: " ".join(m.auto_comments) for m in _entries(_read(POT_FILE))}
    for key in sorted(keys()):
        en, ar = template(key, "en"), template(key, "ar")
        assert _fields(en) == _fields(ar), key
        for text in (en, ar):  # plain {name} fields only: t() formats values itself
            for _, name, spec, conversion in string.Formatter().parse(text):
                if name is not None:
                    assert re.fullmatch(r"[a-z_]+", name) and not spec and not conversion, key
        for name in _fields(en):
            assert f"{{{name}}}" in documented[key], f"{key}: no #. comment for {{{name}}}"


def test_every_arabic_sentence_is_arabic() -> None:
    for key in sorted(keys("ar")):
        assert ARABIC_LETTER.search(template(key, "ar")), key
        assert not ARABIC_LETTER.search(template(key, "en")), key
        for lang in ("en", "ar"):  # t() adds the bidi marks; the PO files hold none
            assert not BIDI_CONTROLS.search(template(key, lang)), (key, lang)


def test_package_data_ships_the_catalogs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["bots"]
    shipped = [*PO_FILES.values(), POT_FILE]
    for path in shipped:
        relative = path.relative_to(ROOT / "bots")
        assert any(relative.match(glob) for glob in globs), relative


# --- choosing the language -------------------------------------------------------------


def test_locales_are_the_po_files() -> None:
    assert locales() == ("ar", "en")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ar", "ar"),
        ("ar-SA", "ar"),
        ("ar_EG", "ar"),
        ("AR", "ar"),
        (" ar ", "ar"),
        ("en", "en"),
        ("en-US", "en"),
        ("en_GB", "en"),
        ("fr", "en"),
        ("pt-BR", "en"),
        ("", "en"),
        (None, "en"),
        ("../ar", "en"),
        ("ar/LC_MESSAGES", "en"),
    ],
)
def test_normalise_locale(code: str | None, expected: str) -> None:
    assert normalise_locale(code) == expected


def test_platform_language_codes_choose_the_catalog() -> None:
    assert t("help", "ar-SA") == t("help", "ar")
    assert t("help", "en-US") == t("help", "en") == t("help")
    assert t("help", "fr") == t("help", "en")


@pytest.mark.parametrize("locale", ["en", "ar", "fr"])
def test_a_missing_key_is_a_programming_error(locale: str) -> None:
    with pytest.raises(KeyError):
        t("no_such_message", locale)
    with pytest.raises(KeyError):
        t("", locale)  # gettext keeps the PO header under the empty msgid


def test_a_missing_placeholder_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        t("queued", "en", style="Ghibli")


def test_catalogs_load_lazily_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = "import bots.core.messages as m; print(m._catalog.cache_info().currsize)"
    fresh = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert fresh.stdout.strip() == "0", "a PO file was read at import time"

    reads: list[str] = []

    def counting_read_po(fileobj: Any, **kwargs: Any) -> Catalog:
        reads.append(kwargs["locale"])
        return read_po(fileobj, **kwargs)

    monkeypatch.setattr(messages, "read_po", counting_read_po)
    messages._catalog.cache_clear()
    messages._translations.cache_clear()
    try:
        for _ in range(3):
            t("help", "ar")
            t("queued", "en", style="Ghibli", position=1)
        assert sorted(reads) == ["ar", "en"]
    finally:
        messages._catalog.cache_clear()
        messages._translations.cache_clear()


# --- formatting ----------------------------------------------------------------------


def test_english_numbers_are_grouped_and_small_ones_plain() -> None:
    assert t("queued", "en", style="Ghibli", position=12345).endswith("you are #12,345.")
    assert "used all 3 images" in t("quota_daily", "en", limit=3, reset="1 minute")
    assert format_value(3, "en") == "3"
    assert format_value(1234567, "en-US") == "1,234,567"


def test_decimals_have_at_most_two_places_and_no_trailing_zeros() -> None:
    assert format_value(2.5, "en") == "2.5"
    assert format_value(0.04, "en") == "0.04"  # a slow rate is not "0"
    assert format_value(0.4213, "en") == "0.42"
    assert format_value(20.0, "en") == "20"  # "over 20 MB", not "over 20.0 MB"
    assert format_value(1234.567, "en") == "1,234.57"
    assert "(over 20 MB)" in t("image_too_big_file", "en", mb=20.0)
    stats = {**_sample_params("stats"), "rate": 0.4}
    assert "Last 5 min: 0.4 images/s." in t("stats", "en", **stats)


def test_arabic_numbers_follow_babel() -> None:
    # Babel formats Arabic with its default Latin digits ("latn") and Latin separators,
    # the digits Arabic-language Telegram and Discord users mostly see and type.
    assert format_value(12345, "ar") == "12,345"
    assert format_value(2.5, "ar-SA") == "2.5"
    reply = t("queued", "ar", style="Ghibli", position=12345)
    assert f"{FSI}12,345{PDI}" in reply


def test_text_values_are_left_as_they_are() -> None:
    assert format_value("telegram:123", "ar") == "telegram:123"
    assert format_value(True, "en") == "True"
    assert "user 1234." in t("unknown_user", "en", user="1234")  # a str: no grouping


@pytest.mark.parametrize(
    ("seconds", "en", "ar"),
    [
        (0, "1 minute", "دقيقة"),
        (10, "1 minute", "دقيقة"),
        (90, "2 minutes", "دقيقتان"),
        (45 * 60, "45 minutes", "45 دقيقة"),
        (2 * 3600, "2 hours", "ساعتان"),
        (3 * 3600 + 20 * 60, "3 hours and 20 minutes", "3 ساعات و20 دقيقة"),
        (24 * 3600, "24 hours", "24 ساعة"),
    ],
)
def test_duration_is_localised(seconds: float, en: str, ar: str) -> None:
    assert duration(seconds, "en") == en
    assert duration(seconds, "ar-SA") == ar


# --- right to left -------------------------------------------------------------------


def test_english_output_has_no_bidi_marks() -> None:
    for key in sorted(keys()):
        assert not BIDI_CONTROLS.search(t(key, "en", **_sample_params(key))), key


def test_arabic_output_starts_right_to_left_and_isolates_every_value() -> None:
    for key in sorted(keys()):
        params = _sample_params(key)
        reply = t(key, "ar", **params)
        assert reply.startswith(RLM), key
        fields = re.findall(r"\{\w+\}", template(key, "ar"))
        assert reply.count(FSI) == reply.count(PDI) == len(fields), key
        for value in params.values():
            assert f"{FSI}{value}{PDI}" in reply, key
        bare = reply.removeprefix(RLM).replace(FSI, "").replace(PDI, "")
        assert bare == template(key, "ar").format(**params), key


def test_a_sentence_that_opens_with_a_latin_value_still_reads_right_to_left() -> None:
    reply = t("bad_number", "ar-EG", value="abc", low=1, high=10)
    assert reply.startswith(f"{RLM}{FSI}abc{PDI} ")
    assert f"{FSI}1{PDI}" in reply and f"{FSI}10{PDI}" in reply
