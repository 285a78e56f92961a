"""An operator's mistake in a dependency is one line on stderr and exit code 2, for every
command that touches it: `python -m bots.cli …` run as an operator runs it, in a clean env."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from bots.core.messages import t
from storage.db import make_engine, transaction
from storage.migrate import check_current, head, make_config, upgrade
from storage.models import WorkerBeat, utcnow
from storage.settings import SettingsError
from tests.conftest import make_photo
from tests.dbutil import fresh_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARGS = {
    "demo": ["demo"],
    "chat": ["chat", "--no-worker"],
    "worker": ["worker"],
    "migrate": ["migrate"],
    "admin": ["admin", "stats"],
    "telegram": ["telegram"],
    "discord": ["discord"],
}
DATABASE_COMMANDS = list(ARGS)
STYLES_COMMANDS = [c for c in ARGS if c != "migrate"]  # migrate reads no styles file
MIGRATED_COMMANDS = ["worker", "admin", "chat", "telegram", "discord"]  # need the head on PG


def spread(commands: list[str], variants: dict[str, object]) -> list[object]:
    """Each command with one variant of the mistake, in turn: every command and every variant
    appear, at one process start per command (each start costs about a second)."""
    names = list(variants)
    return [
        pytest.param(c, names[i % len(names)], id=f"{c}-{names[i % len(names)]}")
        for i, c in enumerate(commands)
    ]


def closed_port() -> int:
    """A local port nothing listens on: a connect to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stylebot(
    tmp_path: Path, command: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STYLEBOT_")}
    nowhere = f"http://127.0.0.1:{closed_port()}"  # dummy tokens never reach a real platform
    clean.update(
        PYTHONPATH=str(ROOT),
        STYLEBOT_TELEGRAM_TOKEN="123456789:dummy-token-for-a-test",
        STYLEBOT_TELEGRAM_API_URL=nowhere,
        STYLEBOT_DISCORD_TOKEN="dummy.discord.token",
        STYLEBOT_DISCORD_API_URL=f"{nowhere}/api/v10",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", *ARGS[command]],
        cwd=tmp_path,  # no .env here; the data directory defaults to ./data
        env=clean,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def one_line(proc: subprocess.CompletedProcess[str], *names: str) -> str:
    """Assert exit 2 and one `stylebot: ` line on stderr naming each of `names`; return it."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("stylebot: "), line
    for name in names:
        assert name in line, line
    return line


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A throwaway PostgreSQL database that has never been migrated."""
    with fresh_database("postgres", tmp_path) as url:
        yield url


# 1. A database URL with an unknown scheme ------------------------------------------------


BAD_URLS = {
    "mysql": ("mysql+nope://x/y", "unknown scheme 'mysql+nope://'"),
    "postgres-typo": ("postgres://postgres@127.0.0.1/test", "unknown scheme 'postgres://'"),
    "no-scheme": ("127.0.0.1:5432/test", "not a database URL"),
}


@pytest.mark.parametrize(("command", "variant"), spread(DATABASE_COMMANDS, BAD_URLS))
def test_an_unknown_database_scheme_is_one_line(tmp_path: Path, command: str, variant: str) -> None:
    url, says = BAD_URLS[variant]
    proc = stylebot(tmp_path, command, STYLEBOT_DATABASE_URL=url)
    one_line(proc, f"STYLEBOT_DATABASE_URL: {says}", "postgresql+psycopg://")


# 2. An unreachable database --------------------------------------------------------------


@pytest.mark.parametrize("command", DATABASE_COMMANDS)
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: str) -> None:
    port = closed_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/stylebot"
    line = one_line(stylebot(tmp_path, command, STYLEBOT_DATABASE_URL=url), "STYLEBOT_DATABASE_URL")
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}/stylebot" in line


# 3. A database that was never migrated, or is behind the code ----------------------------


@pytest.mark.parametrize("command", MIGRATED_COMMANDS)
def test_a_never_migrated_postgres_database_is_refused(
    tmp_path: Path, pg_url: str, command: str
) -> None:
    line = one_line(
        stylebot(tmp_path, command, STYLEBOT_DATABASE_URL=pg_url), "STYLEBOT_DATABASE_URL"
    )
    assert line.endswith("has no stylebot tables: run `stylebot migrate`")


