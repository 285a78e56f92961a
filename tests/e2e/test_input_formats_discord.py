"""The photos people really send, end to end on Discord: an AVIF or HEIC attachment comes back
styled; an image too small to style is refused politely and costs nothing.

(Apart from test_input_formats.py so that only one stack's worker reads the shared Redis queue.)
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from bots.core.messages import t
from tests.e2e.discord_harness import DiscordStack
from tests.e2e.discord_steps import Person, answered, person, result_of
from tests.e2e.harness import photo_bytes

pytestmark = pytest.mark.e2e


def encoded(seed: int, fmt: str) -> bytes:
    photo, out = Image.open(io.BytesIO(photo_bytes(seed))), io.BytesIO()
    if fmt == "HEIF":
        pillow_heif.from_pillow(photo).save(out, quality=90)
    else:
        photo.save(out, fmt, quality=90)
    return out.getvalue()


def ask_with(
    stack: DiscordStack, who: Person, data: bytes, filename: str, content_type: str | None
) -> dict[str, Any]:
    """/ghibli image:<this file>"""
    emu = stack.emulator
    photo = emu.attachment(data, filename=filename, content_type=content_type)
    option = {"name": "image", "type": 11, "value": photo["id"]}
    return emu.slash("ghibli", who.user, who.channel, options=[option], attachments=[photo])


@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [
        ("AVIF", "photo.avif", "image/avif"),
        ("HEIF", "IMG_0002.HEIC", None),  # no declared type: the name tells
    ],
    ids=["avif", "heic-by-name"],
)
def test_an_avif_or_heic_attachment_comes_back_styled(
    discord_live: DiscordStack, fmt: str, filename: str, content_type: str | None
) -> None:
    stack, who, seed = discord_live, person(discord_live), 60 + len(fmt)
    asked = ask_with(stack, who, encoded(seed, fmt), filename, content_type)
    result = result_of(stack, asked)

    assert result["content"] == t("result", "en", style="Ghibli", left=2)
    styled = np.asarray(Image.open(io.BytesIO(stack.emulator.file_bytes(result))), np.int16)
    original = np.asarray(Image.open(io.BytesIO(photo_bytes(seed))).convert("RGB"), np.int16)
    assert styled.shape == original.shape and float(np.abs(styled - original).mean()) > 5
    assert stack.used(who.id) == 1


def test_an_image_too_small_to_style_is_refused_and_costs_nothing(
    discord_live: DiscordStack,
) -> None:
    stack, who, tiny = discord_live, person(discord_live), io.BytesIO()
    Image.new("RGB", (300, 40), (30, 90, 200)).save(tiny, "PNG")
    asked = ask_with(stack, who, tiny.getvalue(), "banner.png", "image/png")

    assert answered(stack, asked) == t("image_too_small", "en", px=64)
    assert stack.jobs(who.id) == [] and stack.used(who.id) == 0
