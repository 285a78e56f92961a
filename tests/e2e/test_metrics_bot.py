"""`stylebot telegram --with-worker` with STYLEBOT_METRICS_PORT: the bot process serves its own
metrics and the queue's from SQL; its local worker leaves the port to it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.harness import photo_bytes, running_emulator, telegram_process
from tests.e2e.methods import user
from tests.integration.test_metrics_worker import scrape, total
from tests.unit.test_metrics import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_a_bot_process_serves_admissions_deliveries_and_the_queue(tmp_path: Path) -> None:
    port = free_port()
    with (
        running_emulator() as emu,
        telegram_process(tmp_path, emu, "--with-worker", STYLEBOT_METRICS_PORT=str(port)) as bot,
    ):
        emu.send_photo(77, user(77), photo_bytes(77), caption="ghibli")
        emu.wait_for(lambda: emu.calls_of("sendPhoto", chat_id=77), 90)
        deadline = time.monotonic() + 10  # the photo is out; its send returns just after
        while not total(samples := scrape(port), "stylebot_delivery_attempts_total"):
            assert time.monotonic() < deadline, "no delivery counted"
            time.sleep(0.1)
    log = tmp_path / "bot.log"
    assert bot.returncode == 0, log.read_text()
    assert f"metrics_serving role=bot address=0.0.0.0 port={port}" in log.read_text()
    assert total(samples, "stylebot_admissions_total", outcome="admitted", reason="queued") == 1
    sent = total(samples, "stylebot_delivery_attempts_total", platform="telegram", outcome="sent")
    assert sent == 1
    assert total(samples, "stylebot_jobs_queued") == total(samples, "stylebot_jobs_running") == 0
    assert total(samples, "stylebot_workers_live") == 1
    assert total(samples, "stylebot_capacity_mode", mode="open") == 1
    worker_log = (tmp_path / "data" / "logs" / "worker.log").read_text()
    assert "metrics_" not in worker_log  # the local worker serves none: the port is the bot's
