"""Working-size buckets: a few fixed shapes, so batches share one shape and compiled GPU
graphs are reused instead of recompiled for every aspect ratio."""

from __future__ import annotations

SQUARE, PORTRAIT, LANDSCAPE = "512x512", "512x768", "768x512"
BUCKETS = {SQUARE: (512, 512), PORTRAIT: (512, 768), LANDSCAPE: (768, 512)}


def bucket_for(width: int, height: int) -> str:
    """The bucket whose aspect ratio is closest to width:height."""
    aspect = width / max(height, 1)
    if aspect < 0.8:
        return PORTRAIT
    if aspect > 1.25:
        return LANDSCAPE
    return SQUARE
