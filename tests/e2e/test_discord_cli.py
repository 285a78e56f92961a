"""`stylebot discord` as an operator runs it: its own process, embedded defaults (SQLite, the
filesystem broker, a worker child), the Discord emulator as Discord; stopped with SIGTERM. An
operator's mistake is one line and exit code 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bots.core.messages import t
from tests.e2e.discord_emulator import TOKEN
from tests.e2e.discord_loop import DiscordLoop
from tests.e2e.harness import photo_bytes

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, token: str, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    env.update(
        STYLEBOT_DATA_DIR=str(tmp_path / "data"),
        STYLEBOT_DISCORD_TOKEN=token,
        STYLEBOT_DISCORD_API_URL=api_url,
        PYTHONPATH=str(ROOT),
    )
    return env


def _emulator() -> DiscordLoop:
    """The emulator alone on its loop thread: the bot under test is another process."""
    running = DiscordLoop()
    running.thread.start()
    running.run(running.emulator.start())
    return running


def test_stylebot_discord_runs_a_local_try_and_stops_gracefully(tmp_path: Path) -> None:
    log = tmp_path / "bot.log"
    running = _emulator()
    emu = running.emulator
    try:
        with log.open("wb") as out:
            bot = subprocess.Popen(
                [sys.executable, "-m", "bots.cli", "discord", "--with-worker"],
                cwd=tmp_path,  # no .env here
                env=_env(tmp_path, TOKEN, f"{emu.url}/api/v10"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            try:
                emu.wait_for(lambda: emu.identifies() or bot.poll() is not None, 120)
                assert bot.poll() is None, log.read_text()
                emu.wait_for(lambda: "discord_started" in log.read_text(), 30)
                uid, guild, channel = 8_100_001, 8_100_002, 8_100_003
                who = emu.user(uid)
                emu.guild(guild)
                emu.channel(channel, guild)
                photo = emu.attachment(photo_bytes(81))
                option = {"name": "image", "type": 11, "value": photo["id"]}
                asked = emu.slash("ghibli", who, channel, options=[option], attachments=[photo])
                result = emu.wait_for(lambda: emu.followups(asked["id"]), 90)[0]
                assert result["content"] == t("result", "en", style="Ghibli", left=2)
            finally:
                bot.send_signal(signal.SIGTERM)
                code = bot.wait(30)
    finally:
        running.close()
    text = log.read_text()
    assert code == 0, text
    assert "discord_started" in text and "Traceback" not in text
    assert TOKEN not in text and asked["token"] not in text


@pytest.mark.parametrize("token", ["", "a-token.the-emulator.does-not-know"])
def test_a_missing_or_rejected_token_is_one_line_and_exit_code_2(
    tmp_path: Path, token: str
) -> None:
    running = _emulator()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bots.cli", "discord"],
            cwd=tmp_path,
            env=_env(tmp_path, token, f"{running.emulator.url}/api/v10"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        running.close()
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("stylebot: STYLEBOT_DISCORD_TOKEN:") and "Traceback" not in proc.stderr
    assert not token or token not in proc.stderr + proc.stdout


def test_an_unreachable_discord_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "discord"],
        cwd=tmp_path,
        env=_env(tmp_path, TOKEN, f"http://127.0.0.1:{port}/api/v10"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == (
        f"stylebot: Discord unreachable at http://127.0.0.1:{port}/api/v10 "
        "(ClientConnectorError): check the network, or STYLEBOT_DISCORD_API_URL"
    )
    assert all(" INFO " in line for line in lines[:-1]), proc.stderr  # no traceback, no warning
