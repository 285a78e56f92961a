"""The GPU look: Stable Diffusion img2img through diffusers, one pipeline call per batch.

Imports torch and diffusers, so only make_backend("diffusers") should import this module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import diffusers.utils
import numpy as np
import torch
from diffusers import AutoPipelineForImage2Image
from PIL import Image

from tasks.styles import StylePreset

SIZE_MULTIPLE = 8  # the VAE downsamples by 8; other sizes get cropped or resized by diffusers
# diffusers deprecated from_pretrained's torch_dtype for dtype (huggingface/diffusers#14205);
# releases before that ignore an unknown dtype= and would silently load fp32, so detect it.
DTYPE_KWARG = "dtype" if hasattr(diffusers.utils, "_resolve_dtype") else "torch_dtype"


class DiffusersBackend:
    """img2img with one cached pipeline per model id (hub id or local path), loaded lazily."""

    name = "diffusers"

    def __init__(self, device: str = "auto", seed: int = 0) -> None:
        self.device = _resolve_device(device)
        # fp16 halves memory and roughly doubles throughput on GPUs; CPUs lack fast fp16 kernels.
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.seed = seed
        self._pipelines: dict[str, Any] = {}
        # Pipelines keep per-call scheduler state: serialise loads and calls in threaded pools.
        self._lock = threading.Lock()

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Return one styled RGB image per input, in order, from a single pipeline call."""
        if not images:
            return []
        rgb = [img.convert("RGB") for img in images]
        sizes = [work_size(img.size, style.size) for img in rgb]
        # One call needs one shape: pad smaller working images up to the batch's largest.
        canvas = (max(w for w, _ in sizes), max(h for _, h in sizes))
        batch = [
            _pad(img.resize(s, Image.Resampling.LANCZOS), canvas)
            for img, s in zip(rgb, sizes, strict=True)
        ]
        with self._lock:
            outs = self._run(self._pipeline(style.model), batch, style)
        return [
            out.crop((0, 0, *s)).resize(img.size, Image.Resampling.LANCZOS).convert("RGB")
            for out, s, img in zip(outs, sizes, rgb, strict=True)
        ]

    def pipeline(self, model: str) -> Any:
        """The pipeline for `model`, loading it on first use (e.g. to warm a worker up)."""
        with self._lock:
            return self._pipeline(model)

    def _pipeline(self, model: str) -> Any:
        pipe = self._pipelines.get(model)
        if pipe is None:
            pipe = self._pipelines[model] = self._load(model)
        return pipe

    def _load(self, model: str) -> Any:
        """Load `model` for img2img on this backend's device and dtype."""
        pipe = AutoPipelineForImage2Image.from_pretrained(
            model,
            **{DTYPE_KWARG: self.dtype},
            # No NSFW checker (a product decision): it is a second model to load and hold.
            safety_checker=None,
            requires_safety_checker=False,
        )
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _run(self, pipe: Any, batch: list[Image.Image], style: StylePreset) -> list[Image.Image]:
        """One pipeline call for the whole batch."""
        n = len(batch)
        # One generator per image, all with the same seed: an image's result does not depend
        # on its batch-mates. CPU generators give the same noise whatever the device.
        generators = [torch.Generator("cpu").manual_seed(self.seed) for _ in range(n)]
        result = pipe(
            prompt=[style.prompt] * n,
            negative_prompt=[style.negative_prompt] * n,
            image=batch,
            strength=style.strength,
            num_inference_steps=min_steps(style.steps, style.strength),
            guidance_scale=style.guidance,
            generator=generators,
            output_type="pil",
        )
        return list(result.images)


def work_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(w, h) with the long side `long_side`, aspect kept, both sides multiples of 8."""
    w, h = size
    scale = long_side / max(w, h)
    snap = SIZE_MULTIPLE
    return max(snap, round(w * scale / snap) * snap), max(snap, round(h * scale / snap) * snap)


def min_steps(steps: int, strength: float) -> int:
    """Raise `steps` so that strength * steps leaves at least one denoising step to run."""
    return max(steps, math.ceil(1.0 / strength))


def _pad(img: Image.Image, canvas: tuple[int, int]) -> Image.Image:
    """Extend `img` right and down to `canvas` by mirroring, which img2img restyles plausibly."""
    w, h = img.size
    if (w, h) == canvas:
        return img
    arr = np.asarray(img)
    padded = np.pad(arr, ((0, canvas[1] - h), (0, canvas[0] - w), (0, 0)), mode="symmetric")
    return Image.fromarray(padded, "RGB")


def _resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it fails here, not mid-job."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return resolved
