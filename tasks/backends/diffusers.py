"""The GPU look: diffusers pipelines (img2img, ControlNet img2img, instruction editing; see
tasks/backends/kinds.py), one pipeline call per batch.

The fast path (measured on an H100, see BENCHMARKS.md and ../shared/ARCHITECTURE.md):
- fp16 on CUDA; attention through PyTorch's SDPA (diffusers' default processor on torch 2).
- Every image is fitted into one of a few fixed bucket shapes (aspect kept, mirrored border,
  cropped off again afterwards), so a batch has one shape and a compiled graph is reused.
- Optional torch.compile of the UNet (or UNet + VAE) with static shapes. Warm-up at worker
  start compiles every (bucket, batch size) pair the worker will see; batches are padded up
  to the next warmed size. After warm-up the compiler's stance is "eager_on_recompile": a shape
  nobody warmed runs uncompiled instead of stalling a job for minutes of compilation.
- channels_last is not used: it was slower in the reference run.

Imports torch and diffusers, so only make_backend("diffusers") should import this module.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import diffusers.utils
import numpy as np
import torch
from PIL import Image

from tasks.backends import kinds
from tasks.backends.base import PipelineOptions, WarmupReport
from tasks.buckets import bucket_for, bucket_shape, fit_inside
from tasks.styles import StylePreset

log = logging.getLogger("stylebot.worker")

# diffusers deprecated from_pretrained's torch_dtype for dtype (huggingface/diffusers#14205);
# releases before that ignore an unknown dtype= and would silently load fp32, so detect it.
DTYPE_KWARG = "dtype" if hasattr(diffusers.utils, "_resolve_dtype") else "torch_dtype"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class DiffusersBackend:
    """One cached pipeline per "what can share a pipeline" (StylePreset.pipeline_key: model,
    kind, ControlNet, edit class, LoRAs, scheduler), loaded lazily. Two styles of one model
    with different LoRAs or schedulers hold separate pipelines: LoRAs change the weights."""

    name = "diffusers"

    def __init__(self, options: PipelineOptions | None = None) -> None:
        self.options = opts = options or PipelineOptions()
        self.device = resolve_device(opts.device)
        self.dtype = resolve_dtype(opts.dtype, self.device)
        self.compiled = opts.compile != "off"
        check_quantize(opts.quantize, self.device)
        self._pipelines: dict[tuple[Any, ...], Any] = {}
        self._warm_graphs: int | None = None  # compiled graphs when warm-up ended
        # Pipelines keep per-call scheduler state: serialise loads and calls in threaded pools.
        self._lock = threading.Lock()

    # --- serving --------------------------------------------------------------------------

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Return one styled RGB image per input, in order: one pipeline call per size bucket
        (a worker's batch is claimed from one bucket, so that is one call)."""
        return self.finish(self.run(self.prepare(images, style)))

    def prepare(self, images: Sequence[Image.Image], style: StylePreset) -> Prepared:
        """CPU stage: group by bucket, fit each image into its bucket's shape (mirrored border),
        pad the group up to a warmed batch size, and stack it into one [0, 1] float tensor
        (in pinned memory on CUDA, so run's copy to the GPU does not wait for the host)."""
        rgb = [img.convert("RGB") for img in images]
        by_bucket: dict[str, list[int]] = {}
        for i, img in enumerate(rgb):
            by_bucket.setdefault(bucket_for(*img.size), []).append(i)
        groups = []
        for bucket, idx in by_bucket.items():
            box = bucket_shape(bucket, style.size)
            fits = [fit_inside(rgb[i].size, box) for i in idx]
            arrays = [
                _mirror_pad(np.asarray(rgb[i].resize(fit, Image.Resampling.LANCZOS)), box)
                for i, fit in zip(idx, fits, strict=True)
            ]
            target = self.padded_size(len(arrays))
            if style.batch_cap(target) == target:  # else run_split makes calls of max_batch
                arrays += [arrays[-1]] * (target - len(arrays))  # dropped after the call
            pixels = self._tensor(arrays)
            control = None
            if style.kind == "controlnet":
                control = self._tensor([kinds.control_image(a, style) for a in arrays])
            sizes = [rgb[i].size for i in idx]
            groups.append(Group(idx=idx, fits=fits, sizes=sizes, pixels=pixels, control=control))
        return Prepared(style=style, count=len(rgb), groups=groups)

    def _tensor(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """(h, w, 3) uint8 arrays as one (n, 3, h, w) float tensor in [0, 1]."""
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return pixels.pin_memory() if self.device.type == "cuda" else pixels

    def run(self, prepared: Prepared) -> Raw:
        """GPU stage: one pipeline call per group; outputs leave the GPU as uint8 arrays."""
        if not prepared.groups:
            return Raw(count=0, groups=[])
        with self._lock:
            pipe = self._pipeline(prepared.style)
            return self._run_groups(pipe, prepared)

    def finish(self, raw: Raw) -> list[Image.Image]:
        """CPU stage: arrays to images, the fitting undone (crop the border, original size)."""
        outs: list[Image.Image | None] = [None] * raw.count
        for group, pixels in raw.groups:
            for k, i in enumerate(group.idx):
                out = Image.fromarray(pixels[k], "RGB").crop((0, 0, *group.fits[k]))
                outs[i] = out.resize(group.sizes[k], Image.Resampling.LANCZOS).convert("RGB")
        return [out for out in outs if out is not None]

    def pipeline(self, style: StylePreset | str) -> Any:
        """The pipeline of `style` (or plain img2img of a model id), loading it on first use."""
        if isinstance(style, str):
            style = StylePreset(name="model", display={"en": style}, model=style, prompt="")
        with self._lock:
            return self._pipeline(style)

    def padded_size(self, n: int) -> int:
        """The batch size a call of `n` images runs at: the next warmed size when compiled."""
        if not self.compiled:
            return n
        return next((s for s in self.options.batch_sizes if s >= n), n)

    @property
    def graphs_since_warmup(self) -> int | None:
        """Graphs compiled after warm-up ended (the goal is 0); None before warm-up."""
        return None if self._warm_graphs is None else _graph_count() - self._warm_graphs

    def vram_peak_mib(self) -> float | None:
        """Peak CUDA memory this process has allocated, in MiB; None on CPU."""
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20

    def cuda_memory(self) -> tuple[int, int] | None:
        """CUDA memory this process has allocated, in bytes: (now, peak); None on CPU."""
        if self.device.type != "cuda":
            return None
        allocated = torch.cuda.memory_allocated(self.device)
        return allocated, torch.cuda.max_memory_allocated(self.device)

    def log_fields(self) -> str:
        """'vram_peak_mib=N new_graphs=M' where they apply: for the worker's batch log line."""
        fields = []
        if (peak := self.vram_peak_mib()) is not None:
            fields.append(f"vram_peak_mib={peak:.0f}")
        if self.compiled and (graphs := self.graphs_since_warmup) is not None:
            fields.append(f"new_graphs={graphs}")
        return " ".join(fields)

    # --- start-up -------------------------------------------------------------------------

    def warm_up(self, styles: Iterable[StylePreset]) -> WarmupReport:
        """Load every style's model and run it once per warmed (bucket, batch size) shape.

        Uncompiled, one call per model is enough (CUDA context, kernel selection). Compiled,
        each shape compiles its graph here rather than in a job; then the compiler is told to
        run any shape it has not seen eagerly instead of recompiling.
        """
        # Each pipeline warms with the settings of the first style that uses it.
        firsts: dict[tuple[Any, ...], StylePreset] = {}
        for style in styles:
            firsts.setdefault(style.pipeline_key(), style)
        load_s = warm_s = 0.0
        calls = 0
        if self.compiled:
            # Models of one architecture share graphs (Dynamo makes a module's parameters graph
            # inputs: two SD1.5 fine-tunes compile once); other architectures add their own.
            _allow_graphs(len(firsts) * len(self._warm_shapes()))
        with self._lock:
            graphs_before = _graph_count()
            for style in firsts.values():
                start = time.perf_counter()
                pipe = self._pipeline(style)
                _sync(self.device)
                load_s += time.perf_counter() - start
                start = time.perf_counter()
                for bucket, n in self._warm_shapes(style):
                    grey = Image.new("RGB", bucket_shape(bucket, style.size), (128, 128, 128))
                    self._run_groups(pipe, self.prepare([grey] * n, style))  # as jobs run
                    calls += 1
                _sync(self.device)
                warm_s += time.perf_counter() - start
            if self.compiled:
                torch.compiler.set_stance("eager_on_recompile")
            self._warm_graphs = _graph_count()
        return WarmupReport(
            models=len(firsts),
            load_s=load_s,
            warmup_s=warm_s,
            calls=calls,
            graphs=self._warm_graphs - graphs_before,
            vram_peak_mib=self.vram_peak_mib(),
        )

    def _warm_shapes(self, style: StylePreset | None = None) -> list[tuple[str, int]]:
        buckets = self.options.warmup_buckets
        if not self.compiled:
            return [(buckets[0], 1)] if buckets else []
        sizes = sorted({style.batch_cap(n) if style else n for n in self.options.batch_sizes})
        return [(b, n) for b in buckets for n in sizes]

    # --- internals ------------------------------------------------------------------------

    def _pipeline(self, style: StylePreset) -> Any:
        key = style.pipeline_key()
        pipe = self._pipelines.get(key)
        if pipe is None:
            pipe = self._pipelines[key] = self._load(style)
        return pipe

    def _load(self, style: StylePreset) -> Any:
        """Load the style's pipeline (its kind, scheduler and LoRAs) on this backend's device
        and dtype; quantize and compile its UNet or transformer if asked."""
        pipe = kinds.load_pipeline(style, {DTYPE_KWARG: self.dtype})
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        kinds.apply_scheduler(pipe, style)
        kinds.apply_loras(pipe, style)  # before compiling: fusing changes the weights
        if self.options.vae_slicing and hasattr(pipe.vae, "enable_slicing"):
            pipe.vae.enable_slicing()
        if self.options.quantize != "off":
            quantize_unet(kinds.denoiser(pipe), self.options.quantize)
        if self.compiled:
            opts = self.options
            kwargs: dict[str, Any] = {"dynamic": False, "backend": opts.compile_backend}
            if opts.compile_backend == "inductor" and opts.compile_mode != "default":
                kwargs["mode"] = opts.compile_mode
            kinds.denoiser(pipe).compile(**kwargs)  # in place: diffusers sees the same class
            if self.options.compile == "full" and hasattr(pipe.vae, "encoder"):
                pipe.vae.encoder.compile(**kwargs)
                pipe.vae.decoder.compile(**kwargs)
        return pipe

    def _run_groups(self, pipe: Any, prepared: Prepared) -> Raw:
        out = []
        for group in prepared.groups:
            pixels = group.pixels.to(self.device, non_blocking=True)
            control = None
            if group.control is not None:
                control = group.control.to(self.device, non_blocking=True)
            styled = self._run_split(pipe, pixels, control, prepared.style)[: len(group.idx)]
            # What diffusers' "pil" output does on the host, done on the device: one small copy.
            array = (styled.float() * 255).round().clamp(0, 255).to(torch.uint8)
            out.append((group, array.permute(0, 2, 3, 1).cpu().numpy()))
        return Raw(count=prepared.count, groups=out)

    def _run_split(
        self, pipe: Any, pixels: torch.Tensor, control: torch.Tensor | None, style: StylePreset
    ) -> torch.Tensor:
        """Calls of at most the style's max_batch images (one for single-photo pipelines)."""
        step = 1 if kinds.one_image_per_call(style) else style.batch_cap(len(pixels))
        outs = []
        for i in range(0, len(pixels), step):
            chunk = pixels[i : i + step]
            styled = self._run(
                pipe, chunk, None if control is None else control[i : i + step], style
            )
            if styled.shape[2:] != chunk.shape[2:]:  # a pipeline that rounds the shape
                styled = torch.nn.functional.interpolate(styled.float(), size=chunk.shape[2:])
            outs.append(styled)
        return torch.cat(outs)

    def _run(
        self, pipe: Any, pixels: torch.Tensor, control: torch.Tensor | None, style: StylePreset
    ) -> torch.Tensor:
        """One pipeline call: (n, 3, h, w) in [0, 1] in, the same out."""
        n = len(pixels)
        # One generator per image, all with the same seed: an image's result does not depend
        # on its batch-mates. CPU generators give the same noise whatever the device.
        generators = [torch.Generator("cpu").manual_seed(self.options.seed) for _ in range(n)]
        steps = style.steps
        if style.kind != "edit":
            steps = min_steps(style.steps, style.strength)
        kwargs = kinds.call_kwargs(pipe, style, pixels, control, generators, steps)
        return pipe(**kwargs).images


@dataclass(frozen=True)
class Group:
    """One bucket's images of a batch, fitted and stacked for one pipeline call."""

    idx: list[int]  # their places in the batch
    fits: list[tuple[int, int]]  # the fitted size of each inside the bucket's shape
    sizes: list[tuple[int, int]]  # the original sizes, restored by finish
    pixels: torch.Tensor  # (padded n, 3, h, w), float in [0, 1], host memory
    control: torch.Tensor | None = None  # controlnet: canny edges, the same shape


@dataclass(frozen=True)
class Prepared:
    style: StylePreset
    count: int
    groups: list[Group]


@dataclass(frozen=True)
class Raw:
    count: int
    groups: list[tuple[Group, np.ndarray]]  # uint8 (padded n, h, w, 3) per group


def min_steps(steps: int, strength: float) -> int:
    """Raise `steps` so that strength * steps leaves at least one denoising step to run."""
    return max(steps, math.ceil(1.0 / strength))


def _mirror_pad(arr: np.ndarray, canvas: tuple[int, int]) -> np.ndarray:
    """Extend an (h, w, 3) image right and down to `canvas` (w, h) by mirroring, which img2img
    restyles plausibly."""
    h, w = arr.shape[:2]
    if (w, h) == canvas:
        return arr
    return np.pad(arr, ((0, canvas[1] - h), (0, canvas[0] - w), (0, 0)), mode="symmetric")


def _graph_count() -> int:
    """Graphs TorchDynamo has compiled in this process (each new shape adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _allow_graphs(graphs: int) -> None:
    """Let Dynamo keep `graphs` compiled variants of one function (its default limit is 8;
    past the limit it silently runs eagerly). Doubled: a graph break adds a resumed frame."""
    config = torch._dynamo.config
    limit = max(8, 2 * graphs + 2)
    for name in ("recompile_limit", "cache_size_limit"):  # the new name, and the old alias
        if hasattr(config, name) and getattr(config, name) < limit:
            setattr(config, name, limit)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


QUANTIZE = ("off", "int8", "fp8")


def check_quantize(kind: str, device: torch.device) -> None:
    """fp8 needs a GPU with fp8 tensor cores (compute capability 8.9: Ada, Hopper and later)."""
    if kind not in QUANTIZE:
        raise ValueError(f"quantize {kind!r}: use {', '.join(QUANTIZE)}")
    if kind == "fp8" and (
        device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9)
    ):
        raise RuntimeError("quantize fp8 needs a CUDA GPU of compute capability 8.9 or newer")


def quantize_unet(unet: torch.nn.Module, kind: str) -> None:
    """Swap the UNet's linear layers for torchao's int8 or fp8 ones, in place: weights stored
    in the low precision, activations quantized per call (dynamic). Convolutions stay as they
    are. The bench prints the image difference against the unquantized pipeline."""
    try:
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            Int8DynamicActivationInt8WeightConfig,
            PerRow,
            quantize_,
        )
    except ImportError as exc:
        raise RuntimeError(f"quantize {kind} needs torchao (the diffusers extra): {exc}") from None

    def eligible(module: torch.nn.Module, _: str) -> bool:  # the kernels want multiples of 16
        return (
            isinstance(module, torch.nn.Linear)
            and module.in_features % 16 == 0
            and module.out_features % 16 == 0
        )

    config: Any = (
        Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
        if kind == "fp8"
        else Int8DynamicActivationInt8WeightConfig()
    )
    quantize_(unet, config, filter_fn=eligible)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it fails here, not mid-job."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return resolved


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto': fp16 on CUDA (about twice fp32's speed), fp32 on CPU (no fast fp16 kernels)."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: use auto, {', '.join(DTYPES)}")
    return DTYPES[name]
