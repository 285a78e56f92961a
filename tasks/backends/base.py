"""The styling backend interface: a list of images and a style in, a list of images out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from PIL import Image

from tasks.styles import StylePreset


class Backend(Protocol):
    name: str

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Return one styled RGB image per input, in order. Raise on failure."""
        ...
