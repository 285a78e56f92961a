"""The styling backend interface, and the options of the GPU pipeline (no torch imported here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from tasks.buckets import BUCKETS
from tasks.styles import StylePreset


class Backend(Protocol):
    name: str

    def stylize(self, images: Sequence[Image.Image], style: StylePreset) -> list[Image.Image]:
        """Return one styled RGB image per input, in order. Raise on failure."""
        ...


@runtime_checkable
class Staged(Protocol):
    """A backend whose call splits into CPU and GPU stages, so a worker can overlap them:
    `prepare` the next batch and `finish` the last one while `run` keeps the GPU busy.

    stylize(images, style) must equal finish(run(prepare(images, style))). prepare and finish
    run on other threads than run, concurrently with it: they must not take run's locks.
    """

    def prepare(self, images: Sequence[Image.Image], style: StylePreset) -> Any:
        """CPU: fit each image to its bucket, make the tensors the pipeline call takes."""
        ...

    def run(self, prepared: Any) -> Any:
        """GPU: the pipeline call(s), ending with the outputs copied to host memory."""
        ...

    def finish(self, raw: Any) -> list[Image.Image]:
        """CPU: decode `run`'s outputs to one RGB image per input, in order."""
        ...


class Stages:
    """prepare / run / finish of any backend: its own when it is Staged, else the whole
    stylize call is the run stage and the other two pass their input through."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.staged = isinstance(backend, Staged)

    def prepare(self, images: Sequence[Image.Image], style: StylePreset) -> Any:
        if isinstance(self.backend, Staged):
            return self.backend.prepare(images, style)
        return list(images), style

    def run(self, prepared: Any) -> Any:
        if isinstance(self.backend, Staged):
            return self.backend.run(prepared)
        images, style = prepared
        return self.backend.stylize(images, style)

    def finish(self, raw: Any) -> list[Image.Image]:
        if isinstance(self.backend, Staged):
            return self.backend.finish(raw)
        return list(raw)


@runtime_checkable
class WarmsUp(Protocol):
    """A backend with start-up work (load weights, compile) to do before it takes jobs."""

    def warm_up(self, styles: Iterable[StylePreset]) -> WarmupReport:
        """Get ready to serve `styles`; called once per worker process, before its heartbeat."""
        ...


@dataclass(frozen=True)
class PipelineOptions:
    """How the diffusers backend runs its pipelines (from the STYLEBOT_ settings)."""

    device: str = "auto"  # auto | cuda | cpu | cuda:N
    dtype: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU) | float16 | bfloat16 | float32
    compile: str = "off"  # off | unet | full (UNet, VAE encoder and decoder)
    compile_mode: str = "default"  # torch.compile mode (inductor only)
    compile_backend: str = "inductor"  # tests use "eager": graph capture without codegen
    batch_sizes: tuple[int, ...] = (1,)  # compiled: a batch is padded up to the next of these
    warmup_buckets: tuple[str, ...] = tuple(BUCKETS)  # shapes compiled (or tried) at warm-up
    vae_slicing: bool = False  # decode one image at a time: less VRAM, a little slower
    quantize: str = "off"  # off | int8 | fp8: the UNet's linear layers through torchao
    seed: int = 0


@dataclass(frozen=True)
class WarmupReport:
    """What a worker's start-up cost, for its `model_ready` log line and the GPU benchmark."""

    models: int
    load_s: float  # from_pretrained + moving to the device, all models
    warmup_s: float  # the warm-up calls (compilation included), all models
    calls: int  # warm-up pipeline calls: one per model, bucket and batch size
    graphs: int  # graphs compiled during warm-up (0 when not compiling)
    vram_peak_mib: float | None  # CUDA only

    def fields(self) -> str:
        vram = "n/a" if self.vram_peak_mib is None else f"{self.vram_peak_mib:.0f}"
        return (
            f"models={self.models} load_s={self.load_s:.1f} warmup_s={self.warmup_s:.1f}"
            f" calls={self.calls} graphs={self.graphs} vram_peak_mib={vram}"
        )
