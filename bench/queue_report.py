"""What a run of the queue benchmark measured, and the goals it is held to: the dataclasses a
run fills, best pass per process count, ratios to one process, PASS/MISS verdicts. Pure (no I/O);
bench.queue_render turns a Report into markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bench.cpu import CpuUse
from bench.host import Machine
from bench.report import Spread, ms

SECTION_TITLE = "## Queue path (CPU)"
P50_GOAL_MS = 25.0
P99_GOAL_MS = 100.0
SCALING_GOAL = 0.85  # k processes give at least this times k times one process's throughput
SCALED_KS = (2, 4, 8)
# The latency phase's consecutive stages (their per-request sum is the total) and views that
# overlap them; the keys name the samples the run takes.
STAGES = (
    ("pre", "request → job's `created_at` taken (BEGIN, user upsert, ban, idempotency)"),
    ("admit", "→ publish starts (admission, quota, decode, input PNG, job row + reserve)"),
    ("publish", "Celery publish (`send_task` to Redis)"),
    ("deliver", "→ claim starts, `started_at` (Redis → worker → pool process → task)"),
    ("work", "→ `finished_at` (claim SQL, load input, null backend, result JPEG + fsync)"),
)
EXTRAS = (
    ("call", "the `submit()` call as the caller sees it"),
    ("seen", "finished_at → seen committed by this benchmark's poll"),
    ("visible", "request → result seen committed (poll)"),
)


@dataclass(frozen=True)
class Latency:
    requests: int
    warmup: int
    total: Spread  # request -> finished_at
    stages: tuple[tuple[str, Spread], ...]  # consecutive; their per-request sum is the total
    extras: tuple[tuple[str, Spread], ...]  # overlapping views (the submit call, the poll)
    cpu: CpuUse | None = None  # over the measured requests
    # Per request on the submitting side: SQL statements, commits, pool checkouts (each pings).
    submit_sql: tuple[float, float, float] | None = None
    over_100ms: int = 0  # requests whose total exceeded 100 ms
    checkpoints: int | None = None  # PostgreSQL checkpoints (server-wide) during the requests


@dataclass(frozen=True)
class ScalingRun:
    processes: int
    jobs: int
    span_s: float  # first started_at -> last finished_at
    cpu: CpuUse | None = None  # from the publish burst until every job had finished
    pass_no: int = 1  # the process counts are run in passes (1, 2, 4, 8, then again)

    @property
    def images_per_s(self) -> float:
        return self.jobs / self.span_s

    @property
    def cpu_ms_per_job(self) -> float | None:
        return None if self.cpu is None else self.cpu.system_s * 1000 / self.jobs


@dataclass(frozen=True)
class Report:
    when: datetime
    command: str
    machine: Machine
    latency: Latency
    runs: tuple[ScalingRun, ...]
    sleep_ms: int
    jobs_per_process: int
    poll_ms: float
    admit_rate: float | None = None  # jobs/s through Core.submit while the scaling jobs queued


def best_runs(runs: Sequence[ScalingRun]) -> dict[int, ScalingRun]:
    """Per process count, the pass with the highest throughput (the least disturbed one)."""
    best: dict[int, ScalingRun] = {}
    for r in runs:
        if r.processes not in best or r.images_per_s > best[r.processes].images_per_s:
            best[r.processes] = r
    return dict(sorted(best.items()))


def ratios(runs: Sequence[ScalingRun]) -> dict[int, float]:
    """Each process count's best throughput over one process's best (empty without k=1)."""
    best = best_runs(runs)
    if 1 not in best:
        return {}
    base = best[1].images_per_s
    return {k: r.images_per_s / base for k, r in best.items()}


@dataclass(frozen=True)
class Goal:
    text: str
    measured: str
    met: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.met else "MISS"


def goals(report: Report) -> list[Goal]:
    lat = report.latency.total
    out = [
        Goal(f"overhead p50 ≤ {P50_GOAL_MS:g} ms", ms(lat.p50), lat.p50 <= P50_GOAL_MS),
        Goal(f"overhead p99 ≤ {P99_GOAL_MS:g} ms", ms(lat.p99), lat.p99 <= P99_GOAL_MS),
    ]
    rel = ratios(report.runs)
    for k in SCALED_KS:
        if k in rel:
            need = SCALING_GOAL * k
            out.append(Goal(f"{k} processes ≥ {need:.2f}× one", f"{rel[k]:.2f}×", rel[k] >= need))
    return out
