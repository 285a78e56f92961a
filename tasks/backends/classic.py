"""The CPU cartoon look: edge-preserving smoothing, banded colour, soft ink lines; no weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from tasks.styles import StylePreset

# Smoothing runs on a copy whose long side is about half the input's, clamped to this range:
# bilateral filtering costs grow with area, and flat colour survives the upscale unharmed.
MIN_WORK_SIDE = 256
MAX_WORK_SIDE = 768
CHROMA_STEP = 8.0  # Lab a/b band width: flattens hue noise without visible hue banding
BAND_SOFTNESS = 3.0  # slope of the ramp between bands; hard steps speckle where noise crosses
DETAIL_MIX = 0.2  # share of unbanded colour kept, so faces keep a little shading


@dataclass(frozen=True)
class ClassicParams:
    """Parameters of the look; tasks/styles.toml documents their meaning and ranges."""

    levels: int = 10
    smooth: int = 2
    line: float = 0.6
    saturation: float = 1.2
    warmth: float = 0.3
    contrast: float = 1.05

    @classmethod
    def from_style(cls, classic: Mapping[str, Any]) -> ClassicParams:
        """Build from a preset's `classic` table; missing keys take defaults, values are clamped."""
        d = cls()

        def get(key: str, lo: float, hi: float) -> float:
            return float(np.clip(classic.get(key, getattr(d, key)), lo, hi))

        return cls(
            levels=int(get("levels", 2, 64)),
            smooth=int(get("smooth", 0, 6)),
            line=get("line", 0.0, 1.0),
            saturation=get("saturation", 0.0, 3.0),
            warmth=get("warmth", -1.0, 1.0),
            contrast=get("contrast", 0.2, 3.0),
        )


class ClassicBackend:
    """OpenCV cartoon filter, cheap enough to run per request on the worker's CPU."""

    name = "classic"

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Return one cartoon-styled RGB image per input, in order."""
        params = ClassicParams.from_style(style.classic)
        return [cartoonize(img, params) for img in images]


def cartoonize(img: Image.Image, params: ClassicParams) -> Image.Image:
    """Apply the look to one image of any mode; the result is RGB at the input's size."""
    rgb = np.asarray(img.convert("RGB"))
    h, w = rgb.shape[:2]
    smooth = _smooth(_downscale(rgb), params.smooth)
    lab = cv2.LUT(cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB), _lab_lut(params))
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32)
    out = (out * _ink(smooth, params.line)[..., None]).astype(np.uint8)
    if out.shape != rgb.shape:
        # Linear upscaling leaves band edges and ink lines soft, as if brushed.
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return Image.fromarray(out, "RGB")


def _downscale(rgb: np.ndarray) -> np.ndarray:
    """Shrink to the working size; never enlarges."""
    long_side = max(rgb.shape[:2])
    side = min(long_side, max(MIN_WORK_SIDE, min(MAX_WORK_SIDE, long_side // 2)))
    if side >= long_side:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * side / long_side)), max(1, round(h * side / long_side)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _smooth(rgb: np.ndarray, passes: int) -> np.ndarray:
    """Flatten texture while keeping edges: repeated small bilateral filters."""
    for _ in range(passes):
        rgb = cv2.bilateralFilter(rgb, 7, 40, 5)
    return rgb


def _lab_lut(p: ClassicParams) -> np.ndarray:
    """One per-channel Lab lookup: contrast, saturation and warmth, then soft banding."""
    x = np.arange(256, dtype=np.float32)
    light = (x - 128.0) * p.contrast + 128.0
    # A warm cast pushes b* towards yellow and a* slightly towards red; cool does the reverse.
    a = (x - 128.0) * p.saturation + 4.0 * p.warmth
    b = (x - 128.0) * p.saturation + 12.0 * p.warmth
    tones = np.stack([light, a + 128.0, b + 128.0], axis=1)
    banded = np.stack(
        [
            _bands(light, 255.0 / (p.levels - 1)),
            _bands(a, CHROMA_STEP) + 128.0,
            _bands(b, CHROMA_STEP) + 128.0,
        ],
        axis=1,
    )
    lut = (1 - DETAIL_MIX) * banded + DETAIL_MIX * tones
    return np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3)


def _bands(x: np.ndarray, step: float) -> np.ndarray:
    """Quantise to multiples of `step`, with a short linear ramp mid-band instead of a step."""
    t = x / step
    base = np.floor(t)
    frac = np.clip((t - base - 0.5) * BAND_SOFTNESS + 0.5, 0.0, 1.0)
    return (base + frac) * step


def _ink(rgb: np.ndarray, strength: float) -> np.ndarray:
    """Multiplicative line mask (1 = no ink) from locally dark detail, softened."""
    gray = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 5)
    edges = cv2.adaptiveThreshold(
        gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 9, 8
    )
    soft = cv2.GaussianBlur(edges, (3, 3), 0).astype(np.float32) / 255.0
    return 1.0 - strength * soft