@pytest.mark.parametrize("command", ["worker", "admin"])
def test_a_never_migrated_sqlite_file_is_refused_where_nothing_migrates_it(
    tmp_path: Path, command: str
) -> None:
    line = one_line(stylebot(tmp_path, command), "STYLEBOT_DATABASE_URL")
    assert line.endswith("has no stylebot tables: run `stylebot migrate`")


@pytest.mark.parametrize("command", ["worker", "telegram"])
def test_a_database_behind_the_code_is_refused(tmp_path: Path, pg_url: str, command: str) -> None:
    want = head()
    assert want is not None
    script = ScriptDirectory.from_config(make_config(""))
    older = script.get_revision(want).down_revision  # type: ignore[union-attr]
    assert isinstance(older, str)
    upgrade(pg_url, older)
    line = one_line(
        stylebot(tmp_path, command, STYLEBOT_DATABASE_URL=pg_url), "STYLEBOT_DATABASE_URL"
    )
    assert line.endswith(f"is at revision {older}, this code needs {want}: run `stylebot migrate`")


def test_a_database_ahead_of_the_code_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ahead.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:  # as a newer release's migration would leave it
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    engine.dispose()
    with pytest.raises(SettingsError, match="revision 9999_future, newer than this code knows"):
        check_current(url)


# 4. An unreachable broker ----------------------------------------------------------------


def test_the_worker_refuses_an_unreachable_broker(tmp_path: Path) -> None:
    upgrade(f"sqlite:///{tmp_path / 'data' / 'stylebot.db'}")
    port = closed_port()
    started = time.monotonic()
    proc = stylebot(tmp_path, "worker", STYLEBOT_BROKER_URL=f"redis://127.0.0.1:{port}/0")
    line = one_line(proc, "STYLEBOT_BROKER_URL", f"127.0.0.1:{port}")
    assert "cannot reach the broker" in line
    assert time.monotonic() - started < 15


def test_a_bot_starts_without_the_broker_and_answers_busy_quickly(tmp_path: Path) -> None:
    """The bots only publish: start-up does not wait for the broker, and a request that
    cannot be published gets the polite busy reply within seconds, nothing charged."""
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'stylebot.db'}")
    upgrade(str(engine.url))
    with transaction(engine) as s:  # admission sees a worker, so the request reaches publish
        s.add(WorkerBeat(id="test:placeholder", last_seen=utcnow() + timedelta(hours=1)))
    engine.dispose()
    photo = make_photo(tmp_path / "me.jpg")
    started = time.monotonic()
    proc = stylebot(
        tmp_path,
        "chat",
        stdin=f"/ghibli {photo}\n/quota\n",
        STYLEBOT_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert t("busy_error", "en") in proc.stdout
    assert "3 left" in proc.stdout  # refunded
    assert time.monotonic() - started < 20


# 5. A styles file that does not parse, or names no styles --------------------------------


BAD_STYLES = {
    "unparsable": ("[styles.sketch\nmodel = 1\n", "cannot read styles file"),
    "no-styles": ("[styles]\n", "defines no [styles.<name>] table"),
}


@pytest.mark.parametrize(("command", "variant"), spread(STYLES_COMMANDS, BAD_STYLES))
def test_a_bad_styles_file_is_one_line(tmp_path: Path, command: str, variant: str) -> None:
    text, says = BAD_STYLES[variant]
    styles = tmp_path / "styles.toml"
    styles.write_text(text, "utf-8")
    proc = stylebot(tmp_path, command, STYLEBOT_STYLES_FILE=str(styles))
    one_line(proc, "STYLEBOT_STYLES_FILE:", says, str(styles))


# 6. A data directory that cannot be written ----------------------------------------------


# Tests run as root, whom modes don't stop; a regular file where a directory should be does.
BAD_DATA_DIRS = {
    "under-a-file": ("file.txt/data", "Not a directory"),
    "a-file": ("file.txt", "a file, not a directory"),
}


@pytest.mark.parametrize(("command", "variant"), spread(DATABASE_COMMANDS, BAD_DATA_DIRS))
def test_an_unwritable_data_dir_is_one_line(tmp_path: Path, command: str, variant: str) -> None:
    where, says = BAD_DATA_DIRS[variant]
    (tmp_path / "file.txt").write_text("not a directory")
    data = tmp_path / where
    line = one_line(stylebot(tmp_path, command, STYLEBOT_DATA_DIR=str(data)), "STYLEBOT_DATA_DIR")
    assert f"cannot write to {data} ({says})" in line
