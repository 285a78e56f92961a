"""Prometheus metrics: what bots and workers record (storage.metrics_endpoint serves them).

Labels are tiers, styles, reasons, outcomes and platforms: never a person, a chat or a job.

prometheus_client is imported on first use, not with this module: it decides once, when it is
imported, whether values live in this process or in files under PROMETHEUS_MULTIPROC_DIR. A
`stylebot worker` serving metrics points that at a fresh directory before anything records
(storage.metrics_endpoint.use_multiprocess_dir), so what its prefork pool children record
reaches the one endpoint its main process serves. The queue's figures from SQL are the bots'
(quota.gauges).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

# Waits are promised in minutes (free 10, plus 20, pro 30 by default).
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600)
SERVICE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 180)
IDLE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120)
WARMUP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Spec:
    kind: Literal["counter", "gauge", "histogram"]
    name: str  # a counter's samples get `_total`, a histogram's `_bucket`, `_sum`, `_count`
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    mode: Literal["liveall", "livemax"] = "liveall"  # a gauge's in a prefork worker


SPECS = (
    Spec(
        "counter",
        "stylebot_admissions",
        "Image requests the core decided: outcome admitted|refused|duplicate|reused, and why",
        ("outcome", "reason"),
    ),
    Spec(
        "histogram",
        "stylebot_job_wait_seconds",
        "Done jobs: from the request to the start of its styling",
        ("tier",),
        WAIT_BUCKETS,
    ),
    Spec(
        "histogram",
        "stylebot_job_service_seconds",
        "Done jobs: from the start of styling to the stored result (a batch shares it)",
        ("tier",),
        SERVICE_BUCKETS,
    ),
    Spec("counter", "stylebot_images", "Styled images stored", ("tier", "style")),
    Spec(
        "counter", "stylebot_job_failures", "Jobs failed (and refunded), by error code", ("reason",)
    ),
    Spec("counter", "stylebot_redeliveries", "Jobs claimed again on a later attempt"),
    Spec(
        "counter",
        "stylebot_jobs_reaped",
        "Running jobs whose worker fell silent: requeued, or failed past the attempt cap",
        ("outcome",),
    ),
    Spec("counter", "stylebot_tokens_reissued", "Celery tokens sent again for lost ones"),
    Spec(
        "counter",
        "stylebot_delivery_attempts",
        "Replies the delivery loop tried to send: sent|failed (retried later)|abandoned",
        ("platform", "outcome"),
    ),
    Spec(
        "counter", "stylebot_platform_429", "429 Too Many Requests from a platform", ("platform",)
    ),
    Spec(
        "histogram",
        "stylebot_worker_warmup_seconds",
        "Worker start-up: loading (and compiling) the models before taking jobs",
        (),
        WARMUP_BUCKETS,
    ),
    Spec("histogram", "stylebot_batch_size", "Jobs per pipeline call", (), BATCH_BUCKETS),
    Spec("histogram", "stylebot_batch_seconds", "Seconds per pipeline call", (), SERVICE_BUCKETS),
    Spec(
        "histogram",
        "stylebot_gpu_idle_seconds",
        "How long a worker's GPU sat idle before a pipeline call (no work, or Python)",
        (),
        IDLE_BUCKETS,
    ),
    Spec("gauge", "stylebot_gpu_memory_used_bytes", "CUDA memory allocated by a worker process"),
    Spec(
        "gauge",
        "stylebot_gpu_memory_peak_bytes",
        "Peak CUDA memory a worker process has allocated",
    ),
)


@cache
def instruments() -> dict[str, Any]:
    """The metric objects, made once per process (in the default registry)."""
    import prometheus_client as pc

    pc.disable_created_metrics()  # a `_created` series per label set says nothing here
    made: dict[str, Any] = {}
    for spec in SPECS:
        if spec.kind == "counter":
            made[spec.name] = pc.Counter(spec.name, spec.doc, spec.labels)
        elif spec.kind == "gauge":
            made[spec.name] = pc.Gauge(
                spec.name, spec.doc, spec.labels, multiprocess_mode=spec.mode
            )
        else:
            made[spec.name] = pc.Histogram(spec.name, spec.doc, spec.labels, buckets=spec.buckets)
    return made


# --- recording ---------------------------------------------------------------------------------


def admission(outcome: str, reason: str) -> None:
    instruments()["stylebot_admissions"].labels(outcome, reason).inc()


def job_done(tier: str, style: str, wait_s: float, service_s: float) -> None:
    m = instruments()
    m["stylebot_images"].labels(tier, style).inc()
    m["stylebot_job_wait_seconds"].labels(tier).observe(max(wait_s, 0.0))
    m["stylebot_job_service_seconds"].labels(tier).observe(max(service_s, 0.0))


def job_failed(reason: str, n: int = 1) -> None:
    instruments()["stylebot_job_failures"].labels(reason[:40]).inc(n)


def redelivered() -> None:
    instruments()["stylebot_redeliveries"].inc()


def reaped(outcome: Literal["requeued", "failed"], n: int) -> None:
    instruments()["stylebot_jobs_reaped"].labels(outcome).inc(n)


def tokens_reissued(n: int) -> None:
    instruments()["stylebot_tokens_reissued"].inc(n)


def delivery(platform: str, outcome: Literal["sent", "failed", "abandoned"]) -> None:
    instruments()["stylebot_delivery_attempts"].labels(platform, outcome).inc()


def rate_limited(platform: str) -> None:
    instruments()["stylebot_platform_429"].labels(platform).inc()


def warmup(seconds: float) -> None:
    instruments()["stylebot_worker_warmup_seconds"].observe(seconds)


def batch(size: int, seconds: float, idle_s: float | None) -> None:
    m = instruments()
    m["stylebot_batch_size"].observe(size)
    m["stylebot_batch_seconds"].observe(seconds)
    if idle_s is not None:
        m["stylebot_gpu_idle_seconds"].observe(max(idle_s, 0.0))


def gpu_memory(used_bytes: int, peak_bytes: int) -> None:
    m = instruments()
    m["stylebot_gpu_memory_used_bytes"].set(used_bytes)
    m["stylebot_gpu_memory_peak_bytes"].set(peak_bytes)
