"""The photos people really send, end to end on Telegram: a HEIC file from an iPhone comes back
styled; an image too small to style is refused politely and costs nothing.

The Discord half lives in test_input_formats_discord.py: two stacks with workers in one module
would share the Redis queue, and a token taken by the other stack's worker is lost for a minute.
"""

from __future__ import annotations

import io

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from bots.core.messages import t
from tests.e2e.emulator import Call
from tests.e2e.harness import Stack, photo_bytes
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e


def styled_reply(stack: Stack, chat: int, reply_to: int) -> Call:
    """Wait for the styled photo that answers message `reply_to`."""

    def found() -> Call | None:
        replies = stack.emulator.calls_of("sendPhoto", chat_id=chat)
        return next(
            (c for c in replies if c.params["reply_parameters"]["message_id"] == reply_to), None
        )

    return stack.emulator.wait_for(found, 60.0, f"a result in chat {chat}")  # type: ignore[no-any-return]


def said(stack: Stack, chat: int, text: str) -> None:
    def texts() -> list[str]:
        return [c.params["text"] for c in stack.emulator.calls_of("sendMessage", chat_id=chat)]

    stack.emulator.wait_for(lambda: text in texts(), 20, repr(text))


def heic_bytes(seed: int, orientation: int = 1) -> bytes:
    """A photo as an iPhone sends it: HEIC, with the EXIF orientation as a HEIF transform."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    photo = Image.open(io.BytesIO(photo_bytes(seed)))
    pillow_heif.from_pillow(photo).save(out, quality=90, exif=exif.tobytes())
    return out.getvalue()


def test_a_heic_sent_as_a_file_comes_back_styled_and_upright(live: Stack, uid: int) -> None:
    heic = heic_bytes(50, orientation=6)  # taken holding the phone upright
    sent = live.emulator.send_document(
        uid, user(uid), heic, "image/heic", "IMG_0001.HEIC", caption="ghibli"
    )
    result = styled_reply(live, uid, sent["message_id"])

    assert result.params["caption"] == t("result", "en", style="Ghibli", left=2)
    styled = np.asarray(Image.open(io.BytesIO(result.files["photo"])), dtype=np.int16)
    upright = (
        Image.open(io.BytesIO(photo_bytes(50))).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    )
    original = np.asarray(upright, dtype=np.int16)
    assert styled.shape == original.shape == (320, 240, 3)
    assert np.abs(styled - original).mean() > 5
    assert live.used(f"telegram:{uid}") == 1


def test_an_image_too_small_to_style_is_refused_and_costs_nothing(live: Stack, uid: int) -> None:
    tiny = io.BytesIO()
    Image.new("RGB", (40, 300), (200, 120, 40)).save(tiny, "PNG")
    live.emulator.send_document(
        uid, user(uid), tiny.getvalue(), "image/png", "icon.png", caption="ghibli"
    )
    said(live, uid, t("image_too_small", "en", px=64))

    assert live.jobs(f"telegram:{uid}") == [] and live.used(f"telegram:{uid}") == 0
