"""Time ClassicBackend on one CPU core: median seconds per 1024x1024 photo over 10 runs.

Run: .venv/bin/python bench/classic_speed.py [--size 1024] [--runs 10] [--save out.png]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from tasks.backends.classic import ClassicBackend
from tasks.styles import load_styles


def photo_like(size: int, seed: int = 0) -> Image.Image:
    """A synthetic outdoor portrait: sky, sun, textured hills, a shaded face, sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.stack([90 + 120 * y, 150 + 80 * y, 235 - 10 * y], axis=-1)  # sky gradient
    sun = np.exp(-((x - 0.8) ** 2 + (y - 0.18) ** 2) / 0.004)[..., None]
    img = img * (1 - sun) + np.array([255, 240, 200]) * sun
    texture = cv2.resize(rng.normal(0, 1, (size // 16, size // 16)), (size, size))
    hills = y > 0.55 + 0.08 * np.sin(x * 9) + 0.02 * texture
    img[hills] = (
        np.array([60, 120, 50]) + 25 * texture[hills][:, None] + 60 * (1 - y[hills])[:, None]
    )
    face = ((x - 0.4) / 0.17) ** 2 + ((y - 0.5) / 0.23) ** 2
    shade = np.clip(1.15 - 0.6 * (x - 0.3), 0.6, 1.2)[face < 1][:, None]
    img[face < 1] = np.array([225, 175, 140]) * shade
    for ex in (0.34, 0.46):  # eyes
        img[((x - ex) / 0.025) ** 2 + ((y - 0.45) / 0.015) ** 2 < 1] = (40, 30, 25)
    img += rng.normal(0, 6, img.shape)
    img = cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (3, 3), 0)
    return Image.fromarray(img, "RGB")


def main() -> None:
    """Time the backend and print the median."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--style", default="ghibli")
    ap.add_argument("--save", type=Path, help="also write the styled image here")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # a worker shares its CPU; measure the single-core cost
    backend, style = ClassicBackend(), load_styles()[args.style]
    photo = photo_like(args.size)
    backend.stylize([photo], style)  # warm-up: first-call allocations and lazy init
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        out = backend.stylize([photo], style)
        times.append(time.perf_counter() - start)
    print(
        f"classic {args.style} {args.size}x{args.size}: median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs, 1 thread)"
    )
    if args.save:
        out[0].save(args.save)


if __name__ == "__main__":
    main()
