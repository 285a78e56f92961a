"""The Discord adapter's pure parts: refusals before download, which URLs may be fetched,
custom ids, fitting a result under the upload limit, localisation and the style option."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import discord
import numpy as np
import pytest
from discord import app_commands
from PIL import Image

from bots.core.messages import t
from bots.discord.catalog import CatalogTranslator, text
from bots.discord.files import fitted
from bots.discord.translate import (
    AGAIN,
    PICK,
    ImageRef,
    content_type_of,
    is_discord_url,
    nonce_for,
    refusal,
)
from bots.discord.tree import MAX_CHOICES, _stylize
from tasks.styles import StylePreset

pytestmark = pytest.mark.unit

MB = 1024 * 1024
API = "https://discord.com/api/v10"


@pytest.mark.parametrize(
    ("ref", "key"),
    [
        (ImageRef("u", 1000, "image/jpeg"), None),
        (ImageRef("u", 1000, "image/webp"), None),
        (ImageRef("u", 1000, "application/pdf"), "image_unsupported_format"),
        (ImageRef("u", 1000, "image/gif"), "image_unsupported_format"),
        (ImageRef("u", 1000, None), "image_unsupported_format"),
        (ImageRef("u", 21 * MB, "image/png"), "image_too_big_file"),
        (ImageRef("u", None, "image/png"), None),  # unknown size: the download's limit decides
    ],
)
def test_refusal_before_download(ref: ImageRef, key: str | None) -> None:
    assert refusal(ref, 20 * MB) == key


def test_the_type_comes_from_the_name_when_discord_declares_none() -> None:
    assert content_type_of(None, "Me.JPG") == "image/jpeg"
    assert content_type_of("image/png; charset=binary", "x.bin") == "image/png"
    assert content_type_of(None, "cv.pdf") is None


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://cdn.discordapp.com/attachments/1/2/a.jpg?ex=1", True),
        ("https://media.discordapp.net/attachments/1/2/a.jpg", True),
        ("http://cdn.discordapp.com/attachments/1/2/a.jpg", False),  # not over TLS
        ("https://evil.example/cdn.discordapp.com/a.jpg", False),
        ("https://cdn.discordapp.com.evil.example/a.jpg", False),
        ("file:///etc/passwd", False),
        ("http://127.0.0.1:6379/", False),  # an internal service
    ],
)
def test_only_discord_urls_are_fetched(url: str, ok: bool) -> None:
    assert is_discord_url(url, API) is ok


def test_a_self_hosted_api_host_may_serve_its_attachments() -> None:
    assert is_discord_url("http://127.0.0.1:5555/attachments/1/a.png", "http://127.0.0.1:5555/api")


def test_custom_ids_fit_discord_and_parse_back() -> None:
    job = "0123456789abcdef" * 2
    again = f"sb:again:{job}:{'s' * 32}"
    assert len(again) <= 100 and AGAIN.fullmatch(again)
    assert AGAIN.fullmatch(f"sb:again:{job}:../x") is None
    assert PICK.fullmatch("sb:pick:10485760") and len(nonce_for(job)) == 25


def _noisy(path: Path, side: int) -> Path:
    pixels = np.random.default_rng(1).integers(0, 255, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=98)
    return path


def test_a_result_over_the_limit_is_re_encoded_to_fit(tmp_path: Path) -> None:
    path = _noisy(tmp_path / "r.jpg", 1024)
    size = path.stat().st_size
    assert fitted(path, size) == path.read_bytes()  # fits: sent as stored
    smaller = fitted(path, size // 3)
    assert len(smaller) <= size // 3
    with Image.open(io.BytesIO(smaller)) as im:
        assert im.format == "JPEG" and im.size[0] <= 1024


def test_a_result_far_over_the_limit_is_downscaled(tmp_path: Path) -> None:
    path = _noisy(tmp_path / "r.jpg", 1024)
    small = fitted(path, 60_000)
    with Image.open(io.BytesIO(small)) as im:
        assert len(small) <= 60_000 and im.size[0] < 1024


def test_the_translator_uses_the_catalog_for_other_languages_only() -> None:
    translator = CatalogTranslator()
    string = text("cmd_quota")
    assert str(string) == t("cmd_quota", "en")
    context = cast(Any, SimpleNamespace(location=None, data=None))

    def translate(locale: discord.Locale) -> str | None:
        return asyncio.run(translator.translate(string, locale, context))

    assert translate(discord.Locale.american_english) is None  # the default text stands
    # Discord has no Arabic client locale; every locale it has falls back to English here.
    assert all(translate(locale) is None for locale in discord.Locale)


def _styles(n: int) -> dict[str, StylePreset]:
    fields = {"model": "m", "prompt": "p", "negative_prompt": "", "strength": 0.5}
    return {
        f"s{i}": StylePreset(name=f"s{i}", display={"en": f"Style {i}"}, **fields)  # type: ignore[arg-type]
        for i in range(n)
    }


def test_stylize_offers_choices_up_to_25_styles_then_autocompletes() -> None:
    flows = cast(Any, SimpleNamespace())
    few = _stylize(flows, _styles(3))
    assert [c.value for c in few._params["style"].choices] == ["s0", "s1", "s2"]
    many = _stylize(flows, _styles(MAX_CHOICES + 5))
    assert not many._params["style"].choices and many._params["style"].autocomplete
    complete = cast(Any, many._params["style"].autocomplete)
    interaction = cast(Any, SimpleNamespace(user=SimpleNamespace(id=1, name="a"), locale="en-US"))
    found: list[app_commands.Choice[str]] = asyncio.run(complete(interaction, "style 2"))
    assert [c.value for c in found] == [
        "s2",
        "s20",
        "s21",
        "s22",
        "s23",
        "s24",
        "s25",
        "s26",
        "s27",
        "s28",
        "s29",
    ][:MAX_CHOICES]
