"""Working-size buckets: a few fixed shapes, so batches share one shape and compiled GPU
graphs are reused instead of recompiled for every aspect ratio.

A bucket is named by its shape for a model whose native square side is 512 (SD1.5); a style
whose model works at another size scales every bucket by size / 512.
"""

from __future__ import annotations

SQUARE, PORTRAIT, LANDSCAPE = "512x512", "512x768", "768x512"
BUCKETS = {SQUARE: (512, 512), PORTRAIT: (512, 768), LANDSCAPE: (768, 512)}
SNAP = 8  # the VAE downsamples by 8: working sides are multiples of it


def bucket_for(width: int, height: int) -> str:
    """The bucket whose aspect ratio is closest to width:height."""
    aspect = width / max(height, 1)
    if aspect < 0.8:
        return PORTRAIT
    if aspect > 1.25:
        return LANDSCAPE
    return SQUARE


def bucket_shape(bucket: str, base: int = 512) -> tuple[int, int]:
    """(w, h) in pixels of `bucket` for a model whose native square side is `base`."""
    w, h = BUCKETS[bucket]
    return _snap(w * base / 512), _snap(h * base / 512)


def fit_inside(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest (w, h) with `size`'s aspect that fits in `box`; at least 1 pixel a side."""
    w, h = size
    scale = min(box[0] / w, box[1] / h)
    return min(box[0], max(1, round(w * scale))), min(box[1], max(1, round(h * scale)))


def parse_buckets(text: str) -> tuple[str, ...]:
    """A comma-separated list of bucket names ("" means all), in BUCKETS order; ValueError."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = names - BUCKETS.keys()
    if unknown:
        known = ", ".join(BUCKETS)
        raise ValueError(f"unknown bucket(s) {', '.join(sorted(unknown))}; use {known}")
    return tuple(b for b in BUCKETS if b in names or not names)


def _snap(value: float) -> int:
    return max(SNAP, round(value / SNAP) * SNAP)
