"""`stylebot telegram --with-worker` with STYLEBOT_METRICS_PORT: the bot process serves its own
metrics and the queue's from SQL; its local worker leaves the port to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.emulator import TOKEN
from tests.e2e.harness import photo_bytes, running_emulator
from tests.e2e.methods import user
from tests.integration.test_metrics_worker import scrape, total
from tests.unit.test_metrics import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_a_bot_process_serves_admissions_deliveries_and_the_queue(tmp_path: Path) -> None:
    log, port = tmp_path / "bot.log", free_port()
    with running_emulator() as emu, log.open("wb") as out:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
        env.update(
            STYLEBOT_DATA_DIR=str(tmp_path / "data"),
            STYLEBOT_TELEGRAM_TOKEN=TOKEN,
            STYLEBOT_TELEGRAM_API_URL=emu.url,
            STYLEBOT_METRICS_PORT=str(port),
            PYTHONPATH=str(ROOT),
        )
        bot = subprocess.Popen(
            [sys.executable, "-m", "bots.cli", "telegram", "--with-worker"],
            cwd=tmp_path,  # no .env here
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            emu.wait_for(lambda: emu.calls_of("getUpdates") or bot.poll() is not None, 120)
            assert bot.poll() is None, log.read_text()
            emu.send_photo(77, user(77), photo_bytes(77), caption="ghibli")
            emu.wait_for(lambda: emu.calls_of("sendPhoto", chat_id=77), 90)
            deadline = time.monotonic() + 10  # the photo is out; its send returns just after
            while not total(samples := scrape(port), "stylebot_delivery_attempts_total"):
                assert time.monotonic() < deadline, "no delivery counted"
                time.sleep(0.1)
        finally:
            bot.send_signal(signal.SIGTERM)
            code = bot.wait(30)
    assert code == 0, log.read_text()
    assert f"metrics_serving role=bot address=0.0.0.0 port={port}" in log.read_text()
    assert total(samples, "stylebot_admissions_total", outcome="admitted", reason="queued") == 1
    sent = total(samples, "stylebot_delivery_attempts_total", platform="telegram", outcome="sent")
    assert sent == 1
    assert total(samples, "stylebot_jobs_queued") == total(samples, "stylebot_jobs_running") == 0
    assert total(samples, "stylebot_workers_live") == 1
    assert total(samples, "stylebot_capacity_mode", mode="open") == 1
    worker_log = (tmp_path / "data" / "logs" / "worker.log").read_text()
    assert "metrics_" not in worker_log  # the local worker serves none: the port is the bot's
