"""`stylebot bench gpu`'s figures, its goals (issues 5 and 14) and the BENCHMARKS.md section."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bench.report import percentile, table

SECTION_TITLE = "## GPU path"
RATE_GOAL = 12.0  # images/s through the full queue path with a full queue
SPEEDUP_GOAL = 8.0  # × the naive baseline
LIMIT_GOAL = 0.5  # fraction of the compute limit
IDLE_GOAL_S = 0.5  # one request on an idle worker: its pipeline call


@dataclass(frozen=True)
class Workload:
    model: str
    size: int  # the photos are size × size
    steps: int
    strength: float
    guidance: float
    dtype: str
    compile: str  # what the compiled variants compile: unet | full
    max_batch: int
    batch_wait_ms: int

    def line(self) -> str:
        return (
            f"{self.model}, {self.size}×{self.size}, {self.steps} steps × strength"
            f" {self.strength:g}, CFG {self.guidance:g}, {self.dtype}, compiled variants"
            f" compile {self.compile}, max batch {self.max_batch}, batch wait"
            f" {self.batch_wait_ms} ms"
        )


@dataclass(frozen=True)
class Variant:
    """One way to run the worker: what `stylebot bench gpu --variants` names."""

    name: str
    label: str
    compile: bool  # compile the UNet (or what --compile names)
    overlap: bool
    compile_mode: str = "default"
    quantize: str = "off"


VARIANTS = {
    v.name: v
    for v in (
        Variant("batched", "batched, not compiled", compile=False, overlap=False),
        Variant("compiled", "batched, compiled", compile=True, overlap=False),
        Variant("overlapped", "compiled + CPU/GPU overlap", compile=True, overlap=True),
        Variant(
            "graphs",
            "compiled + overlap + CUDA graphs",
            compile=True,
            overlap=True,
            compile_mode="reduce-overhead",
        ),
        Variant("fp8", "compiled + overlap + fp8 UNet", compile=True, overlap=True, quantize="fp8"),
        Variant(
            "int8", "compiled + overlap + int8 UNet", compile=True, overlap=True, quantize="int8"
        ),
        Variant("overlapped-eager", "batched + overlap, not compiled", compile=False, overlap=True),
    )
}


@dataclass(frozen=True)
class Difference:
    """How far a lower-precision UNet's pictures are from the full-precision ones (same
    photos, same seed): mean absolute difference on 0-255 and PSNR."""

    images: int
    mean_abs: float
    psnr_db: float


@dataclass(frozen=True)
class Baseline:
    """The plain diffusers pipeline, one image per call (what a naive bot does)."""

    images: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds


@dataclass(frozen=True)
class WorkerPath:
    """Requests through Core.submit, Celery + Redis, our worker, results stored."""

    variant: Variant
    requests: int
    seconds: float  # burst published -> last job finished
    latencies_s: tuple[float, ...]  # publish -> finished, per request
    batches: tuple[int, ...]  # batch sizes the worker ran (its log)
    idle_call_s: float  # one request on an idle worker: the pipeline call (median of runs)
    idle_job_s: float  # ... its job's started -> finished (load input, call, store result)
    load_s: float | None  # the worker's model_ready line
    warmup_s: float | None
    graphs: int | None  # compiled at warm-up
    new_graphs: int | None  # compiled after warm-up (goal 0); None when not compiling
    vram_peak_mib: float | None
    gap_ms: float | None = None  # median GPU idle between the burst's pipeline calls
    difference: Difference | None = None  # quantized variants: against full precision

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


@dataclass(frozen=True)
class GpuReport:
    when: datetime
    command: str
    device: str  # e.g. "NVIDIA H100 80GB HBM3"
    software: str  # torch / diffusers / CUDA versions
    workload: Workload
    peak_flops: float  # measured matmul FLOP/s in the pipeline's dtype
    flops_per_image: float  # torch.utils.flop_counter over one batch-1 call
    baseline: Baseline
    workers: tuple[WorkerPath, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (variant, why) not run on this machine

    @property
    def limit_rate(self) -> float:
        """Images/s if every FLOP ran at the measured matmul peak."""
        return self.peak_flops / self.flops_per_image

    @property
    def worker(self) -> WorkerPath:
        """The fastest variant: the goals are judged on it."""
        return max(self.workers, key=lambda w: w.rate)


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    measured: str
    met: bool


def goals(r: GpuReport) -> list[Goal]:
    w = r.worker
    speedup = w.rate / r.baseline.rate
    share = w.rate / r.limit_rate
    out = [
        Goal("images/s, full queue path", f"≥ {RATE_GOAL:g}", f"{w.rate:.2f}", w.rate >= RATE_GOAL),
        Goal("× naive baseline", f"≥ {SPEEDUP_GOAL:g}×", f"{speedup:.2f}×", speedup >= 8),
        Goal("share of compute limit", f"≥ {LIMIT_GOAL:.0%}", f"{share:.1%}", share >= 0.5),
        Goal(
            "idle request, pipeline call",
            f"≤ {IDLE_GOAL_S:g} s",
            f"{w.idle_call_s:.3f} s",
            w.idle_call_s <= IDLE_GOAL_S,
        ),
    ]
    if w.new_graphs is not None:
        out.append(Goal("graphs compiled after warm-up", "0", str(w.new_graphs), w.new_graphs == 0))
    return out


def render(r: GpuReport) -> str:
    w, b = r.worker, r.baseline
    rows = [
        [
            f"naive: plain pipeline, {r.workload.dtype}, one image per call",
            f"{b.rate:.2f}",
            f"{b.seconds / b.images:.3f} s",
            "",
            "1.00×",
            f"{b.rate / r.limit_rate:.1%}",
            "",
        ]
    ]
    for v in r.workers:
        lat = sorted(v.latencies_s)
        rows.append(
            [
                f"{v.variant.name}: {v.variant.label}",
                f"{v.rate:.2f}",
                f"{percentile(lat, 50):.2f} s",
                f"{percentile(lat, 95):.2f} s",
                f"{v.rate / b.rate:.2f}×",
                f"{v.rate / r.limit_rate:.1%}",
                "n/a" if v.gap_ms is None else f"{v.gap_ms:.0f} ms",
            ]
        )
    rows += [[f"{name}: skipped ({why})", "", "", "", "", "", ""] for name, why in r.skipped]
    starts = [
        [
            v.variant.name,
            _s(v.load_s),
            _s(v.warmup_s),
            _n(v.graphs),
            _n(v.new_graphs),
            _mib(v.vram_peak_mib),
            f"{v.idle_call_s:.3f} s",
            _batches(v.batches),
            _difference(v.difference),
        ]
        for v in r.workers
    ]
    lines = [
        SECTION_TITLE,
        "",
        f"Measured {r.when:%Y-%m-%d %H:%M} UTC on **{r.device}** ({r.software}).",
        f"Workload: {r.workload.line()}.",
        "",
        "Reproduce:",
        "",
        "```",
        r.command,
        "```",
        "",
        f"Each stylebot row: {w.requests} requests held back, then published in one burst"
        " through Core.submit, Celery + Redis and a real `stylebot worker`, until every result"
        " is stored. GPU idle: the median time between one pipeline call's end and the next's"
        " start during the burst.",
        "",
        *table(
            ["path", "images/s", "p50 latency", "p95 latency", "vs naive", "of limit", "GPU idle"],
            rows,
        ),
        "",
        *table(
            [
                "variant",
                "model load",
                "warm-up",
                "graphs at warm-up",
                "graphs after",
                "VRAM peak",
                "idle request: call",
                "batches",
                "vs full precision",
            ],
            starts,
        ),
        "",
        f"Compute: {flop(r.flops_per_image)} per image (torch.utils.flop_counter, one call);"
        f" matmul peak {flop(r.peak_flops)}/s measured in the same run;"
        f" so the compute limit is {r.limit_rate:.2f} images/s and the fastest variant"
        f" ({w.variant.name}) reaches {w.rate / r.limit_rate:.1%} of it. Its idle request:"
        f" pipeline call {w.idle_call_s:.3f} s, job (load input, call, store)"
        f" {w.idle_job_s:.3f} s.",
        "",
        *table(
            ["goal", "target", "measured", ""],
            [[g.name, g.target, g.measured, "met" if g.met else "MISSED"] for g in goals(r)],
        ),
    ]
    return "\n".join(lines) + "\n"


def _difference(d: Difference | None) -> str:
    if d is None:
        return ""
    return f"mean abs {d.mean_abs:.2f}/255, PSNR {d.psnr_db:.1f} dB ({d.images} images)"


def flop(value: float) -> str:
    """A FLOP count with an SI prefix: '32.6 TFLOP', '1.4 GFLOP'."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if value >= scale:
            return f"{value / scale:.3g} {prefix}FLOP"
    return f"{value:.0f} FLOP"


def _batches(sizes: tuple[int, ...]) -> str:
    if not sizes:
        return "none logged"
    counts: dict[int, int] = {}
    for size in sizes:
        counts[size] = counts.get(size, 0) + 1
    return ", ".join(f"{n}× size {size}" for size, n in sorted(counts.items(), reverse=True))


def _s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _mib(value: float | None) -> str:
    return "n/a (CPU)" if value is None else f"{value / 1024:.1f} GiB"
