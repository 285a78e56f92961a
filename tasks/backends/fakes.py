"""Fake backends for queue benchmarks and tests: no styling, predictable cost."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence

from PIL import Image

from tasks.styles import StylePreset


class NullBackend:
    """Returns RGB copies of its inputs at once: measures the queue's own overhead."""

    name = "null"

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Return an RGB copy of each input, in order."""
        return [_rgb_copy(img) for img in images]


class SleepBackend:
    """Sleeps a fixed time per call, then returns copies: stands in for a GPU's batch latency."""

    name = "sleep"

    def __init__(self, ms: int = 200) -> None:
        if ms < 0:
            raise ValueError(f"sleep backend: ms must be >= 0, got {ms}")
        self.ms = ms

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Sleep `ms` once for the whole batch, then return an RGB copy of each input."""
        time.sleep(self.ms / 1000.0)
        return [_rgb_copy(img) for img in images]


class CrashBackend:
    """Kills its own process on every call, as a poison input that crashes the GPU process
    would: the fault tests check that such a job stops at its attempt cap, refunded."""

    name = "crash"

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: the process was killed")


def _rgb_copy(img: Image.Image) -> Image.Image:
    # convert() returns a new image even when the mode already matches, so callers may mutate it.
    return img.convert("RGB")
