"""`stylebot bench gpu`'s figures, its goals (issue 5) and the BENCHMARKS.md section."""

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
    compile: str
    max_batch: int
    batch_wait_ms: int

    def line(self) -> str:
        return (
            f"{self.model}, {self.size}×{self.size}, {self.steps} steps × strength"
            f" {self.strength:g}, CFG {self.guidance:g}, {self.dtype}, compile {self.compile},"
            f" max batch {self.max_batch}, batch wait {self.batch_wait_ms} ms"
        )


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
    worker: WorkerPath

    @property
    def limit_rate(self) -> float:
        """Images/s if every FLOP ran at the measured matmul peak."""
        return self.peak_flops / self.flops_per_image


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
    lat = sorted(w.latencies_s)
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
        *table(
            ["path", "images/s", "p50 latency", "p95 latency", "vs baseline"],
            [
                [
                    f"naive: plain pipeline, {r.workload.dtype}, one image per call",
                    f"{b.rate:.2f}",
                    f"{b.seconds / b.images:.3f} s",
                    "",
                    "1.00×",
                ],
                [
                    f"stylebot: {w.requests} requests waiting, Celery + Redis, worker, stored",
                    f"{w.rate:.2f}",
                    f"{percentile(lat, 50):.2f} s",
                    f"{percentile(lat, 95):.2f} s",
                    f"{w.rate / b.rate:.2f}×",
                ],
            ],
        ),
        "",
        f"Compute: {flop(r.flops_per_image)} per image (torch.utils.flop_counter, one call);"
        f" matmul peak {flop(r.peak_flops)}/s measured in the same run;"
        f" so the compute limit is {r.limit_rate:.2f} images/s and the worker path reaches"
        f" {w.rate / r.limit_rate:.1%} of it.",
        "",
        f"Idle worker, one request: pipeline call {w.idle_call_s:.3f} s, job (load input, call,"
        f" store result) {w.idle_job_s:.3f} s. Batches the worker ran: {_batches(w.batches)}.",
        "",
        f"Worker start: model load {_s(w.load_s)}, warm-up {_s(w.warmup_s)}"
        f" ({_n(w.graphs)} graphs compiled); graphs compiled after warm-up: {_n(w.new_graphs)};"
        f" VRAM peak {_mib(w.vram_peak_mib)}.",
        "",
        *table(
            ["goal", "target", "measured", ""],
            [[g.name, g.target, g.measured, "met" if g.met else "MISSED"] for g in goals(r)],
        ),
    ]
    return "\n".join(lines) + "\n"


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
