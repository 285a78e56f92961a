"""The metric definitions, recording, the endpoint, and prefork (multiprocess) aggregation."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import sys
import textwrap
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from telegram.error import RetryAfter

from bots.discord.ratelimits import count_rate_limits
from bots.telegram.limiter import counting_429s
from storage import metrics, metrics_endpoint
from storage.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PERSONAL = re.compile(r"user|person|people|chat|name|(^|_)ids?$|token|digest|message", re.I)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_metric_has_a_label_that_could_name_a_person() -> None:
    """Labels are bounded sets (tiers, styles, reasons, outcomes, platforms); the SQL gauges'
    labels are checked on real samples in tests/sql/test_metrics.py."""
    labels = {label for spec in metrics.SPECS for label in spec.labels}
    assert labels and not [label for label in labels if PERSONAL.search(label)]
    names = [spec.name for spec in metrics.SPECS]
    assert len(names) == len(set(names)) and all(n.startswith("stylebot_") for n in names)


def test_recording_shows_in_the_default_registry() -> None:
    before = {
        "admitted": value("stylebot_admissions_total", outcome="admitted", reason="queued"),
        "images": value("stylebot_images_total", tier="plus", style="ghibli"),
        "waits": value("stylebot_job_wait_seconds_count", tier="plus"),
        "slow": value("stylebot_job_wait_seconds_bucket", tier="plus", le="60.0"),
        "batches": value("stylebot_batch_size_sum"),
    }
    metrics.admission("admitted", "queued")
    metrics.job_done("plus", "ghibli", wait_s=90.0, service_s=2.5)
    metrics.batch(4, 1.5, idle_s=None)
    metrics.gpu_memory(3 * 2**30, 5 * 2**30)
    assert value("stylebot_admissions_total", outcome="admitted", reason="queued") == (
        before["admitted"] + 1
    )
    assert value("stylebot_images_total", tier="plus", style="ghibli") == before["images"] + 1
    assert value("stylebot_job_wait_seconds_count", tier="plus") == before["waits"] + 1
    # 90 s is above the 60 s bucket: that bucket did not move.
    assert value("stylebot_job_wait_seconds_bucket", tier="plus", le="60.0") == before["slow"]
    assert value("stylebot_batch_size_sum") == before["batches"] + 4
    assert value("stylebot_gpu_memory_peak_bytes") == 5 * 2**30


def test_the_endpoint_serves_and_a_taken_port_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    off = Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert metrics_endpoint.serve_metrics(off, "bot") is None
    on = Settings(data_dir=tmp_path, metrics_port=free_port(), _env_file=None)  # type: ignore[call-arg]
    server = metrics_endpoint.serve_metrics(on, "bot")
    assert server is not None
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        assert "# TYPE stylebot_redeliveries_total counter" in text
        with caplog.at_level(logging.WARNING, logger="stylebot.metrics"):
            assert metrics_endpoint.serve_metrics(on, "worker") is None  # the same port: taken
        assert "metrics_unavailable role=worker" in caplog.text
    finally:
        server.close()


def test_the_settings_take_an_empty_port_as_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_METRICS_PORT", "")
    assert Settings(_env_file=None).metrics_port is None  # type: ignore[call-arg]
    monkeypatch.setenv("STYLEBOT_METRICS_PORT", "9108")
    assert Settings(_env_file=None).metrics_port == 9108  # type: ignore[call-arg]


def test_telegram_429s_are_counted_and_still_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    before = value("stylebot_platform_429_total", platform="telegram")

    async def refused() -> bool:
        raise RetryAfter(timedelta(seconds=1))

    with pytest.raises(RetryAfter):
        asyncio.run(counting_429s(refused)())
    assert value("stylebot_platform_429_total", platform="telegram") == before + 1


def test_discord_429s_are_counted_from_discord_py_warnings() -> None:
    count_rate_limits()
    count_rate_limits()  # once per process, however often it is called
    before = value("stylebot_platform_429_total", platform="discord")
    http = logging.getLogger("discord.http")
    fmt = "We are being rate limited. %s %s responded with 429. Retrying in %.2f seconds."
    http.warning(fmt, "POST", "https://discord.com/api/v10/channels/1/messages", 0.5)
    logging.getLogger("discord.webhook.async_").warning(
        "Webhook ID %s is rate limited. Retrying in %.2f seconds.", 1, 0.5
    )
    http.warning("Global rate limit has been hit. Retrying in %.2f seconds.", 0.5)  # same 429
    http.warning("something else")
    assert value("stylebot_platform_429_total", platform="discord") == before + 2


def test_worker_modules_leave_prometheus_client_unimported() -> None:
    """prometheus_client picks single- or multi-process values once, when imported: `stylebot
    worker` sets PROMETHEUS_MULTIPROC_DIR first, so nothing on its path may import it sooner."""
    code = (
        "import sys, bots.cli, tasks.worker, tasks.stylize, tasks.batch, bots.core; "
        "assert 'prometheus_client' not in sys.modules, 'imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


PREFORK = """
import os, sys
from storage import metrics, metrics_endpoint

path = metrics_endpoint.use_multiprocess_dir()
pids = []
for n in (1, 2):  # two pool children, as Celery's prefork pool forks them
    pid = os.fork()
    if pid == 0:
        metrics.batch(n * 2, 0.5, idle_s=0.01)
        metrics.gpu_memory(n * 1000, n * 2000)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

def scrape():
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry).decode()

print(scrape())
print("----")
metrics_endpoint.process_stopping(pids[0])  # a child's worker_process_shutdown
metrics_endpoint.forget_dead_processes()  # the other died unannounced: gone too
print(scrape())
"""


def test_prefork_children_are_served_by_one_endpoint(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PREFORK)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    both, after = done.stdout.split("----")
    assert "stylebot_batch_size_count 2.0" in both and "stylebot_batch_size_sum 6.0" in both
    used = re.findall(r'stylebot_gpu_memory_used_bytes\{pid="\d+"\} (\S+)', both)
    assert sorted(used) == ["1000.0", "2000.0"]  # one series per live child
    assert "stylebot_batch_size_sum 6.0" in after  # counts outlive their processes
    assert "stylebot_gpu_memory_used_bytes{" not in after  # gauges don't
