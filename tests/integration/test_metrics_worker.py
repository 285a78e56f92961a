"""A real `stylebot worker` (prefork pool, Redis, PostgreSQL) serving metrics: what its pool
children record reaches the one endpoint its main process serves."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bots.console.adapter import ConsoleChat
from bots.core import Core, Runtime
from tasks.worker import spawn_worker, stop_worker
from tests.conftest import make_photo, pretend_a_worker_is_live
from tests.integration.test_celery_worker import _wait_finished
from tests.services import live_stack
from tests.unit.test_metrics import free_port

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Runtime, dict[str, str], int]]:
    port = free_port()
    with live_stack(
        tmp_path,
        STYLEBOT_BACKEND="classic",
        STYLEBOT_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
    ) as (rt, env):
        pretend_a_worker_is_live(rt)  # admit requests before the real worker is up
        yield rt, env, port


def scrape(port: int, limit_s: float = 60) -> Samples:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """Summed over the label sets that match (each pool child's pid, for gauges)."""
    want = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and want <= set(pairs))


def test_pool_children_metrics_are_served_by_the_worker(
    live: tuple[Runtime, dict[str, str], int], tmp_path: Path
) -> None:
    rt, env, port = live
    core = Core(rt)
    photo = make_photo(tmp_path / "in.jpg", size=(320, 240))
    broken = ConsoleChat(core, "console:broken").handle_line(f"/ghibli {photo}")
    assert broken is not None and broken.job_id
    rt.store.input_path(broken.job_id).write_bytes(b"not a png")
    # Two pool children: whichever styles a job, the one endpoint counts it.
    worker = spawn_worker(tmp_path / "worker.log", concurrency=2, env=env)
    try:
        replies = [
            ConsoleChat(core, f"console:m{i}").handle_line(f"/ghibli {photo}") for i in range(4)
        ]
        ids = [r.job_id for r in replies if r and r.job_id]
        assert len(ids) == 4
        jobs = _wait_finished(rt, [*ids, broken.job_id])
        samples = scrape(port)
    finally:
        stop_worker(worker)
    log = (tmp_path / "worker.log").read_text()
    assert sorted(j.status for j in jobs) == ["done"] * 4 + ["failed"], log
    assert "metrics_serving role=worker" in log
    assert total(samples, "stylebot_images_total", tier="free", style="ghibli") == 4
    assert total(samples, "stylebot_job_wait_seconds_count", tier="free") == 4
    assert total(samples, "stylebot_job_service_seconds_count", tier="free") == 4
    assert total(samples, "stylebot_job_failures_total", reason="input") == 1
    assert total(samples, "stylebot_batch_size_sum") == 4  # the broken job was never styled
    assert total(samples, "stylebot_batch_size_count") >= 1
    assert not [name for name, _ in samples if name.startswith("stylebot_jobs_")]  # bots' job
