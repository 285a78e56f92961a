"""A result file that fits the upload limit where it goes: re-encoded, then downscaled."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bots.core import Undeliverable

QUALITIES = (85, 70, 55)
SHRINK = 0.75
MIN_SIDE = 256


def fitted(path: Path, limit: int) -> bytes:
    """The JPEG's bytes as stored, or re-encoded smaller until they fit `limit`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:  # purged before it could be sent: no retry will find it
        raise Undeliverable("result file missing") from exc
    if len(data) <= limit:
        return data
    with Image.open(io.BytesIO(data)) as im:
        image = im.convert("RGB")
    while True:
        for quality in QUALITIES:
            out = _jpeg(image, quality)
            if len(out) <= limit:
                return out
        if min(image.size) <= MIN_SIDE:
            return out  # as small as it sensibly gets; Discord will say if it is still too big
        size = (max(1, round(image.width * SHRINK)), max(1, round(image.height * SHRINK)))
        image = image.resize(size, Image.Resampling.LANCZOS)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()
