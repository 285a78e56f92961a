"""`stylebot telegram` as an operator runs it: its own process, embedded defaults (SQLite, the
filesystem broker, a worker child), the Bot API emulator as Telegram; stopped with SIGTERM."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bots.core.messages import t
from tests.e2e.emulator import TOKEN
from tests.e2e.harness import photo_bytes, running_emulator, telegram_process
from tests.e2e.methods import user

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_stylebot_telegram_runs_a_local_try_and_stops_gracefully(tmp_path: Path) -> None:
    with running_emulator() as emu, telegram_process(tmp_path, emu, "--with-worker") as bot:
        sent = emu.send_photo(77, user(77), photo_bytes(77), caption="ghibli")
        result = emu.wait_for(lambda: emu.calls_of("sendPhoto", chat_id=77), 90)[0]
        assert result.params["reply_parameters"]["message_id"] == sent["message_id"]
        assert result.params["caption"] == t("result", "en", style="Ghibli", left=2)
    text = (tmp_path / "bot.log").read_text()
    assert bot.returncode == 0, text
    assert "telegram_started" in text
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


@pytest.mark.parametrize("token", ["", "1111111:BBwrongTokenTheServerDoesNotKnow_42"])
def test_a_missing_or_rejected_token_is_one_line_and_exit_code_2(
    tmp_path: Path, token: str
) -> None:
    with running_emulator() as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
        env.update(
            STYLEBOT_DATA_DIR=str(tmp_path / "data"),
            STYLEBOT_TELEGRAM_TOKEN=token,
            STYLEBOT_TELEGRAM_API_URL=emu.url,
            PYTHONPATH=str(ROOT),
        )
        proc = subprocess.run(
            [sys.executable, "-m", "bots.cli", "telegram"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("stylebot: STYLEBOT_TELEGRAM_TOKEN:") and "Traceback" not in proc.stderr
    assert not token or token.split(":")[1] not in proc.stderr + proc.stdout
