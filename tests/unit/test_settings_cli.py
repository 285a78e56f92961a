"""Settings parsing and the command line's promises: clear errors, exit code 2, honest help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.unit


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    return {**env, **extra}


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    s = load_settings()
    assert s.sqlalchemy_url.startswith("sqlite:///") and s.sqlalchemy_url.endswith(
        "data/stylebot.db"
    )
    assert s.embedded_broker and s.backend == "classic" and s.free_daily_limit == 3
    assert s.telegram_api_url == "https://api.telegram.org"


def test_admins_are_platform_qualified(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_ADMINS", "telegram:123, discord:456")
    assert load_settings().admins == ("telegram:123", "discord:456")
    monkeypatch.setenv("STYLEBOT_ADMINS", "123")
    with pytest.raises(SettingsError, match="STYLEBOT_ADMINS"):
        load_settings()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("STYLEBOT_FREE_DAILY_LIMIT", "three"),
        ("STYLEBOT_FREE_DAILY_LIMIT", "-1"),
        ("STYLEBOT_TIMEZONE", "Mars/Olympus"),
        ("STYLEBOT_BACKEND", "dall-e"),
        ("STYLEBOT_COMPILE", "yes"),
        ("STYLEBOT_WARMUP_BUCKETS", "512x512,1024x1024"),
        ("STYLEBOT_COMPILE_BATCH_SIZES", "1,x"),
        ("STYLEBOT_COMPILE_BATCH_SIZES", "0,4"),
        ("STYLEBOT_COMPILE_BATCH_SIZES", "1,64"),  # above the max batch (8)
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=var):
        load_settings()


@pytest.mark.parametrize(
    ("max_batch", "sizes", "expected"),
    [
        (1, "", (1,)),
        (8, "", (1, 4, 8)),
        (16, "", (1, 4, 16)),
        (64, "", (1, 4, 16, 64)),
        (16, " 16, 1 ", (1, 16)),
    ],
)
def test_compiled_batch_sizes(max_batch: int, sizes: str, expected: tuple[int, ...]) -> None:
    settings = load_settings(max_batch=max_batch, compile_batch_sizes=sizes, _env_file=None)
    assert settings.batch_sizes() == expected


def test_compile_needs_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBOT_COMPILE", "unet")
    monkeypatch.setenv("STYLEBOT_WARMUP", "false")
    with pytest.raises(SettingsError, match=r"^STYLEBOT_COMPILE needs STYLEBOT_WARMUP=true$"):
        load_settings()


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("STYLEBOT_FREE_DAILY_LIMIT=5\nSTYLEBOT_TIMEZONE=Asia/Riyadh\n")
    s = load_settings()
    assert (s.free_daily_limit, s.timezone) == (5, "Asia/Riyadh")


def test_cli_bad_setting_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "migrate"],
        env=_env(STYLEBOT_FREE_DAILY_LIMIT="lots"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "STYLEBOT_FREE_DAILY_LIMIT" in proc.stderr and "Traceback" not in proc.stderr


def test_worker_refuses_a_visibility_timeout_below_the_time_limit(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "worker"],
        env=_env(
            STYLEBOT_BROKER_URL="redis://127.0.0.1:6379/15",
            STYLEBOT_TASK_TIME_LIMIT="600",
            STYLEBOT_BROKER_VISIBILITY_TIMEOUT="900",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "STYLEBOT_BROKER_VISIBILITY_TIMEOUT" in proc.stderr


def test_help_lists_exactly_the_built_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bots.cli", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    listed = {
        line.split()[0] for line in out.splitlines() if line.startswith("    ") and line.split()
    }
    assert listed == {
        "demo", "chat", "worker", "migrate", "health", "admin", "bench", "telegram", "discord"
    }  # fmt: skip


def test_migrate_command_creates_the_schema(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bots.cli", "migrate"],
        env=_env(STYLEBOT_DATA_DIR=str(tmp_path / "d")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0009" in proc.stdout and (tmp_path / "d" / "stylebot.db").exists()


def test_settings_are_not_read_at_import() -> None:
    code = (
        "import os; os.environ['STYLEBOT_TIMEZONE'] = 'nowhere'; "
        "import bots.cli, bots.core, tasks.app, tasks.stylize"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_settings_object_is_constructible_without_env() -> None:
    assert Settings(_env_file=None).max_attempts >= 1  # type: ignore[call-arg]
